"""Answering a question with retrieval-augmented generation, the model and the index loaded once.

What `simrag ask`, `simrag chat` and `simrag serve` share: the model of an `evaluate.models` entry (its
adapter merged into the base) and the retriever of its index, opened once per process, then one call per
question that retrieves, fits the passages to the context budget, renders the chat prompt and generates,
exactly as evaluation does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simrag.config import Params
from simrag.errors import DataError
from simrag.retrieval import Hit, Retriever


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
        from simrag.models import load_generator

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
        from simrag.generation import generate
        from simrag.prompting import fit_context, rag_messages, render

        g = self.params.generation
        limit = max_new_tokens or g.max_new_tokens
        with self._lock:
            started = time.perf_counter()
            hits = self.retriever.search(question, top_k)
            tokenizer = self.generator.tokenizer
            prompt = render(tokenizer, rag_messages(question, fit_context(hits, tokenizer, g.max_context_tokens)))
            out = generate(self.generator, [prompt], limit, g.repetition_penalty, batch_size=1)[0]
            return Answer(out.text, hits, out.n_tokens, time.perf_counter() - started, out.n_tokens >= limit)
