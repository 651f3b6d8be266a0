"""Top-k retrieval over the chunk index: the one retriever every stage and the CLI use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    stats: RetrievalStats = field(default_factory=RetrievalStats)

    def __post_init__(self) -> None:
        self.index_dir = Path(self.index_dir)
        self._collection = open_collection(self.index_dir, self.collection, server=self.server)
        meta = self._collection.metadata or {}
        self.embedder = self.embedder or meta.get("embedder", "default")
        self._model = load_embedder(self.embedder, self.device, self.dtype, meta.get("max_seq_length"))

    @classmethod
    def from_params(cls, index_dir: Path, params: Params, top_k: int | None = None) -> Retriever:
        """The retriever `params` describe: the index's collection, top-k (unless `top_k`), threshold, and
        the Chroma server that serves `index_dir` if retrieval.servers names one."""
        r = params.retrieval
        server = r.servers.get(Path(index_dir).as_posix(), "")
        return cls(
            index_dir, params.index.collection, top_k or r.top_k, r.threshold, r.drop_below_threshold, server=server
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
