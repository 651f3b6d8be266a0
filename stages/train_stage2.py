"""DVC stage `train_stage2@<round>`: continue the round's starting adapter on the pairs `generate_qa@<round>`
kept (as RAG prompts), mixed with a replay share of the Stage 1 instructions -> data/models/stage2_<round>.

Writes the training curves to plots/train_stage2/<round>/ and the run's figures to metrics/train_stage2/<round>.json.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.jsonio import write_json
from simrag.round_data import train_round
from simrag.stage import is_main_process, stage


@click.command()
@click.option("--round", "round_name", required=True, help="A round under `rounds` in the params file, e.g. r1.")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default="data/models", show_default=True)
@click.option("--qa", "qa_dir", type=click.Path(path_type=Path), default="data/qa", show_default=True)
@click.option("--checkpoints", type=click.Path(path_type=Path), default="data/checkpoints", show_default=True)
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path), default="plots/train_stage2", show_default=True)
@click.option("--metrics", "metrics_dir", type=click.Path(path_type=Path), default="metrics/train_stage2")
@stage("train_stage2")
def main(
    round_name: str,
    params_path: Path,
    base: Path,
    models_dir: Path,
    qa_dir: Path,
    checkpoints: Path,
    plots_dir: Path,
    metrics_dir: Path,
) -> str:
    figures = train_round(round_name, load_params(params_path), base, models_dir, qa_dir, checkpoints, plots_dir)
    if is_main_process():
        write_json(metrics_dir / f"{round_name}.json", figures)
    examples = figures["examples"]
    return (
        f"{examples['qa_pairs']} QA pairs + {examples['replay']} replayed, loss {figures['train_loss_first']} -> "
        f"{figures['train_loss_final']}, validation {figures['val_loss_initial']} -> {figures['val_loss_final']}"
    )


if __name__ == "__main__":
    main()
