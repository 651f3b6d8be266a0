"""DVC stage `train_stage1`: instruction tuning (the paper's Stage 1) -> a LoRA adapter in data/models/stage1.

Writes the training curves to plots/train_stage1/ (dvclive) and the run's figures to metrics/train_stage1.json.
Run it again after an interruption: it resumes from its last checkpoint (train.resume).
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.instructions import load_instructions, split_validation
from simrag.jsonio import write_json
from simrag.stage import is_main_process, stage
from simrag.training import TrainSetup, train_adapter


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/models/stage1", show_default=True)
@click.option("--checkpoints", type=click.Path(path_type=Path), default="data/checkpoints/stage1", show_default=True)
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path), default="plots/train_stage1", show_default=True)
@click.option("--metrics", "metrics_path", type=click.Path(path_type=Path), default="metrics/train_stage1.json")
@stage("train_stage1")
def main(params_path: Path, base: Path, out: Path, checkpoints: Path, plots_dir: Path, metrics_path: Path) -> str:
    params = load_params(params_path)
    conversations, counts = load_instructions(params.stage1.data, params.stage1.max_examples, params.train.seed)
    train_set, val_set = split_validation(conversations, params.stage1.val_size)
    setup = TrainSetup(
        lora=params.lora,
        train=params.train,
        epochs=params.stage1.epochs,
        model=params.model,
        title="Stage 1: instruction tuning",
    )
    figures = train_adapter(base, train_set, val_set, setup, out, checkpoints, plots_dir)
    figures["examples"]["records_read"] = counts["records"]
    figures["examples"]["skipped_incomplete"] = counts["skipped_incomplete"]
    if is_main_process():
        write_json(metrics_path, figures)
    return (
        f"{figures['steps']} steps, loss {figures['train_loss_first']} -> {figures['train_loss_final']}, "
        f"validation {figures['val_loss_initial']} -> {figures['val_loss_final']}, "
        f"{figures['tokens_per_second']} tokens/s"
    )


if __name__ == "__main__":
    main()
