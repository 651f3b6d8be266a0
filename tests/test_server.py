"""Chroma in client/server mode: an index served on loopback answers exactly as the folder read in-process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simrag.config import parse_params
from simrag.errors import ConfigError, DataError
from simrag.retrieval import Retriever
from tests.conftest import TOPICS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def served(topic_index: Path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simrag.cli", "serve-index", "--index", str(topic_index), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.3)
    else:
        pytest.fail("the Chroma server did not start in 60 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_served_index_answers_as_the_folder_does(topic_index: Path, served: str) -> None:
    local = Retriever(topic_index, top_k=3, dtype="fp32")
    remote = Retriever(topic_index, top_k=3, dtype="fp32", server=served)
    assert len(remote) == len(local) == len(TOPICS) and remote.embedder == local.embedder
    questions = [question for _text, question in TOPICS.values()]
    for mine, theirs in zip(local.search_many(questions), remote.search_many(questions), strict=True):
        assert [h.chunk_id for h in mine] == [h.chunk_id for h in theirs]
        assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-5)


def test_from_params_uses_the_server_named_for_the_index(topic_index: Path, served: str) -> None:
    params = parse_params({"retrieval": {"servers": {topic_index.as_posix(): served}}})
    assert Retriever.from_params(topic_index, params).server == served
    assert Retriever.from_params(topic_index, parse_params({}), 1).server == ""  # not named: read in-process


def test_an_unreachable_server_is_a_clear_error(topic_index: Path) -> None:
    with pytest.raises(DataError, match=r"cannot reach the Chroma server at http://127.0.0.1:\d+ .*serve-index"):
        Retriever(topic_index, server=f"http://127.0.0.1:{_free_port()}")


def test_server_urls_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"servers.data/index: 'localhost:8000' is not a server URL"):
        parse_params({"retrieval": {"servers": {"data/index": "localhost:8000"}}})
