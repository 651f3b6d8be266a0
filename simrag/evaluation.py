"""Evaluating one model on one question set: retrieve, answer, score each question, summarise.

A model is a generator (weights) and an index. Two models on the same index retrieve identical
contexts (the same top-k and context budget), so their difference is the generator's alone, as in the
paper's baseline design; the same weights on two indexes differ by the retriever alone. Which pairs the
report compares, and what each isolates, is decided in `simrag.report`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import numpy as np

from simrag import metrics as m
from simrag.config import GenerationParams, Params
from simrag.embedding import embed
from simrag.errors import DataError
from simrag.generation import label_logprobs
from simrag.models import Generator
from simrag.prompting import LABEL_INSTRUCTION, rag_messages, render
from simrag.rag import answer_questions
from simrag.retrieval import Hit, Retriever

log = logging.getLogger(__name__)

LABELS = ("yes", "no", "maybe")  # PubMedQA's answer labels


class RetrievedChunk(TypedDict):
    chunk_id: str
    doc: str
    score: float  # cosine


class EvalRecord(TypedDict):
    """One question of a set, as data/eval/<model>/<set>.jsonl holds it."""

    id: str
    question: str
    retrieved: list[RetrievedChunk]  # in rank order
    answer: str
    new_tokens: int
    label: NotRequired[str]  # labelled sets (PubMedQA): the gold label and the model's
    predicted_label: NotRequired[str]
    scores: dict[str, float]  # metric -> this question's score (a metric without its inputs is absent)
    # The question itself scored as if it were the answer, on the reference metrics: what an answer that
    # only restates its question reaches (the reference answers restate their questions too)
    question_echo: NotRequired[dict[str, float]]


def label_variants(label: str) -> list[str]:
    """The spellings of a label a model may give first: case and a leading space ("yes", "Yes", " yes", ...)."""
    forms = [label.lower(), label.capitalize(), label.upper()]
    return list(dict.fromkeys(f for form in forms for f in (form, " " + form)))


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


@dataclass(frozen=True)
class Similarities:
    """A set's cosines by the reference embedder, each text embedded once."""

    relevance_ref: list[float]  # question vs its retrieved chunks (mean): context relevance, one scale
    to_question: list[float]  # answer vs question: does the answer stay on the question's subject
    to_reference: dict[int, float]  # answer vs reference answer, by question index: answer similarity
    echo: dict[int, float]  # question vs reference answer: the score of answering with the question itself


def similarities(
    embedder: Any, questions: list[dict[str, Any]], hits: list[list[Hit]], answers: list[str]
) -> Similarities:
    """Questions, answers, reference answers and retrieved chunks embedded once by `embedder`; an empty
    answer scores 0 against anything (RAGAS' answer semantic similarity, for the references)."""
    texts = [q["question"] for q in questions]
    referenced = [i for i, q in enumerate(questions) if q.get("reference_answer")]
    queries, replies = embed(embedder, texts), embed(embedder, answers)
    references = embed(embedder, [questions[i]["reference_answer"] for i in referenced])
    chunks = embed(embedder, [h.text for found in hits for h in found])
    relevance, start = [], 0
    for query, found in zip(queries, hits, strict=True):
        relevance.append(m.context_relevance((chunks[start : start + len(found)] @ query).tolist()))
        start += len(found)

    empty = [not a.strip() for a in answers]
    pairs = list(zip(referenced, references, strict=True))
    return Similarities(
        relevance_ref=relevance,
        to_question=[0.0 if empty[i] else m.cosine(replies[i], q) for i, q in enumerate(queries)],
        to_reference={i: 0.0 if empty[i] else m.cosine(replies[i], ref) for i, ref in pairs},
        echo={i: m.cosine(queries[i], ref) for i, ref in pairs},
    )


def label_scores(generator: Generator, prompts: list[str], batch_size: int) -> np.ndarray:
    """log P(label) per prompt and label of LABELS, each label's spellings (`label_variants`) added up."""
    variants = [label_variants(label) for label in LABELS]
    flat = [v for group in variants for v in group]
    logp = label_logprobs(generator, prompts, flat, batch_size)
    scores, start = [], 0
    for group in variants:
        scores.append(np.logaddexp.reduce(logp[:, start : start + len(group)], axis=1))
        start += len(group)
    return np.stack(scores, axis=1)


def reference_scores(answer: str, question: dict[str, Any], similarity: float | None) -> dict[str, float]:
    """An answer's scores against what the question's references hold: token F1, ROUGE-L and answer
    similarity against the reference answer, evidence recall of the evidence passage."""
    scores: dict[str, float] = {}
    if question.get("reference_answer"):
        scores["token_f1"] = m.token_f1(answer, question["reference_answer"])
        scores["rouge_l"] = m.rouge_l(answer, question["reference_answer"])
        scores["answer_similarity"] = float(similarity) if similarity is not None else 0.0
    if question.get("evidence"):
        scores["evidence_recall"] = m.evidence_recall(answer, question["evidence"])
    return scores


def question_scores(
    question: dict[str, Any],
    found: list[Hit],
    answer: str,
    context: str,
    relevance_ref: float,
    similarity: float | None,
    question_similarity: float,
    top_k: int,
) -> dict[str, float]:
    """One question's scores: the paper's (context relevance, rule-based quality, groundedness), how close
    the answer stays to its question, and those its references allow (`reference_scores`, gold-document
    recall@k and MRR)."""
    scores = {
        "context_relevance": m.context_relevance([h.score for h in found]),
        "context_relevance_ref": relevance_ref,
        "answer_quality": m.answer_quality(answer, context, question["question"]),
        "groundedness": m.groundedness(answer, context),
        "question_similarity": question_similarity,
        **reference_scores(answer, question, similarity),
    }
    if question.get("gold_doc"):
        docs = [h.doc for h in found]
        scores["recall_at_k"] = m.recall_at_k(docs, question["gold_doc"], top_k)
        scores["mrr"] = m.reciprocal_rank(docs, question["gold_doc"])
    return scores


def set_summary(
    questions: list[dict[str, Any]],
    records: list[EvalRecord],
    hits: list[list[Hit]],
    answers: list[Any],
    generation_seconds: float,
    bootstrap: tuple[int, int],
) -> dict[str, Any]:
    """The set's metrics: each score's mean with its 95% bootstrap CI, counts, throughput, labels."""
    chunk_scores = [h.score for found in hits for h in found]
    summary: dict[str, Any] = {
        "n": len(records),
        "empty_answers": sum(not a.text.strip() for a in answers),
        "refusals": sum(m.is_refusal(a.text) for a in answers),
        "hits_above_threshold": round(float(np.mean([float(h.above_threshold) for f in hits for h in f] or [0.0])), 4),
        # throughput of batched generation (generation.batch_size); per-query latency is measured apart, at
        # batch 1 (`timing`): a batch's wall time shared out over its questions is no per-question time
        "generation_seconds": round(generation_seconds, 1),
        "tokens_per_second": round(sum(a.n_tokens for a in answers) / generation_seconds, 2)
        if generation_seconds
        else 0.0,
        # the paper's CI: every retrieved chunk's score as one sample (n = questions x k)
        "context_relevance_pooled": m.summarise(chunk_scores, bootstrap),
    }
    names = dict.fromkeys(name for r in records for name in r["scores"])  # e.g. token_f1 only with references
    for name in names:
        summary[name] = m.summarise([r["scores"][name] for r in records if name in r["scores"]], bootstrap)
    if echo := m.echo_summary(records, bootstrap):
        summary["question_echo"] = echo
    if records and "predicted_label" in records[0]:
        counts = {label: sum(q["label"] == label for q in questions) for label in LABELS}
        summary["majority_baseline"] = round(max(counts.values()) / len(questions), 4)
        summary["predicted_labels"] = {label: sum(r["predicted_label"] == label for r in records) for label in LABELS}
        summary["true_labels"] = counts
    return summary


def evaluate_set(
    generator: Generator,
    retriever: Retriever,
    questions: list[dict[str, Any]],
    generation: GenerationParams,
    bootstrap: tuple[int, int] = (2000, 0),
    reference_embedder: Any = None,
    progress: bool = True,
) -> tuple[list[EvalRecord], dict[str, Any]]:
    """Per-question records and the set's metrics (each with a 95% bootstrap CI of `bootstrap` = (resamples,
    seed) and n).

    `reference_embedder` scores `context_relevance_ref`, `answer_similarity`, `question_similarity` and the
    question echo's similarity (default: the retriever's own embedder), one scale for every index.
    """
    reference_embedder = reference_embedder or retriever.model
    texts = [q["question"] for q in questions]
    rag = answer_questions(generator, retriever, texts, generation, progress=progress)
    hits, contexts, answers = rag.hits, rag.passages, rag.generations
    sims = similarities(reference_embedder, questions, hits, [a.text for a in answers])
    labelled = all(q.get("label") in LABELS for q in questions)
    if labelled:
        instruction = LABEL_INSTRUCTION.format(labels=", ".join(LABELS))
        label_prompts = [
            render(generator.tokenizer, rag_messages(q, c, instruction)) for q, c in zip(texts, contexts, strict=True)
        ]
        scores_of_labels = label_scores(generator, label_prompts, generation.batch_size)

    records: list[EvalRecord] = []
    for i, (question, found, answer) in enumerate(zip(questions, hits, answers, strict=True)):
        scores = question_scores(
            question,
            found,
            answer.text,
            "\n\n".join(contexts[i]),
            sims.relevance_ref[i],
            sims.to_reference.get(i),
            sims.to_question[i],
            retriever.top_k,
        )
        record: dict[str, Any] = {
            "id": question["id"],
            "question": question["question"],
            "retrieved": [{"chunk_id": h.chunk_id, "doc": h.doc, "score": round(h.score, 4)} for h in found],
            "answer": answer.text,
            "new_tokens": answer.n_tokens,
        }
        if labelled:
            predicted = LABELS[int(np.argmax(scores_of_labels[i]))]
            record.update(label=question["label"], predicted_label=predicted)
            scores["label_accuracy"] = float(predicted == question["label"])
        record["scores"] = {k: round(v, 4) for k, v in scores.items()}
        if echo := reference_scores(question["question"], question, sims.echo.get(i)):
            record["question_echo"] = {k: round(v, 4) for k, v in echo.items()}
        records.append(cast(EvalRecord, record))  # built in the file's key order: label fields before scores

    summary = set_summary(questions, records, hits, answers, rag.seconds, bootstrap)
    return records, summary


def evaluate_model(
    params: Params, model_name: str, weights: Path, base: Path, index_dir: Path
) -> dict[str, tuple[list[EvalRecord], dict[str, Any]]]:
    """{set: (per-question records, the set's metrics)} of one model on every `evaluate.sets` set: its
    weights (the base, or an adapter merged into it) answering from `index_dir`."""
    from simrag.embedding import load_embedder
    from simrag.models import adapter_of, load_generator

    sets = {
        name: load_questions(Path(path), params.evaluate.max_questions) for name, path in params.evaluate.sets.items()
    }
    retriever = Retriever.from_params(index_dir, params)
    # One reference embedder (embedder.model) scores every similarity (`similarities`) for every model, so
    # models on a tuned index compare on the same scale.
    reference = retriever.model
    if retriever.embedder != params.embedder.model:
        reference = load_embedder(params.embedder.model, max_seq_length=params.embedder.max_seq_length)
    generator = load_generator(base, adapter_of(weights, base), params.model, name=model_name)
    results = {}
    for set_name, (questions, skipped) in sets.items():
        records, summary = evaluate_set(
            generator,
            retriever,
            questions,
            params.generation,
            (params.evaluate.bootstrap_samples, params.evaluate.seed),
            reference_embedder=reference,
        )
        results[set_name] = (records, {**summary, "skipped_lines": skipped})
    return results
