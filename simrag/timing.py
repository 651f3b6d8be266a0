"""Per-query response time at batch 1, every model on the same questions, interleaved.

Batched evaluation shares a batch's wall time out over its questions, which is no per-question time.
Here each question is answered by one model at a time (retrieval, prompt, generation at batch 1), and
the models take turns question by question, each question starting with the next model, so that a
slower or faster spell of a shared machine falls on all of them alike.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from simrag.config import GenerationParams
from simrag.metrics import bootstrap_ci
from simrag.models import Generator
from simrag.rag import answer_questions
from simrag.retrieval import Retriever


def answer_once(generator: Generator, retriever: Retriever, question: str, generation: GenerationParams) -> tuple:
    """(seconds, new tokens) of one question: retrieve, fit the context, render, generate at batch 1."""
    started = time.perf_counter()
    answer = answer_questions(generator, retriever, [question], generation, batch_size=1).generations[0]
    return time.perf_counter() - started, answer.n_tokens


def interleaved_times(
    models: dict[str, tuple[Generator, Retriever]],
    questions: list[str],
    generation: GenerationParams,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per model: mean, p50 and p95 seconds a query, mean new tokens, every question's time, and (for every
    model but the first, the baseline) the paired difference from the first with its bootstrap CI."""
    names = list(models)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    tokens: dict[str, list[int]] = {name: [] for name in names}
    for generator, retriever in models.values():  # one untimed warm-up each
        answer_once(generator, retriever, questions[0], generation)
    for i, question in enumerate(questions):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            took, n_tokens = answer_once(*models[name], question, generation)
            seconds[name].append(round(took, 4))
            tokens[name].append(n_tokens)
    result: dict[str, Any] = {}
    baseline = np.array(seconds[names[0]])
    for name in names:
        x = np.array(seconds[name])
        entry: dict[str, Any] = {
            "mean": round(float(x.mean()), 3),
            "p50": round(float(np.percentile(x, 50)), 3),
            "p95": round(float(np.percentile(x, 95)), 3),
            "new_tokens_mean": round(float(np.mean(tokens[name])), 1),
            "seconds": seconds[name],
        }
        if name != names[0]:
            ci = bootstrap_ci(x - baseline, samples, seed)
            entry["vs_baseline"] = {
                "diff": round(ci["mean"], 3),
                "ci_low": round(ci["ci_low"], 3),
                "ci_high": round(ci["ci_high"], 3),
            }
        result[name] = entry
    return result
