"""DVC stage `index`: data/processed/chunks.jsonl -> ChromaDB index in data/index + metrics/index.json.

`reindex@<round>` runs it too, with `--embedder data/models/embedder_<round>` (the embedder that
`train_retriever@<round>` tuned) and `--out data/index_<round>`.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.indexing import build_index
from simrag.jsonio import write_json
from simrag.machine import peak_rss_mb
from simrag.stage import stage


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option(
    "--chunks", "chunks_path", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), default="data/index", show_default=True)
@click.option(
    "--metrics", "metrics_path", type=click.Path(path_type=Path), default="metrics/index.json", show_default=True
)
@click.option("--embedder", default=None, help="Embed with this model instead of embedder.model (a folder or hub id).")
@stage("index")
def main(params_path: Path, chunks_path: Path, out: Path, metrics_path: Path, embedder: str | None) -> str:
    params = load_params(params_path)
    embedder_params = params.embedder
    if embedder:
        embedder_params = embedder_params.model_copy(update={"model": embedder})
    metrics = {**build_index(chunks_path, out, embedder_params, params.index), "peak_memory_mb": peak_rss_mb()}
    write_json(metrics_path, metrics)
    return f"{metrics['vectors']} vectors at {metrics['chunks_per_second']} chunks/s, {metrics['index_mb']} MB"


if __name__ == "__main__":
    main()
