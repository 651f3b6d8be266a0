"""A Stage 2 round's training: its kept QA pairs as RAG prompts, a validation slice of them, and Stage 1
instructions replayed from Stage 1's training split (never its validation split); then the run that
continues the round's starting adapter on them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from simrag.config import Params, Stage1Params, Stage2Params
from simrag.errors import DataError
from simrag.instructions import Conversation, split_validation, stage1_replay
from simrag.prompting import fit_passages, rag_messages
from simrag.records import QARecord, read_round
from simrag.training import TrainMetrics, TrainSetup, epochs_for_updates, train_adapter


@dataclass(frozen=True)
class RoundData:
    train: list[Conversation]  # the round's training pairs and the replayed instructions, shuffled
    validation: list[Conversation]  # held-out kept pairs: the round's validation loss
    qa_pairs: int  # kept pairs in `train`
    replay: int  # Stage 1 instructions in `train`


def round_data(
    records: list[QARecord],
    round_name: str,
    settings: Stage2Params,
    stage1: Stage1Params,
    split_seed: int,
    tokenizer: Any,
) -> RoundData:
    """What round `round_name` trains on, from its `generate_qa` records; `split_seed` is Stage 1's
    train.seed, so the replay draws from the records Stage 1 trained on. Too few kept pairs stop the
    round with a message naming the knobs that keep more."""
    kept = [r for r in records if r.get("verdict") == "kept"]
    if len(kept) < settings.min_pairs:
        raise DataError(
            f"round {round_name}: {len(kept)} of {len(records)} synthetic QA pairs were kept, fewer than "
            f"stage2.min_pairs ({settings.min_pairs}). More are kept with a larger stage2.max_chunks, a lower "
            "stage2.min_context_score or stage2.min_answer_f1 (each can be set for one round under "
            f"rounds.{round_name}); see metrics/generate_qa/{round_name}.json for why pairs were rejected"
        )
    pairs = qa_conversations(kept, tokenizer, settings.max_context_tokens)
    random.Random(f"{settings.seed}:{round_name}").shuffle(pairs)
    train_pairs, val_pairs = split_validation(pairs, settings.val_size)
    n_replay = round(settings.replay_share * len(train_pairs))
    replay = stage1_replay(stage1.data, stage1.max_examples, stage1.val_size, split_seed, n_replay, settings.seed)
    train_set = train_pairs + replay
    random.Random(settings.seed).shuffle(train_set)
    return RoundData(train_set, val_pairs, len(train_pairs), len(replay))


def qa_conversations(records: list[QARecord], tokenizer: Any, max_context_tokens: int) -> list[Conversation]:
    """Kept pairs as RAG training examples: the evaluation prompt (system prompt, the passages retrieved
    for the question, cut to `max_context_tokens`, the question) and the answer as the assistant turn."""
    conversations = []
    for record in records:
        messages = rag_messages(record["question"], fit_passages(record["context"], tokenizer, max_context_tokens))
        conversations.append(
            Conversation(
                user=messages[1]["content"],
                assistant=record["answer"],
                source=f"qa:{record.get('round', '')}",
                system=messages[0]["content"],
            )
        )
    return conversations


_From = TypedDict("_From", {"from": str})  # "from" is a keyword: the functional form


class RoundTrainMetrics(TrainMetrics, _From):
    """metrics/train_stage2/<round>.json: the round, the model it continued `from`, the run's figures."""

    round: str


def train_round(
    round_name: str, params: Params, base: Path, models_dir: Path, qa_dir: Path, checkpoints: Path, plots_dir: Path
) -> RoundTrainMetrics:
    """Train round `round_name` (data/models/stage2_<round>, continuing its `from` adapter) and return the
    figures of metrics/train_stage2/<round>.json."""
    from simrag.models import load_tokenizer

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
    return {"round": round_name, "from": start_from, **figures}
