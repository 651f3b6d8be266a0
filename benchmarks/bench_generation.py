"""Batched RAG generation throughput of the generator, on real evaluation prompts.

    python benchmarks/bench_generation.py [--base data/models/base] [--n 32] [--batch-sizes 1,8,16]

Target (issue: generator and evaluate): at least 50 generated tokens/s in aggregate with
SmolLM2-135M on 2 CPU cores, batched.

Then the key/value cache `generate()` decodes into on a CPU, static against growing, on the first
`--cache-batch` prompts: the same row-by-row prefill, then every one of `generation.max_new_tokens`
steps (no early stop), the two in turn, twice; it prints each one's seconds and whether their tokens agree.
"""

import json
import time
from pathlib import Path
from typing import Any

import click
import torch

from simrag.config import ModelParams, load_params
from simrag.generation import generate, prefill_cache
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
@click.option("--cache-batch", type=int, default=16, help="prompts in the cache comparison; 0: skip it")
def main(base: Path, index_dir: Path, questions: Path, n: int, batch_sizes: str, cache_batch: int) -> None:
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
    if cache_batch:
        compare_caches(generator, prompts[:cache_batch], g.max_new_tokens)


def compare_caches(generator: Any, prompts: list[str], steps: int) -> None:
    tokenizer, model = generator.tokenizer, generator.model
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    print(f"key/value cache, {len(prompts)} prompts of up to {ids.shape[1]} tokens, {steps} decoding steps each:")
    tokens: dict[str, Any] = {}
    for kind in ("growing", "static", "growing", "static"):
        with torch.inference_mode():
            started = time.perf_counter()
            cache = prefill_cache(model, ids, mask, ids.shape[1] + steps if kind == "static" else None)
            prefilled = time.perf_counter()
            output = model.generate(
                **encoded,
                cache=cache,
                max_new_tokens=steps,
                min_new_tokens=steps,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
            done = time.perf_counter()
        tokens[kind] = output[:, ids.shape[1] :]
        print(f"  {kind:7s}: prefill {prefilled - started:.1f} s, decoding {done - prefilled:.1f} s")
    same = sum(bool((a == b).all()) for a, b in zip(tokens["growing"], tokens["static"], strict=True))
    print(f"  the same tokens in {same} of {len(prompts)} rows")


if __name__ == "__main__":
    main()
