"""DVC stage `generate_qa@<round>`: the round's starting model writes QA pairs from corpus chunks, and the
round trip through retrieval decides which to keep.

Writes data/qa/<round>.jsonl (every candidate with its verdict and checks), metrics/generate_qa/<round>.json
and reports/qa_samples_<round>.md (a sample for a person to judge).
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.evalset import stage2_chunks
from simrag.jsonio import atomic_open, write_json, write_jsonl
from simrag.records import read_chunks
from simrag.stage import stage
from simrag.synthetic_qa import WriterModel, sample_chunks, samples_markdown, to_record, write_pairs


@click.command()
@click.option("--round", "round_name", required=True, help="A round under `rounds` in the params file, e.g. r1.")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--chunks", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl", show_default=True)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index", show_default=True)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default="data/models", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/qa", show_default=True)
@click.option("--metrics", "metrics_dir", type=click.Path(path_type=Path), default="metrics/generate_qa")
@click.option("--samples", "samples_dir", type=click.Path(path_type=Path), default="reports", show_default=True)
@stage("generate_qa")
def main(
    round_name: str,
    params_path: Path,
    chunks: Path,
    index_dir: Path,
    base: Path,
    models_dir: Path,
    out: Path,
    metrics_dir: Path,
    samples_dir: Path,
) -> str:
    params = load_params(params_path)
    start_from, settings = params.round_settings(round_name)
    pool = stage2_chunks(read_chunks(chunks), params.evalset_shares())  # evaluation sets' chunks held out
    picked = sample_chunks(pool, settings, seed=f"{settings.seed}:{round_name}")
    writer = WriterModel(base, models_dir / start_from, start_from)
    candidates, written = write_pairs(picked, settings, params, index_dir, writer)
    summary = {"round": round_name, "from": start_from, **written}
    write_jsonl(out / f"{round_name}.jsonl", (to_record(c, round_name) for c in candidates))
    with atomic_open(samples_dir / f"qa_samples_{round_name}.md") as f:
        f.write(samples_markdown(candidates, round_name))
    write_json(metrics_dir / f"{round_name}.json", summary)
    return (
        f"{summary['kept']} of {summary['candidates']} pairs kept from {summary['chunks']} chunks, "
        f"{summary['tokens_per_second']} tokens/s"
    )


if __name__ == "__main__":
    main()
