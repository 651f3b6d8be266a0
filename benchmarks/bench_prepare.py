"""Wall time of the prepare stage's work on a corpus, without writing outputs.

    python benchmarks/bench_prepare.py [--corpus data/raw/corpus/devops] [--workers 2]

Target (issue: foundation): the full DevOps corpus (66.6 MB, ~2K files) in under 60 s on 2 cores.
"""

import time
from pathlib import Path

import click

from simrag.config import EmbedderParams, PrepareParams
from simrag.machine import describe
from simrag.prepare import prepare_corpus


@click.command()
@click.option("--corpus", type=click.Path(path_type=Path), default="data/raw/corpus/devops")
@click.option("--workers", type=int, default=2)
def main(corpus: Path, workers: int) -> None:
    size_mb = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file()) / 1e6
    started = time.perf_counter()
    result = prepare_corpus(PrepareParams(corpus_dir=str(corpus), workers=workers), EmbedderParams())
    seconds = time.perf_counter() - started
    m = result.metrics
    print(f"machine: {describe()}; {workers} workers")
    print(f"{corpus}: {m['files']} files, {size_mb:.1f} MB -> {m['documents']} documents, {m['chunks']} chunks")
    print(f"prepare: {seconds:.1f} s ({m['files'] / seconds:.0f} files/s, {size_mb / seconds:.1f} MB/s)")


if __name__ == "__main__":
    main()
