"""DVC stage `train_retriever@<round>`: fine-tune the embedder on the (question, source chunk) pairs that
`generate_qa@<round>` kept, with in-batch and hard negatives -> data/models/embedder_<round>.

Tuning starts from the embedder of the index the round retrieved from, and mines its hard negatives there.
Writes the loss curve to plots/train_retriever/<round>/ and the figures to metrics/train_retriever/<round>.json.
"""

import random
from pathlib import Path

import click

from simrag.config import load_params
from simrag.errors import ConfigError, DataError
from simrag.indexing import read_chunks
from simrag.jsonio import write_json
from simrag.retrieval import Retriever
from simrag.retriever_training import mine_hard_negatives, split_pairs, train_embedder, training_pairs
from simrag.stage import is_main_process, stage
from simrag.synthetic_qa import read_round
from simrag.training import peak_memory_mb


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
    params = load_params(params_path)
    settings = params.retriever
    if round_name not in settings.rounds:
        raise ConfigError(f"round {round_name!r} is not in retriever.rounds ({', '.join(settings.rounds) or 'none'})")
    index_dir = Path(settings.rounds[round_name])
    _, round_settings = params.round_settings(round_name)
    corpus = {c["id"]: c for c in read_chunks(chunks)}
    pairs, skipped = training_pairs(read_round(qa_dir, round_name), corpus)
    if len(pairs) < 2 + settings.val_size:
        raise DataError(
            f"round {round_name}: {len(pairs)} kept pairs, too few to tune the embedder on (and hold out "
            f"retriever.val_size={settings.val_size}); keep more pairs (stage2.max_chunks) or drop "
            f"{round_name} from retriever.rounds"
        )
    train, val = split_pairs(pairs, settings.val_size, settings.seed)
    retriever = Retriever.from_params(index_dir, params, top_k=settings.negative_depth)
    mined = mine_hard_negatives(
        pairs, retriever, settings.hard_negatives, settings.negative_depth, round_settings.min_answer_f1
    )
    start = str(retriever.embedder)
    del retriever
    held_out = {p.chunk_id for p in val}
    pool = [c["text"] for c in corpus.values() if c["id"] not in held_out]
    distractors = random.Random(settings.seed).sample(pool, min(settings.val_distractors, len(pool)))
    figures = train_embedder(
        start,
        train,
        val,
        distractors,
        settings,
        params.embedder.max_seq_length,
        models_dir / f"embedder_{round_name}",
        plots_dir / round_name,
        title=f"Retriever, round {round_name}: {len(train)} synthetic QA pairs",
    )
    peak, memory_kind = peak_memory_mb(figures["device"])
    summary = {
        "round": round_name,
        "from": start,
        "index": str(index_dir),
        **figures,
        "mining": mined,
        "skipped": dict(skipped),
        "peak_memory_mb": peak,
        "memory_kind": memory_kind,
    }
    if is_main_process():
        write_json(metrics_dir / f"{round_name}.json", summary)
    before, after = figures["validation_before"], figures["validation_after"]
    return (
        f"{len(train)} pairs, loss {figures['train_loss_first']} -> {figures['train_loss_final']}, held-out MRR "
        f"{before['mrr']} -> {after['mrr']} among {after['candidates']} chunks"
    )


if __name__ == "__main__":
    main()
