"""Retrieval latency once loaded (query embedding + Chroma lookup), over real evaluation questions.

    python benchmarks/bench_search.py [--index data/index] [--questions data/raw/eval/devops_public.jsonl]

Target (issue: foundation): p50 under 15 ms per query on 2 CPU cores.
"""

import json
import time
from pathlib import Path

import click
import numpy as np
import torch

from simrag.machine import describe
from simrag.retrieval import Retriever


@click.command()
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index")
@click.option("--questions", type=click.Path(path_type=Path), default="data/raw/eval/devops_public.jsonl")
@click.option("--repeats", type=int, default=3)
@click.option("-k", "top_k", type=int, default=5)
def main(index_dir: Path, questions: Path, repeats: int, top_k: int) -> None:
    queries = [json.loads(line)["question"] for line in questions.read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    retriever = Retriever(index_dir, top_k=top_k)
    load_seconds = time.perf_counter() - started
    retriever.search(queries[0])  # warm-up
    latencies = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            retriever.search(query)
            latencies.append((time.perf_counter() - started) * 1000)
    ms = np.array(latencies)
    print(f"machine: {describe()}, {torch.get_num_threads()} threads; index: {len(retriever)} chunks")
    print(f"load (embedder + index): {load_seconds:.1f} s")
    p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
    print(f"{len(ms)} queries, top-{top_k}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, mean {ms.mean():.1f} ms")


if __name__ == "__main__":
    main()
