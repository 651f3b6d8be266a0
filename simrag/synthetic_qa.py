"""Stage 2's data: the current model writes QA pairs from corpus chunks, and retrieval decides which to keep.

Three recipes (`stage2.recipe`):

- `extractive` (the default): answer sentences are picked from the chunk's prose by rule
  (`simrag.answer_spans`), and the model writes a question for each, shown the sentence and its
  document's title: grounded answers that a 135M model could not extract itself;
- `simrag` (SimRAG's own): the model lists short answers found in a chunk, then writes a question for
  each answer given the chunk;
- `paper` (the reproduction paper's): the model writes questions about a chunk, then answers each one
  with retrieval-augmented generation, as at evaluation time.

Every candidate gets a verdict: the first check it fails, or `kept`. In order: `empty`, `truncated`,
`repetitive`, `copies_chunk` (the question is mostly a verbatim run of the chunk), `answer_not_in_chunk`,
`answer_not_findable` (extractive: the answer itself, as a query, does not retrieve its chunk, so no
question about it is likely to; no question is written), `answer_in_question` (the question gives the
answer away), `heading_answer` (the answer is a heading or label, not an answer), `off_topic` (question
and answer embed far apart: the question asks about something else), `duplicate` (a near-copy of a
question already kept), `not_retrieved` (no retrieved chunk holds the answer), `low_context_score` (the
chunk that holds it scores under `min_context_score`). The last two are the round trip: a pair is kept
only if retrieval with its question finds its answer.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from simrag.answer_spans import answer_spans
from simrag.config import GenerationParams, Params, Stage2Params
from simrag.embedding import embed
from simrag.errors import DataError
from simrag.generation import generate
from simrag.metrics import words
from simrag.models import Generator
from simrag.prompting import render
from simrag.qa_filter import (
    answer_in_question,
    answer_match,
    copy_share,
    heading_answer,
    is_near_duplicate,
    is_repetitive,
)
from simrag.rag import answer_questions
from simrag.records import QARecord
from simrag.retrieval import Hit, Retriever

log = logging.getLogger(__name__)

REASONS = (
    "empty",
    "truncated",
    "repetitive",
    "copies_chunk",
    "answer_not_in_chunk",
    "answer_not_findable",
    "answer_in_question",
    "heading_answer",
    "off_topic",
    "duplicate",
    "not_retrieved",
    "low_context_score",
)
WRITER_SYSTEM = "You write questions and answers for a study guide about technical documents."
ANSWERS_PROMPT = (
    "Passage:\n{chunk}\n\nList {n} key terms, names, commands or short facts from this passage, each copied "
    "exactly from it. One per line."
)
QUESTION_PROMPT = 'Passage:\n{chunk}\n\nWrite a question about this passage whose answer is "{answer}".'
# The extractive recipe shows the answer sentence and its document's title, not the whole chunk: a short
# prompt (~4x faster to read) on which a small model writes a question about that sentence, naming its subject.
SENTENCE_QUESTION_PROMPT = (
    "Document: {title}\n\nSentence: {answer}\n\nWrite one question that this sentence answers. "
    "Name what the question is about."
)
# The start of the assistant's reply, written for it: small models then answer in the asked-for form.
LIST_START = "1."
QUESTION_START = "Question:"
QUESTIONS_PROMPT = (
    "Passage:\n{chunk}\n\nWrite {n} different questions that this passage answers. One per line, nothing else."
)
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)]|[a-z][.)]|(?:answer|question|q|a)\s*\d*\s*[:.])\s*", re.IGNORECASE)


# --- parsing the model's outputs ------------------------------------------------------------------


def parse_lines(text: str, limit: int, drop_last: bool = False) -> list[str]:
    """Items of a one-per-line list: bullets, numbers and quotes stripped, empty and repeated ones dropped.
    `drop_last`: the output was cut off, so its last line may be incomplete."""
    lines = text.splitlines()
    if drop_last and lines:
        lines = lines[:-1]
    items: list[str] = []
    for line in lines:
        item = _BULLET.sub("", line).strip().strip("\"'`").strip()
        if item and item.lower() not in {i.lower() for i in items}:
            items.append(item)
    return items[:limit]


def parse_question(text: str) -> str:
    """The first question in a model's reply: the first line, a 'Question:' label removed, cut after its
    first '?'. Empty when it is not a question of at least two words."""
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip().strip("\"'`").strip()
        if not line:
            continue
        question = line[: line.index("?") + 1].strip() if "?" in line else ""
        return question if len(words(question)) >= 2 else ""
    return ""


# --- sampling chunks ------------------------------------------------------------------------------


def sample_chunks(chunks: Sequence[dict[str, Any]], settings: Stage2Params, seed: str) -> list[dict[str, Any]]:
    """Up to `max_chunks` chunks of at least `min_chunk_tokens`, drawn per source by `source_weights`
    (empty: sources in proportion to the corpus), reproducibly from `seed`."""
    usable = [c for c in chunks if int(c.get("n_tokens", 0)) >= settings.min_chunk_tokens]
    if not usable:
        raise DataError(
            f"no chunk of at least {settings.min_chunk_tokens} tokens in the corpus: lower stage2.min_chunk_tokens"
        )
    rng = random.Random(seed)
    if not settings.source_weights:
        return rng.sample(usable, min(settings.max_chunks, len(usable)))
    by_source: dict[str, list[dict[str, Any]]] = {}
    for chunk in usable:
        by_source.setdefault(str(chunk.get("source", "")), []).append(chunk)
    unknown = sorted(set(settings.source_weights) - set(by_source))
    if unknown:
        raise DataError(
            f"stage2.source_weights names sources not in the corpus: {', '.join(unknown)} "
            f"(sources: {', '.join(sorted(by_source))})"
        )
    total = sum(settings.source_weights.values())
    if total <= 0:
        raise DataError("stage2.source_weights: at least one weight must be positive")
    picked: list[dict[str, Any]] = []
    for source, weight in sorted(settings.source_weights.items()):
        want = round(settings.max_chunks * weight / total)
        pool = by_source[source]
        picked.extend(rng.sample(pool, min(want, len(pool))))
    rng.shuffle(picked)
    return picked


# --- candidates -----------------------------------------------------------------------------------


@dataclass
class Candidate:
    chunk: dict[str, Any]
    question: str = ""
    answer: str = ""
    truncated: bool = False
    verdict: str = ""
    checks: dict[str, float] = field(default_factory=dict)
    retrieved: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class WriterModel:
    """The model that writes a round's pairs: the base folder, its adapter (None: the base itself), a name."""

    base: Path
    adapter: Path | None
    name: str


@dataclass
class Writer:
    """The model that writes the pairs, and how it generates."""

    generator: Generator
    max_new_tokens: int  # per question or answer list (stage2.max_new_tokens)
    batch_size: int  # stage2.write_batch_size
    generation: GenerationParams  # the repetition penalty, and the paper recipe's RAG answers as evaluation's
    tokens: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, generator: Generator, settings: Stage2Params, generation: GenerationParams) -> Writer:
        """The writer of a round (or an evaluation set): its own token budget and batch, RAG answers as
        evaluation generates them."""
        return cls(generator, settings.max_new_tokens, settings.write_batch_size, generation)

    def ask(self, user_prompts: list[str], max_new_tokens: int, start: str = "") -> list[tuple[str, bool]]:
        """(reply, cut off at max_new_tokens) for each prompt; the reply begins with `start`, written for
        the model."""
        tokenizer = self.generator.tokenizer
        prompts = [
            render(tokenizer, [{"role": "system", "content": WRITER_SYSTEM}, {"role": "user", "content": p}]) + start
            for p in user_prompts
        ]
        return [(start + reply, cut) for reply, cut in self.run(prompts, max_new_tokens)]

    def run(self, prompts: list[str], max_new_tokens: int) -> list[tuple[str, bool]]:
        started = time.perf_counter()
        outputs = generate(
            self.generator,
            prompts,
            max_new_tokens=max_new_tokens,
            repetition_penalty=self.generation.repetition_penalty,
            batch_size=self.batch_size,
            progress=True,
        )
        self.seconds += time.perf_counter() - started
        self.tokens += sum(o.n_tokens for o in outputs)
        return [(o.text, o.n_tokens >= max_new_tokens) for o in outputs]

    def answer(self, retriever: Retriever, questions: list[str]) -> tuple[list[list[Hit]], list[tuple[str, bool]]]:
        """The paper recipe's RAG answers, as evaluation generates them: (hits, (answer, cut off)) per question."""
        rag = answer_questions(self.generator, retriever, questions, self.generation, self.batch_size, progress=True)
        self.seconds += rag.seconds
        self.tokens += sum(g.n_tokens for g in rag.generations)
        limit = self.generation.max_new_tokens
        return rag.hits, [(g.text, g.n_tokens >= limit) for g in rag.generations]


def simrag_candidates(
    writer: Writer, chunks: list[dict[str, Any]], n_answers: int, min_answer_f1: float
) -> list[Candidate]:
    """SimRAG's recipe: answers found in each chunk first, then a question for each answer.

    The model lists a few more answers than wanted; the first `n_answers` found in the chunk are asked
    about, the ones not found are kept as rejected candidates (`answer_not_in_chunk`) without a question.
    """
    replies = writer.ask(
        [ANSWERS_PROMPT.format(chunk=c["text"], n=n_answers + 1) for c in chunks], writer.max_new_tokens, LIST_START
    )
    candidates: list[Candidate] = []
    for chunk, (reply, cut) in zip(chunks, replies, strict=True):
        answers = parse_lines(reply, n_answers + 1, drop_last=cut)
        if not answers:
            candidates.append(Candidate(chunk, truncated=cut))
        asked = 0
        for answer in answers:
            if answer_match(answer, chunk["text"]) < min_answer_f1:  # no question asked; the verdict says why
                candidates.append(Candidate(chunk, answer=answer, verdict="answer_not_in_chunk"))
            elif asked < n_answers:
                candidates.append(Candidate(chunk, answer=answer))
                asked += 1
    asking = [c for c in candidates if c.answer and not c.verdict]
    ask_questions(writer, asking, [QUESTION_PROMPT.format(chunk=c.chunk["text"], answer=c.answer) for c in asking])
    return candidates


def ask_questions(writer: Writer, asking: list[Candidate], prompts: list[str]) -> None:
    """The model writes one question per candidate from its prompt; a reply with no question is empty
    (or truncated, when it was cut off)."""
    for candidate, (reply, cut) in zip(asking, writer.ask(prompts, writer.max_new_tokens, QUESTION_START), strict=True):
        candidate.question = parse_question(reply)
        candidate.truncated = cut and not candidate.question


def holding_hits(answer: str, hits: list[Hit], settings: Stage2Params) -> list[Hit]:
    """The retrieved chunks that hold `answer` (verbatim, or token F1 with a window of at least min_answer_f1)."""
    return [h for h in hits if answer_match(answer, h.text) >= settings.min_answer_f1]


def mark_unfindable(candidates: list[Candidate], retriever: Retriever, settings: Stage2Params) -> None:
    """`answer_not_findable` for each answer that, as the query, does not retrieve a chunk holding it with a
    score of at least min_context_score; each answer's best such score is its `answer_self_score`."""
    with_answer = [c for c in candidates if c.answer and not c.verdict]
    for c, hits in zip(with_answer, retriever.search_many([c.answer for c in with_answer]), strict=True):
        holding = holding_hits(c.answer, hits, settings)
        c.checks["answer_self_score"] = round(max((h.score for h in holding), default=0.0), 4)
        if c.checks["answer_self_score"] < settings.min_context_score:
            c.verdict = "answer_not_findable"


def extractive_candidates(
    writer: Writer, retriever: Retriever, chunks: list[dict[str, Any]], settings: Stage2Params
) -> list[Candidate]:
    """The extractive recipe: up to `answers_per_chunk` answers taken from each chunk, a question written by
    the model for each. A chunk with no usable sentence gives one empty candidate.

    With `answer_must_retrieve`, an answer that does not retrieve its own chunk when it is the query gets
    no question: a question, shorter and vaguer than its answer, rarely does better, and writing questions
    is the round's cost."""
    candidates: list[Candidate] = []
    for chunk in chunks:
        spans = answer_spans(chunk["text"], settings.answers_per_chunk, sentences=settings.answer_sentences)
        candidates.extend(Candidate(chunk, answer=span) for span in spans)
        if not spans:
            candidates.append(Candidate(chunk))
    if settings.answer_must_retrieve:
        mark_unfindable(candidates, retriever, settings)
    asking = [c for c in candidates if c.answer and not c.verdict]
    prompts = [SENTENCE_QUESTION_PROMPT.format(title=c.chunk.get("title") or "", answer=c.answer) for c in asking]
    ask_questions(writer, asking, prompts)
    return candidates


def paper_candidates(
    writer: Writer, retriever: Retriever, chunks: list[dict[str, Any]], n_questions: int
) -> list[Candidate]:
    """The reproduction paper's recipe: questions about each chunk, each answered with RAG."""
    replies = writer.ask(
        [QUESTIONS_PROMPT.format(chunk=c["text"], n=n_questions) for c in chunks], writer.max_new_tokens, LIST_START
    )
    candidates: list[Candidate] = []
    for chunk, (reply, cut) in zip(chunks, replies, strict=True):
        questions = [q for q in parse_lines(reply, n_questions, drop_last=cut) if q.endswith("?")]
        if not questions:
            candidates.append(Candidate(chunk, truncated=cut))
        candidates.extend(Candidate(chunk, question=q) for q in questions)
    asking = [c for c in candidates if c.question]
    hits, answers = writer.answer(retriever, [c.question for c in asking])
    for candidate, found, (reply, cut) in zip(asking, hits, answers, strict=True):
        candidate.answer, candidate.truncated, candidate.retrieved = reply, cut, found
    return candidates


# --- the filter -----------------------------------------------------------------------------------


def judge(
    candidates: list[Candidate],
    retriever: Retriever,
    settings: Stage2Params,
    kept_questions: list[str] | None = None,
) -> Counter:
    """Give every candidate its verdict (see the module's docstring); returns the count per verdict.
    `kept_questions`: the questions kept so far in this round (extended here), for the duplicate check."""
    kept_questions = [] if kept_questions is None else kept_questions
    need_search = [c for c in candidates if c.question and c.answer and not c.retrieved]
    for candidate, hits in zip(need_search, retriever.search_many([c.question for c in need_search]), strict=True):
        candidate.retrieved = hits
    asked = [c for c in candidates if c.question and c.answer]
    if asked:  # how near question and answer are, by the retriever's own embedder
        vectors = embed(retriever.model, [t for c in asked for t in (c.question, c.answer)], batch_size=64)
        for c, q, a in zip(asked, vectors[0::2], vectors[1::2], strict=True):
            c.checks["question_answer_similarity"] = round(float(np.dot(q, a)), 4)
    for c in candidates:
        if c.answer and c.verdict == "answer_not_in_chunk":
            c.checks["answer_in_chunk"] = round(answer_match(c.answer, c.chunk["text"]), 4)
        if c.question and c.answer:
            c.checks["copy_share"] = round(copy_share(c.question, c.chunk["text"]), 4)
            c.checks["answer_in_chunk"] = round(answer_match(c.answer, c.chunk["text"]), 4)
            holding = holding_hits(c.answer, c.retrieved, settings)
            c.checks["answer_retrieved"] = float(bool(holding))
            c.checks["top_score"] = round(max((h.score for h in c.retrieved), default=0.0), 4)
            c.checks["context_score"] = round(max((h.score for h in holding), default=0.0), 4)
            c.checks["source_rank"] = next((i for i, h in enumerate(c.retrieved, 1) if h.chunk_id == c.chunk["id"]), 0)
        c.verdict = c.verdict or _verdict(c, settings, kept_questions)
        if c.verdict == "kept":
            kept_questions.append(c.question)
    return Counter(c.verdict for c in candidates)


def _verdict(c: Candidate, settings: Stage2Params, kept_questions: list[str]) -> str:
    if not c.question or not c.answer:
        return "truncated" if c.truncated else "empty"
    if c.truncated:
        return "truncated"
    if is_repetitive(c.question) or is_repetitive(c.answer):
        return "repetitive"
    if c.checks["copy_share"] > settings.max_copy_share:
        return "copies_chunk"
    if c.checks["answer_in_chunk"] < settings.min_answer_f1:
        return "answer_not_in_chunk"
    if answer_in_question(c.answer, c.question):
        return "answer_in_question"
    if heading_answer(c.answer, c.question, c.chunk["text"]):
        return "heading_answer"
    if c.checks["question_answer_similarity"] < settings.min_question_answer_similarity:
        return "off_topic"
    if is_near_duplicate(c.question, kept_questions, settings.max_duplicate_similarity):
        return "duplicate"
    if not c.checks["answer_retrieved"]:
        return "not_retrieved"
    if c.checks["context_score"] < settings.min_context_score:
        return "low_context_score"
    return "kept"


def write_round(
    writer: Writer, retriever: Retriever, chunks: list[dict[str, Any]], settings: Stage2Params
) -> tuple[list[Candidate], Counter, list[dict[str, Any]]]:
    """Candidates from `chunks`, `chunk_batch` chunks at a time, until `target_pairs` are kept (or the
    chunks run out). Returns every candidate with its verdict, the count per verdict, and the chunks used."""
    candidates: list[Candidate] = []
    verdicts: Counter = Counter()
    kept_questions: list[str] = []
    used: list[dict[str, Any]] = []
    for start in range(0, len(chunks), settings.chunk_batch):
        batch = chunks[start : start + settings.chunk_batch]
        if settings.recipe == "extractive":
            found = extractive_candidates(writer, retriever, batch, settings)
        elif settings.recipe == "simrag":
            found = simrag_candidates(writer, batch, settings.answers_per_chunk, settings.min_answer_f1)
        else:
            found = paper_candidates(writer, retriever, batch, settings.questions_per_chunk)
        verdicts += judge(found, retriever, settings, kept_questions)
        candidates += found
        used += batch
        log.info("%d chunks: %d of %d candidates kept", len(used), verdicts["kept"], len(candidates))
        if settings.target_pairs and verdicts["kept"] >= settings.target_pairs:
            break
    return candidates, verdicts, used


# --- records and figures --------------------------------------------------------------------------


def to_record(c: Candidate, round_name: str) -> QARecord:
    return {
        "round": round_name,
        "question": c.question,
        "answer": c.answer,
        "chunk_id": c.chunk["id"],
        "source": c.chunk.get("source", ""),
        "verdict": c.verdict,
        "checks": c.checks,
        "retrieved": [{"id": h.chunk_id, "score": round(h.score, 4)} for h in c.retrieved],
        "context": [h.text for h in c.retrieved] if c.verdict == "kept" else [],
    }


class QAFigures(TypedDict):
    """What a round's (or an evaluation set's) writing measured: in metrics/generate_qa/<round>.json after
    the round's name, its `from`, recipe and target, and before its peak memory."""

    chunks: int
    chunks_per_source: dict[str, int]
    candidates: int
    kept: int
    keep_rate: float
    rejected: dict[str, int]  # candidates per rejection reason
    mean_context_score_kept: float | None
    mean_top_score: float | None
    source_retrieved_rate: float | None
    context_score_quantiles: dict[str, float]
    kept_at_threshold: dict[str, int]
    passing_all_but_score: int
    generated_tokens: int
    generation_seconds: float
    tokens_per_second: float


_From = TypedDict("_From", {"from": str})  # "from" is a keyword: the functional form


class QARoundMetrics(QAFigures, _From):
    """metrics/generate_qa/<round>.json: the round, the model it started `from`, its recipe and target, what
    its writing measured, and the stage's peak memory."""

    round: str
    recipe: str
    target_pairs: int
    peak_memory_mb: float


def figures(candidates: list[Candidate], verdicts: Counter, writer: Writer, chunks: list[dict[str, Any]]) -> QAFigures:
    """What `metrics/generate_qa/<round>.json` holds: counts per verdict, scores, the score
    distribution (what each threshold would keep), speed."""
    kept = [c for c in candidates if c.verdict == "kept"]
    scored = [c.checks["context_score"] for c in candidates if c.checks.get("answer_retrieved")]
    quantiles = {f"p{q}": round(float(np.percentile(scored, q)), 4) for q in (10, 25, 50, 75, 90)} if scored else {}
    passing_before_score = len(kept) + verdicts["low_context_score"]
    return {
        "chunks": len(chunks),
        "chunks_per_source": dict(sorted(Counter(str(c.get("source", "")) for c in chunks).items())),
        "candidates": len(candidates),
        "kept": len(kept),
        "keep_rate": round(len(kept) / len(candidates), 4) if candidates else 0.0,
        "rejected": {reason: verdicts[reason] for reason in REASONS},
        "mean_context_score_kept": _mean([c.checks["context_score"] for c in kept]),
        "mean_top_score": _mean([c.checks["top_score"] for c in candidates if "top_score" in c.checks]),
        "source_retrieved_rate": _mean([c.checks.get("source_rank", 0) > 0 for c in kept]),
        "context_score_quantiles": quantiles,
        "kept_at_threshold": {
            f"{t:.1f}": sum(
                1 for c in candidates if c.verdict in ("kept", "low_context_score") and c.checks["context_score"] >= t
            )
            for t in (0.5, 0.6, 0.7, 0.8, 0.9)
        },
        "passing_all_but_score": passing_before_score,
        "generated_tokens": writer.tokens,
        "generation_seconds": round(writer.seconds, 1),
        "tokens_per_second": round(writer.tokens / writer.seconds, 1) if writer.seconds else 0.0,
    }


def _mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0


def samples_markdown(
    candidates: list[Candidate], round_name: str, n_kept: int = 20, n_per_reason: int = 4, of: str = ""
) -> str:
    """A random sample of the kept pairs, and of the rejected ones for every reason, for a person to judge;
    `of` names what they were written for (default: the round)."""
    rng = random.Random(round_name)
    kept = [c for c in candidates if c.verdict == "kept"]
    lines = [f"# Synthetic QA samples, {of or 'round ' + round_name}", ""]
    lines.append(f"{len(kept)} of {len(candidates)} candidates kept. A random sample of each verdict:")
    groups = [("Kept", kept, n_kept)]
    for reason in REASONS:
        group = [c for c in candidates if c.verdict == reason and (c.question or c.answer)]
        groups.append((f"Rejected: {reason} ({sum(c.verdict == reason for c in candidates)})", group, n_per_reason))
    for title, group, n in groups:
        lines += ["", f"## {title}", ""]
        for c in rng.sample(group, min(n, len(group))):
            score = c.checks.get("context_score", 0.0)
            lines.append(f"- **Q:** {_one_line(c.question) or '(none)'}  ")
            lines.append(f"  **A:** {_one_line(c.answer) or '(none)'}  ")
            lines.append(f"  *{c.verdict}; context score {score:.3f}; chunk `{c.chunk['id']}`*")
        if not group:
            lines.append("(none)")
    return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_pairs(
    picked: list[dict[str, Any]], settings: Stage2Params, params: Params, index_dir: Path, writer_model: WriterModel
) -> tuple[list[Candidate], dict[str, Any]]:
    """What a round (or an evaluation set) writes: the model writes about the `picked` chunks, with
    `settings`' recipe, and retrieval on `index_dir` judges each pair. (every candidate with its verdict,
    the figures of its metrics file: recipe and target first, peak memory last)."""
    from simrag.machine import peak_rss_mb
    from simrag.models import load_generator

    retriever = Retriever.from_params(index_dir, params)
    generator = load_generator(writer_model.base, writer_model.adapter, params.model, writer_model.name)
    writer = Writer.of(generator, settings, params.generation)
    candidates, verdicts, used = write_round(writer, retriever, picked, settings)
    written = figures(candidates, verdicts, writer, used)
    return candidates, {
        "recipe": settings.recipe,
        "target_pairs": settings.target_pairs,
        **written,
        "peak_memory_mb": peak_rss_mb(),
    }
