"""Retriever adaptation speed: fine-tune the embedder on N (question, chunk) pairs with one hard negative each.

    python benchmarks/bench_retriever.py [--chunks data/processed/chunks.jsonl] [--pairs 1000]

The pairs come from the real corpus chunks (needs `dvc repro prepare`): the question is a sentence taken
from the middle of a chunk, the positive the chunk, the hard negative another chunk; shaped like the
pairs `train_retriever` trains on (questions of ~15 words, chunks of ~220 tokens). Runs `train_embedder`
with the params.yaml settings (retriever.batch_size, learning rate; one epoch; bf16 autocast where the CPU has
it), validation ranking off.
Target (issue: retriever adaptation): 1,000 pairs in under 5 minutes on 2 CPU cores.
"""

import random
import re
import tempfile
import time
from pathlib import Path

import click

from simrag.config import load_params
from simrag.machine import describe
from simrag.records import read_chunks
from simrag.retriever_training import RetrieverPair, train_embedder


def make_pairs(chunks: list[dict], n: int, seed: int = 0) -> list[RetrieverPair]:
    rng = random.Random(seed)
    pairs = []
    for chunk in rng.sample(chunks, min(n, len(chunks))):
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", chunk["text"]) if 6 <= len(s.split()) <= 30]
        question = rng.choice(sentences) if sentences else " ".join(chunk["text"].split()[:15])
        negative = rng.choice(chunks)["text"]
        pairs.append(RetrieverPair(question, "", chunk["id"], chunk["doc"], chunk["text"], [negative]))
    return pairs


@click.command()
@click.option("--chunks", type=click.Path(path_type=Path), default="data/processed/chunks.jsonl", show_default=True)
@click.option("--pairs", "n_pairs", default=1000, show_default=True)
def main(chunks: Path, n_pairs: int) -> None:
    params = load_params()
    settings = params.retriever.model_copy(update={"hard_negatives": 1, "epochs": 1.0})
    pairs = make_pairs(read_chunks(chunks), n_pairs)
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        figures = train_embedder(
            params.embedder.model,
            pairs,
            [],
            [],
            settings,
            params.embedder.max_seq_length,
            Path(tmp) / "embedder",
            Path(tmp) / "plots",
            title="benchmark",
        )
        total = time.perf_counter() - started
    print(
        f"{len(pairs)} pairs, batch {settings.batch_size}, {figures['steps']} steps, {figures['precision']}: "
        f"training {figures['train_seconds']:.0f} s ({figures['pairs_per_second']:.1f} pairs/s), "
        f"{total:.0f} s with loading and saving; target < 300 s"
    )


if __name__ == "__main__":
    main()
