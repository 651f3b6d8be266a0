"""PubMedQA label scoring: 500 questions answered yes / no / maybe by label likelihood after the RAG prompt.

    python benchmarks/bench_pubmedqa.py [--base data/models/base] [--n 500]

Builds a PubMedQA index in a temporary folder (prepare + index on data/raw/corpus/pubmedqa), then
scores the questions of data/raw/eval/pubmedqa_dev.jsonl. Target (issue: generator and evaluate):
500 questions under 5 minutes on 2 cores.
"""

import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

from simrag.config import EmbedderParams, IndexParams, ModelParams, PrepareParams, load_params
from simrag.evaluation import LABELS, load_questions
from simrag.generation import label_logprobs
from simrag.indexing import build_index
from simrag.jsonio import write_jsonl
from simrag.machine import describe
from simrag.models import load_generator
from simrag.prepare import prepare_corpus
from simrag.prompting import LABEL_INSTRUCTION, fit_context, rag_messages, render
from simrag.retrieval import Retriever


@click.command()
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base")
@click.option("--corpus", type=click.Path(path_type=Path), default="data/raw/corpus/pubmedqa")
@click.option("--questions", type=click.Path(path_type=Path), default="data/raw/eval/pubmedqa_dev.jsonl")
@click.option("--n", type=int, default=500)
@click.option("--context-tokens", type=int, default=None, help="Context budget [generation.max_context_tokens].")
def main(base: Path, corpus: Path, questions: Path, n: int, context_tokens: int | None) -> None:
    params = load_params()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        chunks = prepare_corpus(PrepareParams(corpus_dir=str(corpus)), EmbedderParams()).chunks
        write_jsonl(Path(tmp) / "chunks.jsonl", (c.to_dict() for c in chunks))
        build_index(Path(tmp) / "chunks.jsonl", Path(tmp) / "index", EmbedderParams(), IndexParams())
        print(f"PubMedQA index: {len(chunks)} chunks in {time.perf_counter() - started:.0f} s")
        retriever = Retriever(Path(tmp) / "index", top_k=params.retrieval.top_k)
        generator = load_generator(base, params=ModelParams(device="cpu"))
        items, _ = load_questions(questions, n)
        started = time.perf_counter()
        texts = [q["question"] for q in items]
        instruction = LABEL_INSTRUCTION.format(labels=", ".join(LABELS))
        budget = context_tokens if context_tokens is not None else params.generation.max_context_tokens
        prompts = [
            render(generator.tokenizer, rag_messages(q, fit_context(h, generator.tokenizer, budget), instruction))
            for q, h in zip(texts, retriever.search_many(texts), strict=True)
        ]
        scores = label_logprobs(generator, prompts, list(LABELS), params.generation.batch_size)
        seconds = time.perf_counter() - started
    predicted = [LABELS[i] for i in np.argmax(scores, axis=1)]
    accuracy = np.mean([p == q["label"] for p, q in zip(predicted, items, strict=True)])
    majority = max(np.mean([q["label"] == label for q in items]) for label in LABELS)
    print(f"machine: {describe()}, {torch.get_num_threads()} threads; context up to {budget} tokens")
    print(f"{len(items)} questions scored in {seconds:.0f} s ({seconds / len(items) * 1000:.0f} ms each)")
    print(
        f"accuracy {accuracy:.3f} (majority class {majority:.3f}); predicted: "
        + ", ".join(f"{label} {predicted.count(label)}" for label in LABELS)
    )


if __name__ == "__main__":
    main()
