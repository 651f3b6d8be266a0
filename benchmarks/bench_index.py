"""Embedding throughput of the index stage: chunks/s by dtype and batch size, on real chunks.

    python benchmarks/bench_index.py [--chunks data/processed/chunks.jsonl] [--n 512]

Target (issue: foundation): at least 35 chunks/s on 2 CPU cores in bf16.
"""

import random
import time
from pathlib import Path

import click
import torch

from simrag.embedding import cpu_supports_bf16, embed, load_embedder
from simrag.machine import describe
from simrag.records import read_chunks


@click.command()
@click.option("--chunks", "chunks_path", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl")
@click.option("--n", type=int, default=512, help="Chunks sampled from the file.")
@click.option("--dtypes", default="bf16,fp32")
@click.option("--batch-sizes", default="16,32,64")
def main(chunks_path: Path, n: int, dtypes: str, batch_sizes: str) -> None:
    chunks = read_chunks(chunks_path)
    texts = [c["text"] for c in random.Random(0).sample(chunks, min(n, len(chunks)))]
    mean_tokens = sum(c["n_tokens"] for c in chunks) / len(chunks)
    print(f"machine: {describe()}, {torch.get_num_threads()} threads, bf16 native: {cpu_supports_bf16()}")
    print(f"{len(texts)} chunks sampled from {chunks_path} ({len(chunks)} chunks, mean {mean_tokens:.0f} tokens)")
    for dtype in dtypes.split(","):
        model = load_embedder("default", device="cpu", dtype=dtype)
        embed(model, texts[:32], batch_size=32)  # warm-up
        for batch_size in map(int, batch_sizes.split(",")):
            started = time.perf_counter()
            embed(model, texts, batch_size=batch_size)
            seconds = time.perf_counter() - started
            print(f"  {dtype:5s} batch {batch_size:3d}: {len(texts) / seconds:6.1f} chunks/s")


if __name__ == "__main__":
    main()
