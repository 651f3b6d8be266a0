"""Retriever adaptation: fine-tune the embedder on a round's kept (question, source chunk) pairs.

The loss is sentence-transformers' MultipleNegativesRankingLoss: each question must score its own chunk
above every other chunk of the batch (in-batch negatives) and above its hard negatives, the best-ranked
chunks of the current index that come from another document and do not hold the answer. A held-out slice
of pairs is ranked among random corpus chunks before and after, so a round shows whether tuning helped.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

from simrag.curves import CurvesCallback, LiveCurves
from simrag.embedding import choose_device, choose_dtype, embed, load_embedder
from simrag.errors import ConfigError, DataError
from simrag.jsonio import atomic_dir
from simrag.machine import peak_memory_mb
from simrag.qa_filter import answer_match
from simrag.records import ChunkRecord, QARecord

if TYPE_CHECKING:
    from simrag.config import Params, RetrieverParams
    from simrag.retrieval import Retriever

log = logging.getLogger(__name__)


@dataclass
class RetrieverPair:
    question: str
    answer: str
    chunk_id: str
    doc: str
    positive: str  # the text of the chunk the question was written from
    negatives: list[str] = field(default_factory=list)


def training_pairs(records: list[QARecord], chunks: dict[str, ChunkRecord]) -> tuple[list[RetrieverPair], Counter]:
    """The kept QA records as (question, source chunk) pairs; a repeated question or a chunk the corpus
    no longer holds is skipped and counted."""
    pairs: list[RetrieverPair] = []
    skipped: Counter = Counter()
    seen: set[str] = set()
    for record in records:
        if record.get("verdict") != "kept":
            continue
        question = str(record.get("question") or "").strip()
        chunk = chunks.get(str(record.get("chunk_id")))
        if chunk is None:
            skipped["chunk_not_in_corpus"] += 1
        elif not question or question.lower() in seen:
            skipped["duplicate_question"] += 1
        else:
            seen.add(question.lower())
            pairs.append(
                RetrieverPair(question, str(record.get("answer") or ""), chunk["id"], str(chunk["doc"]), chunk["text"])
            )
    return pairs, skipped


def mine_hard_negatives(
    pairs: list[RetrieverPair], retriever: Retriever, per_pair: int, depth: int, answer_threshold: float = 0.6
) -> dict[str, int]:
    """Fill each pair's negatives with the best-ranked hits of `retriever` that are from another document
    and do not hold the answer (those would be false negatives). Returns how many were found and skipped."""
    counts = {"hard_negatives": 0, "skipped_same_doc": 0, "skipped_holds_answer": 0, "pairs_short_of_negatives": 0}
    if per_pair == 0 or not pairs:
        return counts
    for pair, hits in zip(pairs, retriever.search_many([p.question for p in pairs], k=depth), strict=True):
        pair.negatives = []
        for hit in hits:
            if len(pair.negatives) == per_pair:
                break
            if hit.doc == pair.doc or hit.chunk_id == pair.chunk_id:
                counts["skipped_same_doc"] += 1
            elif pair.answer and answer_match(pair.answer, hit.text) >= answer_threshold:
                counts["skipped_holds_answer"] += 1
            else:
                pair.negatives.append(hit.text)
        counts["hard_negatives"] += len(pair.negatives)
        counts["pairs_short_of_negatives"] += len(pair.negatives) < per_pair
    return counts


def split_pairs(
    pairs: list[RetrieverPair], val_size: int, seed: int
) -> tuple[list[RetrieverPair], list[RetrieverPair]]:
    """(train, validation): a seeded shuffle, `val_size` held out (never more than a quarter)."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    n_val = min(val_size, len(shuffled) // 4)
    return shuffled[n_val:], shuffled[:n_val]


def ranking(
    model: Any, pairs: list[RetrieverPair], distractors: list[str], k: int = 5, bf16: bool = False
) -> dict[str, float]:
    """How `model` ranks each pair's chunk among every pair's chunk and negatives and the distractors:
    mean reciprocal rank, recall@1 and recall@k. `bf16`: embed under bf16 autocast (as the index does)."""
    import torch

    if not pairs:
        return {"mrr": 0.0, "recall_at_1": 0.0, f"recall_at_{k}": 0.0, "queries": 0, "candidates": 0}
    texts = list(dict.fromkeys([p.positive for p in pairs] + [n for p in pairs for n in p.negatives] + distractors))
    position = {text: i for i, text in enumerate(texts)}
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        corpus = embed(model, texts, batch_size=32)
        queries = embed(model, [p.question for p in pairs], batch_size=32)
    scores = queries @ corpus.T
    ranks = []
    for row, pair in enumerate(pairs):
        own = scores[row, position[pair.positive]]
        ranks.append(1 + int(np.sum(scores[row] > own)))
    ranks_arr = np.array(ranks)
    return {
        "mrr": round(float(np.mean(1.0 / ranks_arr)), 4),
        "recall_at_1": round(float(np.mean(ranks_arr <= 1)), 4),
        f"recall_at_{k}": round(float(np.mean(ranks_arr <= k)), 4),
        "queries": len(pairs),
        "candidates": len(texts),
    }


def drop_attention_dropout(model: Any) -> int:
    """Switch off dropout on attention probabilities (hidden-state dropout stays); returns how many layers.

    On a CPU, scaled_dot_product_attention with dropout leaves its fused kernel for the math path: a
    training step of MiniLM at batch 32 takes ~3x as long with it as without.
    """
    import torch

    changed = 0
    for module in model.modules():
        if "Attention" not in type(module).__name__:
            continue
        if isinstance(getattr(module, "dropout", None), torch.nn.Dropout) and module.dropout.p > 0:
            module.dropout.p = 0.0
            changed += 1
        elif isinstance(getattr(module, "attention_dropout", None), float) and module.attention_dropout > 0:
            module.attention_dropout = 0.0
            changed += 1
    return changed


def _dataset(pairs: list[RetrieverPair], per_pair: int, fallback: list[str], seed: int) -> tuple[Any, int]:
    """anchor, positive, negative_1..n columns; a pair short of hard negatives gets random corpus chunks."""
    from datasets import Dataset

    rng = random.Random(seed)
    names = ["anchor", "positive", *(f"negative_{i + 1}" for i in range(per_pair))]
    columns: dict[str, list[str]] = {name: [] for name in names}
    filled = 0
    for pair in pairs:
        columns["anchor"].append(pair.question)
        columns["positive"].append(pair.positive)
        negatives = list(pair.negatives)
        while len(negatives) < per_pair:
            pick = rng.choice(fallback)
            while pick == pair.positive and len(fallback) > 1:  # never the pair's own chunk
                pick = rng.choice(fallback)
            negatives.append(pick)
            filled += 1
        for i, text in enumerate(negatives):
            columns[f"negative_{i + 1}"].append(text)
    return Dataset.from_dict(columns), filled


class AutocastTrainer(SentenceTransformerTrainer):
    """The Trainer casts to bf16 on CUDA only; on a CPU the loss must run inside autocast itself (~2x)."""

    def compute_loss(self, *args: Any, **kwargs: Any) -> Any:
        with self.accelerator.autocast():
            return super().compute_loss(*args, **kwargs)


def _precision(params: RetrieverParams, device: str) -> bool:
    """Whether the tuning runs in bf16 autocast (fp16 is taken as bf16: the loss needs its range)."""
    import torch

    compute = choose_dtype("auto" if params.dtype == "auto" else params.dtype, device)
    return compute in (torch.bfloat16, torch.float16)


def _arguments(params: RetrieverParams, device: str, bf16: bool, work: Path, n_train: int) -> Any:
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    return SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=min(params.batch_size, n_train),
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio,
        lr_scheduler_type="linear",
        bf16=bf16,
        use_cpu=device == "cpu",
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # the same chunk twice in a batch would be a false negative
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=params.seed,
        data_seed=params.seed,
        dataloader_num_workers=0,
    )


def train_embedder(
    start: str,
    train: list[RetrieverPair],
    val: list[RetrieverPair],
    distractors: list[str],
    params: RetrieverParams,
    max_seq_length: int,
    out_dir: Path,
    plots_dir: Path,
    title: str,
) -> dict[str, Any]:
    """Tune embedder `start` on `train`, save it to `out_dir` (a sentence-transformers folder) and return
    the run's figures, the held-out ranking before and after included: setup -> fit -> summary."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import PrinterCallback, set_seed

    if len(train) < 2:
        raise DataError(f"{len(train)} training pair(s): in-batch negatives need at least 2")
    started = time.perf_counter()
    set_seed(params.seed)
    device = choose_device(params.device)
    bf16 = _precision(params, device)
    model = load_embedder(start, device, "fp32", max_seq_length)  # fp32 weights; bf16 only inside autocast
    if device == "cpu":
        drop_attention_dropout(model)
    before = ranking(model, val, distractors, bf16=bf16)
    dataset, filled = _dataset(train, params.hard_negatives, distractors or [p.positive for p in train], params.seed)
    work = Path(out_dir).with_name(f".{Path(out_dir).name}.work")
    args = _arguments(params, device, bf16, work, len(train))
    # set up by the arguments: one process, or one of several under `accelerate launch`; only the main one writes
    state_of_run = args.distributed_state
    curves = LiveCurves(Path(plots_dir)) if state_of_run.is_main_process else None
    trainer = AutocastTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[CurvesCallback(curves, state_of_run.is_main_process, started)],
    )
    trainer.remove_callback(PrinterCallback)  # the curves callback logs each step instead
    log.info(
        "training the embedder: %d pairs (%d held out), %d hard negatives each, %s, %s",
        len(train),
        len(val),
        params.hard_negatives,
        device,
        "bf16 autocast" if bf16 else "fp32",
    )
    output = trainer.train()
    after = ranking(model, val, distractors, bf16=bf16)
    if curves:
        curves.close(trainer.state.log_history, title, ylabel="loss (multiple negatives ranking)")
        with atomic_dir(Path(out_dir)) as tmp:
            model.save(str(tmp))
        shutil.rmtree(work, ignore_errors=True)
    state_of_run.wait_for_everyone()
    pairs = {"train": len(train), "validation": len(val), "random_negatives": filled}
    return _summary(trainer, output, pairs, (before, after), started, Path(out_dir))


def _summary(
    trainer: Any,
    output: Any,
    pairs: dict[str, int],
    rankings: tuple[dict[str, Any], dict[str, Any]],
    started: float,
    out_dir: Path,
) -> dict[str, Any]:
    """The run's figures, as metrics/train_retriever/<round>.json holds them."""
    state, n_train = trainer.state, pairs["train"]
    losses = [e["loss"] for e in state.log_history if "loss" in e]
    runtime = output.metrics.get("train_runtime", 0.0)
    return {
        "pairs": pairs,
        "steps": state.global_step,
        "epochs": round(state.epoch or 0.0, 3),
        "train_loss_first": round(losses[0], 4) if losses else None,
        "train_loss_final": round(losses[-1], 4) if losses else None,
        "train_loss_mean": round(output.training_loss, 4),
        "validation_before": rankings[0],
        "validation_after": rankings[1],
        "pairs_per_second": round(n_train * (state.epoch or 0.0) / runtime, 2) if runtime else 0.0,
        "train_seconds": round(runtime, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "device": "cpu" if trainer.args.use_cpu else "cuda",
        "precision": "bf16 autocast" if trainer.args.bf16 else "fp32",
        "embedder_mb": round(sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()) / 2**20, 2),
    }


def adapt_retriever(
    round_name: str, params: Params, chunks: Path, qa_dir: Path, models_dir: Path, plots_dir: Path
) -> dict[str, Any]:
    """Round `round_name`'s retriever adaptation (`retriever.rounds`): its kept pairs, hard negatives mined
    on the index it retrieved from, the held-out pairs ranked among random chunks, the embedder tuned into
    `models_dir`/embedder_<round>. Returns the figures of metrics/train_retriever/<round>.json."""
    from simrag.records import read_chunks, read_round
    from simrag.retrieval import Retriever

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
    title = f"Retriever, round {round_name}: {len(train)} synthetic QA pairs"
    figures = train_embedder(
        start,
        train,
        val,
        distractors,
        settings,
        params.embedder.max_seq_length,
        models_dir / f"embedder_{round_name}",
        plots_dir / round_name,
        title=title,
    )
    peak, memory_kind = peak_memory_mb(figures["device"])
    return {
        "round": round_name,
        "from": start,
        "index": str(index_dir),
        **figures,
        "mining": mined,
        "skipped": dict(skipped),
        "peak_memory_mb": peak,
        "memory_kind": memory_kind,
    }
