"""From chunk records to a ChromaDB index of their embeddings: the work of the `index` stage."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from simrag.config import EmbedderParams, IndexParams
from simrag.embedding import embed, load_embedder
from simrag.errors import DataError
from simrag.jsonio import atomic_dir, read_jsonl
from simrag.vectorstore import folder_size_mb, write_collection

log = logging.getLogger(__name__)

METADATA_FIELDS = ("source", "doc", "title", "position", "n_tokens")


def read_chunks(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"chunks file not found: {path} (run `dvc repro prepare` first)")
    try:
        chunks = list(read_jsonl(path))
    except ValueError as exc:
        raise DataError(f"chunks file is corrupt: {exc}") from None
    for number, chunk in enumerate(chunks, start=1):
        missing = [key for key in ("id", "text", *METADATA_FIELDS) if key not in chunk]
        if missing:
            raise DataError(f"{path}: chunk {number} lacks {', '.join(missing)}; re-run `dvc repro prepare`")
    if not chunks:
        raise DataError(f"{path} holds no chunks: check prepare.corpus_dir and metrics/prepare.json")
    return chunks


def build_index(chunks_path: Path, index_dir: Path, embedder: EmbedderParams, params: IndexParams) -> dict[str, Any]:
    """Embed every chunk and write the collection; `index_dir` is replaced only when all succeeded."""
    started = time.perf_counter()
    chunks = read_chunks(chunks_path)
    model = load_embedder(embedder.model, params.device, params.dtype, embedder.max_seq_length)
    embed_started = time.perf_counter()
    vectors = embed(model, [c["text"] for c in chunks], params.batch_size, progress=True)
    embed_seconds = time.perf_counter() - embed_started
    collection_metadata = {"embedder": embedder.model, "max_seq_length": embedder.max_seq_length}
    with atomic_dir(index_dir) as tmp:
        write_collection(
            tmp,
            params.collection,
            ids=[c["id"] for c in chunks],
            vectors=vectors,
            documents=[c["text"] for c in chunks],
            metadatas=[{key: c[key] for key in METADATA_FIELDS} for c in chunks],
            collection_metadata=collection_metadata,
        )
    return {
        "vectors": int(vectors.shape[0]),
        "dimension": int(vectors.shape[1]),
        "embed_seconds": round(embed_seconds, 2),
        "chunks_per_second": round(len(chunks) / embed_seconds, 2) if embed_seconds else 0.0,
        "index_mb": round(folder_size_mb(index_dir), 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
