"""The records the stages hand each other through files, read back as the types they were written as:
the chunks `prepare` writes (data/processed/chunks.jsonl) and the QA candidates a round writes
(data/qa/<round>.jsonl, every candidate with its verdict)."""

from pathlib import Path
from typing import Any, NotRequired, TypedDict

from simrag.errors import DataError
from simrag.jsonio import read_records


class ChunkRecord(TypedDict):
    id: str  # "<source>/<doc>#<position>": stable while the document is unchanged
    source: str  # the corpus folder it came from
    doc: str  # its document's path within the source
    title: str
    position: int  # its place in the document
    n_tokens: int  # embedder tokens
    text: str


class RetrievedRef(TypedDict):
    id: str  # a chunk id
    score: float  # its cosine score for the question


class QARecord(TypedDict):
    question: str
    answer: str
    chunk_id: str  # the chunk the pair was written from
    verdict: str  # "kept", or the first check the pair failed
    round: NotRequired[str]
    context: NotRequired[list[str]]  # a kept pair's retrieved passages, its training prompt's context
    source: NotRequired[str]  # that chunk's corpus source
    checks: NotRequired[dict[str, Any]]  # each check's figure (scores, ranks, similarities)
    retrieved: NotRequired[list[RetrievedRef]]  # what the question retrieved, in rank order


def _required(record: Any) -> list[str]:
    """A record type's required keys, in the order it declares them."""
    return [key for key in record.__annotations__ if key in record.__required_keys__]


def read_chunks(path: Path) -> list[ChunkRecord]:
    """The chunks `prepare` wrote, in order."""
    chunks = read_records(path, _required(ChunkRecord), "chunks file", "re-run `dvc repro prepare`")
    if not chunks:
        raise DataError(f"{path} holds no chunks: check prepare.corpus_dir and metrics/prepare.json")
    return chunks  # type: ignore[return-value]  # the keys are checked


def read_round(qa_dir: Path, round_name: str) -> list[QARecord]:
    """Every candidate `generate_qa@<round>` wrote, with its verdict."""
    path = Path(qa_dir) / f"{round_name}.jsonl"
    remedy = f"run generate_qa@{round_name} first"
    return read_records(path, _required(QARecord), "QA file", remedy)  # type: ignore[return-value]
