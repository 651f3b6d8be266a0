"""DVC stage `train_stage2@<round>`: continue the round's starting adapter on the pairs `generate_qa@<round>`
kept (as RAG prompts), mixed with a replay share of the Stage 1 instructions -> data/models/stage2_<round>.

Writes the training curves to plots/train_stage2/<round>/ and the run's figures to metrics/train_stage2/<round>.json.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.jsonio import write_json
from simrag.models import load_tokenizer
from simrag.records import read_round
from simrag.round_data import round_data
from simrag.stage import is_main_process, stage
from simrag.training import TrainSetup, epochs_for_updates, train_adapter


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
    params = load_params(params_path)
    start_from, settings = params.round_settings(round_name)
    data = round_data(
        read_round(qa_dir, round_name), round_name, settings, params.stage1, params.train.seed, load_tokenizer(base)
    )
    train = settings.train_params(params.train)
    setup = TrainSetup(
        lora=params.lora,
        train=train,
        epochs=epochs_for_updates(len(data.train), train, settings.epochs, settings.min_updates),
        model=params.model,
        title=f"Stage 2, round {round_name}: synthetic QA from {start_from}",
    )
    figures = train_adapter(
        base,
        data.train,
        data.validation,
        setup,
        models_dir / f"stage2_{round_name}",
        checkpoints / f"stage2_{round_name}",
        plots_dir / round_name,
        init_adapter=models_dir / start_from,
    )
    figures["examples"].update(qa_pairs=data.qa_pairs, replay=data.replay, qa_validation=len(data.validation))
    if is_main_process():
        write_json(metrics_dir / f"{round_name}.json", {"round": round_name, "from": start_from, **figures})
    return (
        f"{data.qa_pairs} QA pairs + {data.replay} replayed, loss {figures['train_loss_first']} -> "
        f"{figures['train_loss_final']}, validation {figures['val_loss_initial']} -> {figures['val_loss_final']}"
    )


if __name__ == "__main__":
    main()
