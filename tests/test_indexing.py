import json

import pytest

from simrag.config import IndexParams
from simrag.errors import DataError
from simrag.indexing import build_index
from simrag.records import read_chunks
from simrag.vectorstore import open_collection


def _chunk(i: int, text: str) -> dict:
    return {
        "id": f"c/{i}#0",
        "source": "c",
        "doc": f"{i}.md",
        "title": f"t{i}",
        "position": 0,
        "n_tokens": 5,
        "text": text,
    }


def test_build_index_stores_every_chunk_with_metadata(tmp_path, embedder_params, index_params):
    chunks = tmp_path / "chunks.jsonl"
    chunks.write_text("\n".join(json.dumps(_chunk(i, f"text number {i}")) for i in range(7)))
    metrics = build_index(chunks, tmp_path / "index", embedder_params, index_params)
    assert metrics["vectors"] == 7 and metrics["dimension"] == 384 and metrics["chunks_per_second"] > 0
    assert metrics["index_mb"] > 0
    collection = open_collection(tmp_path / "index", "chunks")
    assert collection.count() == 7
    assert collection.metadata["hnsw:space"] == "cosine" and collection.metadata["embedder"] == "default"
    got = collection.get(ids=["c/3#0"], include=["documents", "metadatas"])
    assert got["documents"] == ["text number 3"] and got["metadatas"][0]["doc"] == "3.md"


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "chunks file not found"),
        ("", "holds no chunks"),
        ('{"id": "x", "text": "t"}\n{broken', "chunks file is corrupt"),
        ('{"id": "x", "text": "t"}\n', "lacks source"),
    ],
)
def test_bad_chunks_file_leaves_the_old_index_alone(tmp_path, embedder_params, index_params, content, message):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_chunk(0, "the original index")))
    build_index(good, tmp_path / "index", embedder_params, index_params)
    bad = tmp_path / "bad.jsonl"
    if content is not None:
        bad.write_text(content)
    with pytest.raises(DataError, match=message):
        build_index(bad, tmp_path / "index", embedder_params, index_params)
    assert open_collection(tmp_path / "index", "chunks").count() == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_read_chunks_accepts_the_prepare_layout(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(_chunk(1, "x")) + "\n\n")
    assert read_chunks(path)[0]["id"] == "c/1#0"


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"no index at .*dvc repro index"):
        open_collection(tmp_path / "index", "chunks")


def test_fp16_on_cpu_is_refused(tmp_path, embedder_params):
    from simrag.errors import ModelNotFoundError

    chunks = tmp_path / "chunks.jsonl"
    chunks.write_text(json.dumps(_chunk(0, "x")))
    with pytest.raises(ModelNotFoundError, match="fp16 needs a CUDA device"):
        build_index(chunks, tmp_path / "index", embedder_params, IndexParams(dtype="fp16", device="cpu"))


def test_reading_the_index_leaves_its_files_unchanged(topic_index):
    """DVC hashes data/index: a search must not modify it, or `dvc repro` would rebuild it."""
    import hashlib

    from simrag.retrieval import Retriever

    def digest():
        return {p: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(topic_index.rglob("*")) if p.is_file()}

    before = digest()
    Retriever(topic_index, dtype="fp32").search("anything at all")
    assert digest() == before
