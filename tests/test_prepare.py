import json
import subprocess
import sys

import pytest

from simrag.config import PrepareParams
from simrag.prepare import prepare_corpus
from tests.conftest import ROOT


def test_prepare_chunks_the_corpus_and_counts_what_it_drops(topic_corpus, embedder_params):
    (topic_corpus / "zz-copy").mkdir()  # sorts after the original, which is kept
    (topic_corpus / "zz-copy" / "again.md").write_text((topic_corpus / "docker" / "docker-layers.md").read_text())
    (topic_corpus / "stub.txt").write_text("tiny")
    (topic_corpus / "bad.md").write_bytes(b"\x00\x01binary")
    result = prepare_corpus(PrepareParams(corpus_dir=str(topic_corpus), workers=1), embedder_params)
    m = result.metrics
    assert m["files"] == 23 and m["documents"] == 20 and m["chunks"] == 20
    assert m["skipped"]["duplicate"] == 1 and m["skipped"]["too_short"] == 1 and m["skipped"]["binary"] == 1
    ids = [c["id"] for c in result.chunks]
    assert len(set(ids)) == len(ids)
    assert "topics/docker/docker-layers.md#0" in ids
    assert 0 < m["tokens_per_chunk"]["p50"] <= m["tokens_per_chunk"]["p95"] <= m["tokens_per_chunk"]["max"] <= 250


def test_duplicate_chunks_across_documents_are_dropped(tmp_path, embedder_params):
    shared = "This shared licence paragraph is repeated verbatim in several pages of the corpus. " * 3
    for i in range(3):
        (tmp_path / f"page{i}.md").write_text(f"# Page {i}\n\nUnique text number {i} about topic {i}.\n\n{shared}")
    result = prepare_corpus(
        PrepareParams(corpus_dir=str(tmp_path), chunk_tokens=40, chunk_overlap=0, workers=1), embedder_params
    )
    texts = [c["text"] for c in result.chunks]
    assert len(texts) == len(set(texts))
    assert result.metrics["duplicate_chunks_dropped"] >= 2


def test_worker_processes_give_the_same_chunks(topic_corpus, embedder_params):
    one = prepare_corpus(PrepareParams(corpus_dir=str(topic_corpus), workers=1), embedder_params)
    two = prepare_corpus(PrepareParams(corpus_dir=str(topic_corpus), workers=2), embedder_params)
    assert one.chunks == two.chunks


def test_oversized_chunks_are_warned_about(topic_corpus, embedder_params, caplog):
    prepare_corpus(PrepareParams(corpus_dir=str(topic_corpus), chunk_tokens=400, workers=1), embedder_params)
    assert "truncated when embedded" in caplog.text


def _run_stage(tmp_path, params_text):
    params = tmp_path / "params.yaml"
    params.write_text(params_text)
    out, metrics = tmp_path / "out" / "chunks.jsonl", tmp_path / "out" / "prepare.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages" / "prepare.py"),
            "--params",
            str(params),
            "--out",
            str(out),
            "--metrics",
            str(metrics),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    return proc, out, metrics


@pytest.mark.parametrize(
    "params_text,message",
    [
        ("prepare:\n  corpus_dir: nowhere\n", "corpus folder not found: nowhere"),
        ("prepare:\n  chunk_tokens: -5\n", "prepare.chunk_tokens"),
        ("prepare:\n  chunk_size: 100\n", "prepare.chunk_size: unknown key"),
        ("prepare: [1, 2\n", "not valid YAML"),
    ],
)
def test_stage_stops_on_bad_input_without_partial_output(tmp_path, params_text, message):
    proc, out, metrics = _run_stage(tmp_path, params_text)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not out.exists() and not metrics.exists()
    assert "Traceback" not in proc.stderr


def test_stage_writes_chunks_and_metrics(tmp_path, topic_corpus):
    proc, out, metrics = _run_stage(tmp_path, f"prepare:\n  corpus_dir: {topic_corpus}\n  workers: 1\n")
    assert proc.returncode == 0, proc.stderr
    chunks = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(chunks) == 20 and set(chunks[0]) == {"id", "source", "doc", "title", "position", "n_tokens", "text"}
    assert json.loads(metrics.read_text())["chunks"] == 20
