"""DVC stage `train_retriever@<round>`: fine-tune the embedder on the (question, source chunk) pairs that
`generate_qa@<round>` kept, with in-batch and hard negatives -> data/models/embedder_<round>.

Tuning starts from the embedder of the index the round retrieved from, and mines its hard negatives there.
Writes the loss curve to plots/train_retriever/<round>/ and the figures to metrics/train_retriever/<round>.json.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.jsonio import write_json
from simrag.retriever_training import adapt_retriever
from simrag.stage import is_main_process, stage


@click.command()
@click.option("--round", "round_name", required=True, help="A round under `retriever.rounds` in the params file.")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--chunks", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl", show_default=True)
@click.option("--qa", "qa_dir", type=click.Path(path_type=Path), default="data/qa", show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default="data/models", show_default=True)
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path), default="plots/train_retriever")
@click.option("--metrics", "metrics_dir", type=click.Path(path_type=Path), default="metrics/train_retriever")
@stage("train_retriever")
def main(
    round_name: str, params_path: Path, chunks: Path, qa_dir: Path, models_dir: Path, plots_dir: Path, metrics_dir: Path
) -> str:
    figures = adapt_retriever(round_name, load_params(params_path), chunks, qa_dir, models_dir, plots_dir)
    if is_main_process():
        write_json(metrics_dir / f"{round_name}.json", figures)
    before, after = figures["validation_before"], figures["validation_after"]
    return (
        f"{figures['pairs']['train']} pairs, loss {figures['train_loss_first']} -> {figures['train_loss_final']}, "
        f"held-out MRR {before['mrr']} -> {after['mrr']} among {after['candidates']} chunks"
    )


if __name__ == "__main__":
    main()
