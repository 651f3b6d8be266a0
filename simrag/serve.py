"""An HTTP server for an adapted model: OpenAI-compatible chat completions answered with retrieval.

Endpoints (JSON in and out):

- `POST /v1/chat/completions`: the last user message is the question; the answer is generated from the
  passages retrieved for it, as in evaluation. The response is OpenAI's `chat.completion` object, with
  the passages in `sources`. Optional: `max_tokens`, `top_k`. `stream: true` is refused (400).
- `GET /v1/models`: the one model served.
- `POST /search` `{"query": ..., "k": ...}`: the retrieved chunks with their scores.
- `GET /health`: the model, the index and its size.

A bad request gets a 4xx JSON error (`{"error": {"message", "type"}}`), never a traceback. The model
generates one request at a time; requests wait their turn. Python's standard HTTP server carries it:
nothing to install, meant for a laptop or a small team, not for the open internet.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simrag.rag import RagModel
from simrag.retrieval import Hit

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes of a request body
MAX_TOKENS = 2048  # the most new tokens a request may ask for


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _source(hit: Hit, snippet: int = 500) -> dict[str, Any]:
    return {
        "chunk_id": hit.chunk_id,
        "score": round(hit.score, 4),
        "above_threshold": hit.above_threshold,
        "title": hit.title,
        "doc": hit.doc,
        "text": hit.text[:snippet],
    }


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(400, f"'{name}' must be an integer from {low} to {high}")
    return value


def question_of(body: dict[str, Any]) -> str:
    """The last user message of an OpenAI chat request (text, or the text parts of a content list)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, "'messages' must be a non-empty list of {role, content}")
    for message in reversed(messages):
        if not isinstance(message, dict):
            raise BadRequest(400, "each message must be an object with 'role' and 'content'")
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str) or not content.strip():
            raise BadRequest(400, "the last user message has no text")
        return content.strip()
    raise BadRequest(400, "no message with role 'user'")


def chat_completion(rag: RagModel, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("stream"):
        raise BadRequest(400, "streaming is not supported: send 'stream': false")
    question = question_of(body)
    max_tokens = _int_field(body, "max_tokens", 1, MAX_TOKENS)
    top_k = _int_field(body, "top_k", 1, 100)
    answer = rag.answer(question, max_new_tokens=max_tokens, top_k=top_k)
    prompt_tokens = len(rag.generator.tokenizer(question)["input_ids"])
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": rag.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "length" if answer.cut_off else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": answer.n_tokens,
            "total_tokens": prompt_tokens + answer.n_tokens,
        },
        "sources": [_source(h) for h in answer.hits],
        "seconds": round(answer.seconds, 3),
    }


def search(rag: RagModel, body: dict[str, Any]) -> dict[str, Any]:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest(400, "'query' must be a non-empty string")
    k = _int_field(body, "k", 1, 100)
    return {"query": query, "hits": [_source(h) for h in rag.search(query.strip(), k)]}


def make_handler(rag: RagModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "simrag"

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self._send(status, {"error": {"message": message, "type": kind}})

        def _body(self) -> dict[str, Any]:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                raise BadRequest(400, "Content-Length is not a number") from None
            if length > MAX_BODY:
                raise BadRequest(413, f"request body over {MAX_BODY} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise BadRequest(400, "the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise BadRequest(400, "the request body must be a JSON object")
            return body

        def _route(self, method: str) -> None:
            routes: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
                ("GET", "/health"): lambda: {
                    "status": "ok",
                    "model": rag.name,
                    "index": str(rag.index_dir),
                    "chunks": len(rag.retriever),
                },
                ("GET", "/v1/models"): lambda: {
                    "object": "list",
                    "data": [{"id": rag.name, "object": "model", "owned_by": "simrag"}],
                },
                ("POST", "/v1/chat/completions"): lambda: chat_completion(rag, self._body()),
                ("POST", "/search"): lambda: search(rag, self._body()),
            }
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                if (method, path) not in routes:
                    known = {p for _, p in routes}
                    if path in known:
                        raise BadRequest(405, f"{method} is not allowed on {path}")
                    raise BadRequest(404, f"no endpoint {path} (try {', '.join(sorted(known))})")
                self._send(200, routes[(method, path)]())
            except BadRequest as exc:
                self._error(exc.status, str(exc))
            except Exception:  # the server stays up; the client gets JSON, the log the traceback
                log.exception("request %s %s failed", method, path)
                self._error(500, "internal error while answering: see the server's log")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


def make_server(rag: RagModel, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """The server, bound (port 0: any free port); call `serve_forever()` on it."""
    server = ThreadingHTTPServer((host, port), make_handler(rag))
    server.daemon_threads = True
    return server
