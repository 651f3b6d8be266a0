"""From corpus folders to deduplicated chunk records: the work of the `prepare` stage."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simrag.chunking import Chunk, Chunker
from simrag.config import EmbedderParams, PrepareParams
from simrag.corpus import Document, list_files, read_file
from simrag.embedding import load_tokenizer
from simrag.records import ChunkRecord
from simrag.stage import setup_logging

log = logging.getLogger(__name__)

SKIP_REASONS = (
    "unsupported_type",
    "unreadable",
    "binary",
    "empty",
    "encrypted",
    "no_text_layer",
    "corrupt",
    "malformed_line",
    "missing_field",
    "too_short",
    "duplicate",
)
REPAIRS = ("legacy_charset", "invalid_utf8", "utf16", "flat_html")  # files read after a repair (simrag.corpus)
SPECIAL_TOKENS = 2  # [CLS] and [SEP], which the embedder adds to every chunk


def chunk_record(document: Document, chunk: Chunk) -> ChunkRecord:
    """A chunk of a document as data/processed/chunks.jsonl holds it."""
    return ChunkRecord(
        id=f"{document.source}/{document.doc}#{chunk.position}",
        source=document.source,
        doc=document.doc,
        title=document.title,
        position=chunk.position,
        n_tokens=chunk.n_tokens,
        text=chunk.text,
    )


@dataclass
class PrepareResult:
    chunks: list[ChunkRecord]
    metrics: dict[str, Any]


_chunker: Chunker | None = None


def _init_worker(embedder: str, chunk_tokens: int, overlap: int, min_chunk_tokens: int, log_level: int) -> None:
    global _chunker
    if not logging.getLogger().handlers:  # a spawned worker: log like the parent
        setup_logging(log_level)
    _chunker = Chunker(load_tokenizer(embedder), chunk_tokens, overlap, min_chunk_tokens)


def _read_and_chunk(task: tuple[Path, Path]) -> tuple[list[tuple[Document, list[Chunk]]], Counter[str], Counter[str]]:
    assert _chunker is not None
    result = read_file(*task)
    return [(doc, _chunker.split(doc.text)) for doc in result.documents], result.skipped, result.repaired


def _norm_key(text: str) -> bytes:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).digest()


def _map(
    tasks: list[tuple[Path, Path]], params: PrepareParams, embedder: EmbedderParams, tokenizer: Any
) -> Iterator[Any]:
    init = (
        embedder.model,
        params.chunk_tokens,
        params.chunk_overlap,
        params.min_chunk_tokens,
        logging.getLogger().level,
    )
    if params.workers == 1:
        global _chunker
        _chunker = Chunker(tokenizer, *init[1:4])
        yield from map(_read_and_chunk, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(params.workers, _init_worker, init) as pool:
        yield from pool.imap(_read_and_chunk, tasks, chunksize=4)


def prepare_corpus(params: PrepareParams, embedder: EmbedderParams) -> PrepareResult:
    """Read the corpus folder, chunk each document, drop duplicates, and measure what happened."""
    started = time.perf_counter()
    limit = embedder.max_seq_length - SPECIAL_TOKENS
    if params.chunk_tokens > limit:
        log.warning(
            "prepare.chunk_tokens=%d exceeds what the embedder reads (embedder.max_seq_length=%d less %d special "
            "tokens): chunk text past %d tokens is truncated when embedded",
            params.chunk_tokens,
            embedder.max_seq_length,
            SPECIAL_TOKENS,
            limit,
        )
    tokenizer = load_tokenizer(embedder.model)  # fails here, once, if the embedder is missing
    corpus_dir = Path(params.corpus_dir)
    tasks = [(corpus_dir, path) for path in list_files(corpus_dir)]
    skipped: Counter[str] = Counter({reason: 0 for reason in SKIP_REASONS})
    repaired: Counter[str] = Counter({repair: 0 for repair in REPAIRS})
    seen_docs: set[bytes] = set()
    seen_chunks: set[bytes] = set()
    chunks: list[ChunkRecord] = []
    documents = duplicate_chunks = 0
    for doc_chunks, file_skipped, file_repaired in tqdm(
        _map(tasks, params, embedder, tokenizer), total=len(tasks), desc="prepare", unit="file"
    ):
        skipped.update(file_skipped)
        repaired.update(file_repaired)
        for document, doc_chunk_list in doc_chunks:
            key = _norm_key(document.text)
            if key in seen_docs:
                skipped["duplicate"] += 1
                continue
            seen_docs.add(key)
            if not doc_chunk_list:
                skipped["too_short"] += 1
                continue
            documents += 1
            for chunk in doc_chunk_list:
                chunk_key = _norm_key(chunk.text)
                if chunk_key in seen_chunks:
                    duplicate_chunks += 1
                    continue
                seen_chunks.add(chunk_key)
                chunks.append(chunk_record(document, chunk))
    tokens = np.array([c["n_tokens"] for c in chunks], dtype=np.int64)
    metrics = {
        "files": len(tasks),
        "documents": documents,
        "skipped": dict(skipped),
        "repaired": dict(repaired),
        "chunks": len(chunks),
        "duplicate_chunks_dropped": duplicate_chunks,
        "tokens_per_chunk": {
            "mean": round(float(tokens.mean()), 1) if len(tokens) else 0.0,
            "p50": float(np.percentile(tokens, 50)) if len(tokens) else 0.0,
            "p95": float(np.percentile(tokens, 95)) if len(tokens) else 0.0,
            "max": int(tokens.max()) if len(tokens) else 0,
        },
        "chunks_over_embedder_limit": int((tokens > limit).sum()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return PrepareResult(chunks, metrics)
