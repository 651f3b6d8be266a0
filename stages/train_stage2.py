"""DVC stage `train_stage2@<round>`: continue the round's starting adapter on the pairs `generate_qa@<round>`
kept (as RAG prompts), mixed with a replay share of the Stage 1 instructions -> data/models/stage2_<round>.

Writes the training curves to plots/train_stage2/<round>/ and the run's figures to metrics/train_stage2/<round>.json.
"""

import random
from pathlib import Path

import click

from simrag.config import load_params
from simrag.errors import DataError
from simrag.instructions import split_validation, stage1_replay
from simrag.jsonio import write_json
from simrag.models import load_tokenizer
from simrag.stage import is_main_process, stage
from simrag.synthetic_qa import qa_conversations, read_round
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
    records = read_round(qa_dir, round_name)
    kept = [r for r in records if r.get("verdict") == "kept"]
    if len(kept) < settings.min_pairs:
        raise DataError(
            f"round {round_name}: {len(kept)} of {len(records)} synthetic QA pairs were kept, fewer than "
            f"stage2.min_pairs ({settings.min_pairs}). More are kept with a larger stage2.max_chunks, a lower "
            "stage2.min_context_score or stage2.min_answer_f1 (each can be set for one round under "
            f"rounds.{round_name}); see metrics/generate_qa/{round_name}.json for why pairs were rejected"
        )
    pairs = qa_conversations(kept, load_tokenizer(base), settings.max_context_tokens)
    random.Random(f"{settings.seed}:{round_name}").shuffle(pairs)
    train_pairs, val_pairs = split_validation(pairs, settings.val_size)
    s1 = params.stage1
    n_replay = round(settings.replay_share * len(train_pairs))
    replay = stage1_replay(s1.data, s1.max_examples, s1.val_size, params.train.seed, n_replay, settings.seed)
    train_set = train_pairs + replay
    random.Random(settings.seed).shuffle(train_set)
    train = settings.train_params(params.train)
    setup = TrainSetup(
        lora=params.lora,
        train=train,
        epochs=epochs_for_updates(len(train_set), train, settings.epochs, settings.min_updates),
        model=params.model,
        title=f"Stage 2, round {round_name}: synthetic QA from {start_from}",
    )
    figures = train_adapter(
        base,
        train_set,
        val_pairs,
        setup,
        models_dir / f"stage2_{round_name}",
        checkpoints / f"stage2_{round_name}",
        plots_dir / round_name,
        init_adapter=models_dir / start_from,
    )
    figures["examples"].update(qa_pairs=len(train_pairs), replay=len(replay), qa_validation=len(val_pairs))
    if is_main_process():
        write_json(metrics_dir / f"{round_name}.json", {"round": round_name, "from": start_from, **figures})
    return (
        f"{len(train_pairs)} QA pairs + {len(replay)} replayed, loss {figures['train_loss_first']} -> "
        f"{figures['train_loss_final']}, validation {figures['val_loss_initial']} -> {figures['val_loss_final']}"
    )


if __name__ == "__main__":
    main()
