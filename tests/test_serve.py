"""`simrag serve`: OpenAI-compatible chat completions with retrieval, over real HTTP on loopback."""

import threading

import httpx
import pytest
import yaml

from simrag.config import load_params
from simrag.rag import RagModel
from simrag.serve import make_server
from tests.conftest import tiny_rag_params


@pytest.fixture(scope="module")
def url(tmp_path_factory, tiny_model_dir, topic_index):
    params_path = tiny_rag_params(tmp_path_factory.mktemp("serve") / "params.yaml", tiny_model_dir, topic_index, 6)
    rag = RagModel(load_params(params_path), "baseline", tiny_model_dir)
    server = make_server(rag, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_health_models_and_search(url):
    health = httpx.get(f"{url}/health").json()
    assert health == {"status": "ok", "model": "baseline", "index": health["index"], "chunks": 20}
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "baseline"
    found = httpx.post(f"{url}/search", json={"query": "What is a Kubernetes Pod?", "k": 3}).json()
    assert len(found["hits"]) == 3 and found["hits"][0]["chunk_id"].endswith("k8s-pods.md#0")
    assert found["hits"][0]["score"] >= found["hits"][1]["score"]


def test_chat_completion_answers_with_its_sources(url):
    request = {
        "model": "baseline",
        "messages": [
            {"role": "system", "content": "ignored: the RAG prompt is the evaluation's"},
            {"role": "user", "content": "What is a Kubernetes Pod?"},
        ],
        "max_tokens": 4,
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=request, timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "baseline"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length") and body["usage"]["completion_tokens"] <= 4
    assert body["sources"][0]["chunk_id"].split("/")[-1] == "k8s-pods.md#0"
    assert len(body["sources"]) == 2  # retrieval.top_k


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "says"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", b"[1, 2]", 400, "JSON object"),
        ("POST", "/v1/chat/completions", b'{"messages": []}', 400, "non-empty list"),
        ("POST", "/v1/chat/completions", b'{"messages": [{"role": "system", "content": "x"}]}', 400, "role 'user'"),
        ("POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "  "}]}', 400, "no text"),
        (
            "POST",
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "q"}], "max_tokens": 0}',
            400,
            "max_tokens",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "q"}], "stream": true}',
            400,
            "streaming",
        ),
        ("POST", "/search", b'{"query": 3}', 400, "'query'"),
        ("POST", "/search", b'{"query": "pods", "k": "five"}', 400, "'k'"),
        ("GET", "/v1/chat/completions", None, 405, "not allowed"),
        ("GET", "/nowhere", None, 404, "no endpoint /nowhere"),
    ],
)
def test_bad_requests_get_a_4xx_json_error(url, method, path, payload, status, says):
    response = httpx.request(method, f"{url}{path}", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"


def test_an_oversized_body_is_refused(url):
    response = httpx.post(f"{url}/search", content=b"x" * (1 << 20 + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "over" in response.json()["error"]["message"]


def test_serve_command_starts_answers_and_stops(tmp_path, tiny_model_dir, topic_index):
    import subprocess
    import sys

    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "model": {"device": "cpu", "dtype": "fp32"},
                "evaluate": {"models": {"baseline": {"weights": str(tiny_model_dir), "index": str(topic_index)}}},
            }
        )
    )
    command = [sys.executable, "-c", "from simrag.cli import main; main()", "serve", "--port", "0"]
    command += ["--base", str(tiny_model_dir), "--params", str(params)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving baseline on http://127.0.0.1:"), line
        served = line.split()[3]
        assert httpx.get(f"{served}/health", timeout=30).json()["status"] == "ok"
        with pytest.raises(subprocess.CalledProcessError) as busy:  # the same port again: a clear refusal
            subprocess.run([*command[:5], served.rsplit(":", 1)[1], *command[6:]], check=True, capture_output=True)
        assert b"cannot listen on 127.0.0.1:" in busy.value.stderr
        assert b"generator baseline on cpu" in busy.value.stderr  # the model's loading is logged too
    finally:
        proc.terminate()
        proc.wait(timeout=30)
