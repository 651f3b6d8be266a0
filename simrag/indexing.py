"""From chunk records to a ChromaDB index of their embeddings: the work of the `index` stage."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, TypedDict

from simrag.config import EmbedderParams, IndexParams
from simrag.embedding import embed, load_embedder
from simrag.jsonio import atomic_dir
from simrag.records import ChunkRecord, read_chunks
from simrag.vectorstore import folder_size_mb, write_collection

log = logging.getLogger(__name__)


class IndexMetrics(TypedDict):
    """What `build_index` measures (metrics/index.json, metrics/reindex/<round>.json, with peak memory)."""

    vectors: int
    dimension: int
    embed_seconds: float
    chunks_per_second: float
    index_mb: float
    seconds: float


def metadata(chunk: ChunkRecord) -> dict[str, Any]:
    """What the collection keeps of a chunk besides its id, text and vector."""
    return {
        "source": chunk["source"],
        "doc": chunk["doc"],
        "title": chunk["title"],
        "position": chunk["position"],
        "n_tokens": chunk["n_tokens"],
    }


def build_index(chunks_path: Path, index_dir: Path, embedder: EmbedderParams, params: IndexParams) -> IndexMetrics:
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
            metadatas=[metadata(c) for c in chunks],
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
