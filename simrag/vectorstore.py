"""The ChromaDB collection that holds the chunk vectors (cosine space).

Embeddings are always passed in: Chroma's own embedding function is never used, because it
would download a model at run time.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from simrag.errors import DataError

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection


def _client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def write_collection(
    path: Path,
    name: str,
    ids: list[str],
    vectors: np.ndarray,
    documents: list[str],
    metadatas: list[dict[str, Any]],
    collection_metadata: dict[str, Any],
) -> None:
    """Create collection `name` under `path` (a new, empty folder) and add every vector."""
    if not (len(ids) == len(vectors) == len(documents) == len(metadatas)):
        raise ValueError("ids, vectors, documents and metadatas differ in length")
    client = _client(path)
    collection = client.create_collection(
        name, metadata={"hnsw:space": "cosine", **collection_metadata}, embedding_function=None
    )
    step = client.get_max_batch_size()
    for i in range(0, len(ids), step):
        collection.add(
            ids=ids[i : i + step],
            embeddings=vectors[i : i + step],
            documents=documents[i : i + step],
            metadatas=metadatas[i : i + step],
        )
    # Chroma flushes its vector segment lazily, on a later open: open and query once now,
    # so the folder DVC records is complete and later reads find nothing left to write.
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    settled = _client(path).get_collection(name, embedding_function=None)
    if len(ids):
        settled.query(query_embeddings=vectors[:1], n_results=1)
    SharedSystemClient.clear_system_cache()


def working_copy(path: Path) -> Path:
    """A private copy of the index to read from, removed when the process exits.

    Chroma writes to its files each time a client opens them, even to read (a row in SQLite, and
    any vector segment it had not flushed); reading the DVC-tracked folder itself would mark the
    `index` stage changed and make `dvc repro` rebuild it.
    """
    copy = Path(tempfile.mkdtemp(prefix="simrag-index-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    shutil.copytree(path, copy, dirs_exist_ok=True)
    return copy


def read_only_client(path: Path) -> Any:
    """A Chroma client on a private copy of the index at `path`, which it leaves byte-for-byte unchanged."""
    return _client(working_copy(path))


def _server_client(url: str) -> Any:
    import chromadb
    from chromadb.config import Settings

    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname or "127.0.0.1",
            port=port,
            ssl=parsed.scheme == "https",
            settings=Settings(anonymized_telemetry=False),
        )
        client.heartbeat()
    except Exception as exc:  # connection refused, DNS, TLS: chromadb wraps them differently by version
        raise DataError(
            f"cannot reach the Chroma server at {url} ({exc.__class__.__name__}); start one with "
            "`simrag serve-index`, or remove the index from retrieval.servers to read it in-process"
        ) from None
    return client


def open_collection(path: Path, name: str, read_only: bool = True, server: str = "") -> Collection:
    """Open collection `name` of the index at `path`; read_only leaves the folder byte-for-byte unchanged.

    With `server` (a URL), the collection is read from the Chroma server there, which serves that index.
    """
    if server:
        try:
            return _server_client(server).get_collection(name, embedding_function=None)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"the Chroma server at {server} has no collection '{name}'") from exc
    if not (path / "chroma.sqlite3").is_file():
        raise DataError(f"no index at {path}: build it with `dvc repro index`")
    client = read_only_client(path) if read_only else _client(path)
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:  # chromadb raises NotFoundError or ValueError by version
        raise DataError(f"index at {path} has no collection '{name}' (index.collection in params.yaml)") from exc


def folder_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
