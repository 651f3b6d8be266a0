"""Answering questions with retrieval-augmented generation.

`answer_questions` is the one RAG path: evaluation, the timing stage, the paper recipe's QA writing and
`simrag ask`/`chat`/`serve` all answer through it (retrieve, fit the passages to the context budget,
render the chat prompt, generate greedily). `RagModel` holds what the commands share: the model of an
`evaluate.models` entry (its adapter merged into the base) and the retriever of its index, opened once
per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simrag.config import GenerationParams, Params
from simrag.errors import DataError
from simrag.generation import Generation, generate
from simrag.models import Generator, load_generator
from simrag.prompting import fit_context, rag_messages, render
from simrag.retrieval import Hit, Retriever


@dataclass(frozen=True)
class RagAnswers:
    """Questions answered with RAG, each with its hits, the passages its prompt holds and its generation."""

    hits: list[list[Hit]]
    passages: list[list[str]]
    generations: list[Generation]
    seconds: float  # the generation of the whole batch (retrieval not counted)


def answer_questions(
    generator: Generator,
    retriever: Retriever,
    questions: list[str],
    generation: GenerationParams,
    batch_size: int | None = None,
    top_k: int | None = None,
    progress: bool = False,
) -> RagAnswers:
    """Retrieve for every question (top_k: the retriever's own), fit the passages to
    generation.max_context_tokens, render the RAG prompt and generate greedily, `batch_size` prompts at a
    time (default generation.batch_size)."""
    hits = retriever.search_many(questions, top_k)
    tokenizer = generator.tokenizer
    passages = [fit_context(found, tokenizer, generation.max_context_tokens) for found in hits]
    prompts = [render(tokenizer, rag_messages(q, p)) for q, p in zip(questions, passages, strict=True)]
    started = time.perf_counter()
    generations = generate(
        generator,
        prompts,
        generation.max_new_tokens,
        generation.repetition_penalty,
        batch_size or generation.batch_size,
        progress,
    )
    return RagAnswers(hits, passages, generations, time.perf_counter() - started)


@dataclass(frozen=True)
class Answer:
    text: str
    hits: list[Hit]
    n_tokens: int  # new tokens generated, the end-of-turn token included
    seconds: float  # retrieval and generation
    cut_off: bool  # stopped at max_new_tokens


def model_weights(params: Params, model_name: str, base: Path) -> tuple[Any, Path | None]:
    """The `evaluate.models` entry named `model_name`, and its LoRA adapter (None when its weights are the
    base itself); an unknown name is a DataError that lists the known ones."""
    if model_name not in params.evaluate.models:
        raise DataError(f"unknown model {model_name!r}: evaluate.models has {', '.join(params.evaluate.models)}")
    from simrag.models import adapter_of

    entry = params.evaluate.models[model_name]
    return entry, adapter_of(entry.weights, base)


class RagModel:
    """One model and one retriever; `answer` is safe to call from several threads (one at a time)."""

    def __init__(
        self, params: Params, model_name: str, base: Path, index_dir: Path | None = None, top_k: int | None = None
    ) -> None:
        entry, adapter = model_weights(params, model_name, base)
        self.name = model_name
        self.params = params
        self.index_dir = Path(index_dir or entry.index)
        self.retriever = Retriever.from_params(self.index_dir, params, top_k)
        self.generator = load_generator(base, adapter, params.model, name=model_name)
        self._lock = threading.Lock()

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        with self._lock:
            return self.retriever.search(query, k)

    def answer(self, question: str, max_new_tokens: int | None = None, top_k: int | None = None) -> Answer:
        generation = self.params.generation
        if max_new_tokens:
            generation = generation.model_copy(update={"max_new_tokens": max_new_tokens})
        with self._lock:
            started = time.perf_counter()
            rag = answer_questions(self.generator, self.retriever, [question], generation, batch_size=1, top_k=top_k)
            out = rag.generations[0]
            took = time.perf_counter() - started
            return Answer(out.text, rag.hits[0], out.n_tokens, took, out.n_tokens >= generation.max_new_tokens)
