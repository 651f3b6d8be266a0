"""Batched RAG generation throughput of the generator, on real evaluation prompts.

    python benchmarks/bench_generation.py [--base data/models/base] [--n 32] [--batch-sizes 1,8,16]

Target (issue: generator and evaluate): at least 50 generated tokens/s in aggregate with
SmolLM2-135M on 2 CPU cores, batched.
"""

import json
import time
from pathlib import Path

import click
import torch

from simrag.config import ModelParams, load_params
from simrag.generation import generate
from simrag.machine import describe
from simrag.models import load_generator
from simrag.prompting import fit_context, rag_messages, render
from simrag.retrieval import Retriever


@click.command()
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index")
@click.option("--questions", type=click.Path(path_type=Path), default="data/raw/eval/devops_public.jsonl")
@click.option("--n", type=int, default=32)
@click.option("--batch-sizes", default="1,8,16")
def main(base: Path, index_dir: Path, questions: Path, n: int, batch_sizes: str) -> None:
    params = load_params()
    g = params.generation
    texts = [json.loads(line)["question"] for line in questions.read_text().splitlines() if line.strip()][:n]
    generator = load_generator(base, params=ModelParams(device="cpu", dtype=params.model.dtype))
    retriever = Retriever(index_dir, top_k=params.retrieval.top_k)
    prompts = [
        render(generator.tokenizer, rag_messages(q, fit_context(h, generator.tokenizer, g.max_context_tokens)))
        for q, h in zip(texts, retriever.search_many(texts), strict=True)
    ]
    dtype = next(generator.model.parameters()).dtype
    print(f"machine: {describe()}, {torch.get_num_threads()} threads; model {base} in {dtype}")
    print(
        f"{len(prompts)} RAG prompts (context up to {g.max_context_tokens} tokens), max {g.max_new_tokens} new tokens"
    )
    generate(generator, prompts[:1], max_new_tokens=4)  # warm-up
    for batch_size in map(int, batch_sizes.split(",")):
        started = time.perf_counter()
        answers = generate(generator, prompts, g.max_new_tokens, g.repetition_penalty, batch_size)
        seconds = time.perf_counter() - started
        tokens = sum(a.n_tokens for a in answers)
        rate, per_question = tokens / seconds, seconds / len(prompts)
        print(f"  batch {batch_size:2d}: {tokens} tokens, {seconds:.1f} s: {rate:.1f} tokens/s, {per_question:.2f} s/q")


if __name__ == "__main__":
    main()
