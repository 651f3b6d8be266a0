"""Evaluating one model on one question set: retrieve, answer, score each question, summarise.

Every model is evaluated on identical retrieval (the same index, top-k and context budget), so
differences between models come from the generator alone, as in the paper's baseline design.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simrag import metrics as m
from simrag.embedding import embed
from simrag.errors import DataError
from simrag.generation import generate, label_logprobs
from simrag.models import Generator
from simrag.prompting import LABEL_INSTRUCTION, fit_context, rag_messages, render
from simrag.retrieval import Hit, Retriever

log = logging.getLogger(__name__)

LABELS = ("yes", "no", "maybe")  # PubMedQA's answer labels


@dataclass(frozen=True)
class EvalConfig:
    max_new_tokens: int = 128
    repetition_penalty: float = 1.1
    max_context_tokens: int = 1024
    batch_size: int = 8
    bootstrap_samples: int = 2000
    seed: int = 0


def load_questions(path: Path, max_questions: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The questions of a JSON-lines file and the number of unusable lines skipped (each logged)."""
    if not path.is_file():
        raise DataError(f"evaluation set not found: {path} (fetch it with `dvc pull data/raw/eval.dvc`)")
    questions, skipped = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: not valid JSON, question skipped", path, number)
            skipped += 1
            continue
        if not isinstance(record, dict) or not str(record.get("question") or "").strip():
            log.warning("%s:%d: no `question`, skipped", path, number)
            skipped += 1
            continue
        record.setdefault("id", f"line{number}")
        questions.append(record)
        if max_questions and len(questions) == max_questions:
            break
    if not questions:
        raise DataError(f"{path} holds no usable question")
    return questions, skipped


def _summary(values: list[float], config: EvalConfig) -> dict[str, float]:
    return {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in m.bootstrap_ci(values, config.bootstrap_samples, config.seed).items()
    }


def reference_relevance(embedder: Any, questions: list[str], hits: list[list[Hit]]) -> list[float]:
    """Context relevance as `embedder` scores it: the mean cosine between each question and its retrieved
    chunks. With one reference embedder for every index, tuned retrievers are measured on one scale."""
    queries = embed(embedder, questions)
    chunks = embed(embedder, [h.text for found in hits for h in found])
    scores, start = [], 0
    for query, found in zip(queries, hits, strict=True):
        scores.append(m.context_relevance((chunks[start : start + len(found)] @ query).tolist()))
        start += len(found)
    return scores


def evaluate_set(
    generator: Generator,
    retriever: Retriever,
    questions: list[dict[str, Any]],
    config: EvalConfig,
    progress: bool = True,
    reference_embedder: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-question records and the set's metrics (each with a 95% bootstrap CI and n).

    `reference_embedder` scores `context_relevance_ref` (default: the retriever's own embedder).
    """
    texts = [q["question"] for q in questions]
    started = time.perf_counter()
    hits = retriever.search_many(texts)
    retrieval_seconds = (time.perf_counter() - started) / len(texts)
    relevance_ref = reference_relevance(reference_embedder or retriever.model, texts, hits)
    contexts = [fit_context(h, generator.tokenizer, config.max_context_tokens) for h in hits]
    prompts = [render(generator.tokenizer, rag_messages(q, c)) for q, c in zip(texts, contexts, strict=True)]
    answers = generate(
        generator, prompts, config.max_new_tokens, config.repetition_penalty, config.batch_size, progress
    )
    labelled = all(q.get("label") in LABELS for q in questions)
    if labelled:
        instruction = LABEL_INSTRUCTION.format(labels=", ".join(LABELS))
        label_prompts = [
            render(generator.tokenizer, rag_messages(q, c, instruction)) for q, c in zip(texts, contexts, strict=True)
        ]
        label_scores = label_logprobs(generator, label_prompts, list(LABELS), config.batch_size)

    records = []
    for i, (question, found, answer) in enumerate(zip(questions, hits, answers, strict=True)):
        context = "\n\n".join(contexts[i])
        scores = {
            "context_relevance": m.context_relevance([h.score for h in found]),
            "context_relevance_ref": relevance_ref[i],
            "answer_quality": m.answer_quality(answer.text, context, question["question"]),
            "groundedness": m.groundedness(answer.text, context),
        }
        if question.get("reference_answer"):
            scores["token_f1"] = m.token_f1(answer.text, question["reference_answer"])
            scores["rouge_l"] = m.rouge_l(answer.text, question["reference_answer"])
        if question.get("gold_doc"):
            docs = [h.doc for h in found]
            scores["recall_at_k"] = m.recall_at_k(docs, question["gold_doc"], retriever.top_k)
            scores["mrr"] = m.reciprocal_rank(docs, question["gold_doc"])
        record: dict[str, Any] = {
            "id": question["id"],
            "question": question["question"],
            "retrieved": [{"chunk_id": h.chunk_id, "doc": h.doc, "score": round(h.score, 4)} for h in found],
            "answer": answer.text,
            "seconds": round(retrieval_seconds + answer.seconds, 4),
            "new_tokens": answer.n_tokens,
        }
        if labelled:
            predicted = LABELS[int(np.argmax(label_scores[i]))]
            record.update(label=question["label"], predicted_label=predicted)
            scores["label_accuracy"] = float(predicted == question["label"])
        record["scores"] = {k: round(v, 4) for k, v in scores.items()}
        records.append(record)

    seconds = np.array([r["seconds"] for r in records])
    generation_seconds = sum(a.seconds for a in answers)
    summary: dict[str, Any] = {
        "n": len(records),
        "empty_answers": sum(not a.text for a in answers),
        "refusals": sum(m.is_refusal(a.text) for a in answers),
        "hits_above_threshold": round(float(np.mean([float(h.above_threshold) for f in hits for h in f] or [0.0])), 4),
        "response_seconds": {
            "mean": round(float(seconds.mean()), 3),
            "p50": round(float(np.percentile(seconds, 50)), 3),
            "p95": round(float(np.percentile(seconds, 95)), 3),
        },
        "tokens_per_second": round(sum(a.n_tokens for a in answers) / generation_seconds, 2)
        if generation_seconds
        else 0.0,
    }
    names = dict.fromkeys(name for r in records for name in r["scores"])  # e.g. token_f1 only with references
    for name in names:
        summary[name] = _summary([r["scores"][name] for r in records if name in r["scores"]], config)
    if labelled:
        counts = {label: sum(q["label"] == label for q in questions) for label in LABELS}
        summary["majority_baseline"] = round(max(counts.values()) / len(questions), 4)
    return records, summary
