"""Top-k retrieval over the chunk index: the one retriever every stage and the CLI use.

Exact by default: the index's vectors are read from ChromaDB once and every query is scored against all of
them (a matrix product), ties broken by the order of the index. ChromaDB's own HNSW search is approximate,
and its graph is not the same from one build of the same vectors to the next: two builds of the DevOps
index gave different top-5 lists for 2-3 of 185 evaluation questions, enough to change which pairs a
Stage 2 round keeps. `search="approximate"` uses it (and a Chroma server is always searched so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simrag.embedding import embed, load_embedder
from simrag.vectorstore import open_collection

if TYPE_CHECKING:
    from simrag.config import Params


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    score: float  # cosine similarity between the query and the chunk
    source: str
    doc: str
    title: str
    text: str
    above_threshold: bool


@dataclass
class RetrievalStats:
    queries: int = 0
    hits: int = 0
    hits_above_threshold: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "hits": self.hits,
            "hits_above_threshold": self.hits_above_threshold,
            "share_above_threshold": self.hits_above_threshold / self.hits if self.hits else 0.0,
        }


@dataclass
class Retriever:
    """Embeds queries with the index's own embedder and returns the top-k chunks with cosine scores.

    Hits under `threshold` are flagged (`above_threshold=False`) and, with
    `drop_below_threshold`, left out; `stats` counts how many pass.
    """

    index_dir: Path
    collection: str = "chunks"
    top_k: int = 5
    threshold: float = 0.7
    drop_below_threshold: bool = False
    device: str = "auto"
    dtype: str = "auto"
    embedder: str | None = None  # None: the embedder the index was built with
    server: str = ""  # the URL of a Chroma server that serves this index; empty: read the folder in-process
    search_mode: str = "exact"  # exact | approximate (ChromaDB's HNSW); a server is searched approximately
    stats: RetrievalStats = field(default_factory=RetrievalStats)

    def __post_init__(self) -> None:
        self.index_dir = Path(self.index_dir)
        self._collection = open_collection(self.index_dir, self.collection, server=self.server)
        meta = self._collection.metadata or {}
        self.embedder = self.embedder or meta.get("embedder", "default")
        self._model = load_embedder(self.embedder, self.device, self.dtype, meta.get("max_seq_length"))
        self._all: dict[str, Any] | None = None
        if self.search_mode == "exact" and not self.server:
            found = self._collection.get(include=["embeddings", "documents", "metadatas"])
            self._all = {
                "ids": found["ids"],
                "vectors": np.asarray(found["embeddings"], dtype=np.float32).reshape(len(found["ids"]), -1),
                "documents": found["documents"] or [],
                "metadatas": found["metadatas"] or [],
            }

    @classmethod
    def from_params(cls, index_dir: Path, params: Params, top_k: int | None = None) -> Retriever:
        """The retriever `params` describe: the index's collection, top-k (unless `top_k`), threshold, and
        the Chroma server that serves `index_dir` if retrieval.servers names one."""
        r = params.retrieval
        server = r.servers.get(Path(index_dir).as_posix(), "")
        return cls(
            index_dir,
            params.index.collection,
            top_k or r.top_k,
            r.threshold,
            r.drop_below_threshold,
            server=server,
            search_mode=r.search,
        )

    @property
    def model(self) -> Any:
        """The embedder that turns queries into vectors (the one the index was built with)."""
        return self._model

    def __len__(self) -> int:
        return int(self._collection.count())

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int | None = None) -> list[list[Hit]]:
        if not queries:
            return []
        k = k or self.top_k
        vectors = embed(self._model, queries, batch_size=64)
        found: Any
        if self._all is not None:
            found = self._exact(vectors, k)
        else:
            found = self._collection.query(
                query_embeddings=vectors, n_results=k, include=["documents", "metadatas", "distances"]
            )
        results = []
        for ids, docs, metas, distances in zip(
            found["ids"], found["documents"] or [], found["metadatas"] or [], found["distances"] or [], strict=True
        ):
            hits = []
            for chunk_id, text, meta, distance in zip(ids, docs, metas, distances, strict=True):
                score = 1.0 - float(distance)
                hit = Hit(
                    chunk_id=chunk_id,
                    score=score,
                    source=str(meta.get("source", "")),
                    doc=str(meta.get("doc", "")),
                    title=str(meta.get("title", "")),
                    text=text or "",
                    above_threshold=score >= self.threshold,
                )
                self.stats.hits += 1
                self.stats.hits_above_threshold += hit.above_threshold
                if hit.above_threshold or not self.drop_below_threshold:
                    hits.append(hit)
            results.append(hits)
        self.stats.queries += len(queries)
        return results

    def _exact(self, queries: np.ndarray, k: int) -> dict[str, list[list[Any]]]:
        """Chroma's query answer, computed exactly: the k best cosine scores of each query, the earlier
        chunk of the index first among equal scores."""
        assert self._all is not None
        every = self._all
        k = min(k, len(every["ids"]))
        found: dict[str, list[list[Any]]] = {"ids": [], "documents": [], "metadatas": [], "distances": []}
        if k == 0:
            return {key: [[] for _ in queries] for key in found}
        for start in range(0, len(queries), 256):  # a 256 x chunks score matrix at a time
            scores = queries[start : start + 256] @ every["vectors"].T
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for row, picked in zip(scores, top, strict=True):
                order = sorted(picked.tolist(), key=lambda i: (-row[i], i))
                found["ids"].append([every["ids"][i] for i in order])
                found["documents"].append([every["documents"][i] for i in order])
                found["metadatas"].append([every["metadatas"][i] for i in order])
                found["distances"].append([1.0 - float(row[i]) for i in order])
        return found
