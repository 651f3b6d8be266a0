"""DVC stage `prepare`: a corpus folder -> data/processed/chunks.jsonl + metrics/prepare.json."""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.jsonio import write_json, write_jsonl
from simrag.machine import peak_rss_mb
from simrag.prepare import prepare_corpus
from simrag.stage import stage


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl", show_default=True)
@click.option(
    "--metrics", "metrics_path", type=click.Path(path_type=Path), default="metrics/prepare.json", show_default=True
)
@stage("prepare")
def main(params_path: Path, out: Path, metrics_path: Path) -> str:
    params = load_params(params_path)
    result = prepare_corpus(params.prepare, params.embedder)
    write_jsonl(out, result.chunks)
    write_json(metrics_path, {**result.metrics, "peak_memory_mb": peak_rss_mb()})
    m = result.metrics
    skipped = {reason: n for reason, n in m["skipped"].items() if n}
    return f"{m['documents']} documents, {m['chunks']} chunks, skipped {skipped or 'none'}"


if __name__ == "__main__":
    main()
