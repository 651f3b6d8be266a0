"""DVC stage `make_evalset@<name>`: an evaluation set written from the corpus's held-out chunks.

The base model writes questions about the chunks that `evalsets.<name>.share` holds out (no Stage 2 round
samples them), with the pipeline's QA recipe and filters. Writes data/evalsets/<name>.jsonl (the evaluation
format: id, question, reference_answer, evidence, gold_doc), metrics/make_evalset/<name>.json and
reports/evalset_samples_<name>.md. Name the file under `evaluate.sets` to score the models on it.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.evalset import evalset_records, held_out_chunks
from simrag.jsonio import atomic_open, write_json, write_jsonl
from simrag.records import read_chunks
from simrag.stage import stage
from simrag.synthetic_qa import WriterModel, sample_chunks, samples_markdown, write_pairs


@click.command()
@click.option("--name", required=True, help="A set under `evalsets` in the params file.")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--chunks", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl", show_default=True)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index", show_default=True)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/evalsets", show_default=True)
@click.option("--metrics", "metrics_dir", type=click.Path(path_type=Path), default="metrics/make_evalset")
@click.option("--samples", "samples_dir", type=click.Path(path_type=Path), default="reports", show_default=True)
@stage("make_evalset")
def main(
    name: str,
    params_path: Path,
    chunks: Path,
    index_dir: Path,
    base: Path,
    out: Path,
    metrics_dir: Path,
    samples_dir: Path,
) -> str:
    params = load_params(params_path)
    share, settings = params.evalset_settings(name)
    held_out = held_out_chunks(read_chunks(chunks), name, share)
    picked = sample_chunks(held_out, settings, seed=f"{settings.seed}:evalset:{name}")
    candidates, written = write_pairs(picked, settings, params, index_dir, WriterModel(base, None, "base"))
    records = evalset_records((c for c in candidates if c.verdict == "kept"), name)
    summary = {"set": name, "share": share, "held_out_chunks": len(held_out), **written, "questions": len(records)}
    write_jsonl(out / f"{name}.jsonl", records)
    with atomic_open(samples_dir / f"evalset_samples_{name}.md") as f:
        f.write(samples_markdown(candidates, name, of=f"evaluation set {name}"))
    write_json(metrics_dir / f"{name}.json", summary)
    return f"{len(records)} questions from {summary['chunks']} of {len(held_out)} held-out chunks"


if __name__ == "__main__":
    main()
