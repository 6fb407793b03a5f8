"""A local HTTP model server for tests, on 127.0.0.1, speaking the real Ollama and OpenAI wire formats.

It counts the calls it receives and the most it ever had in flight, keeps every request body, and
follows a script of behaviours (one per call, then `ok`), so each test can say exactly what the
provider does: answer, stream, fail with a status, ask to retry after N seconds, hang, or talk nonsense.
Hostile modes: `wire` sends a whole response exactly as given (any status line, interim replies, bodies
a status should not have), `flood` streams a body far larger than any cap (an endless line, a gzip
bomb) and counts in `bytes_sent` how much of it the client took before hanging up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    kind: str = "ok"  # ok | status | hang | malformed | empty | drop | wire | flood
    status: int = 200
    body: str = ""
    retry_after: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)  # status, flood: more response headers
    # wire: the whole response, status line to body, written as is (then the connection closes);
    # flood: one piece of the chunked body, sent `repeat` times after `body`.
    wire: bytes = b""
    repeat: int = 1


def default_answer(prompt: str) -> str:
    if "Tiananmen" in prompt:
        return "I'm sorry, but I can't discuss that topic."
    return f"Answer: {prompt}"


@dataclass
class ModelServer:
    answer: Callable[[str], str] = default_answer
    script: list[Behaviour] = field(default_factory=list)
    delay_s: float = 0.0  # added to every `ok` reply, to keep calls in flight
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    bytes_sent: int = 0  # body bytes `flood` wrote before the client hung up (or all of them)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                server._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up (a killed runner, a timed-out call) is part of the test

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- request handling ------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("content-length", 0))) or b"{}")
        with self._lock:
            self.requests.append(body)
            self.paths.append(h.path)
            self.call_times.append(time.monotonic())
            behaviour = self.script.pop(0) if self.script else Behaviour()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._respond(h, body, behaviour)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, h: BaseHTTPRequestHandler, body: dict[str, Any], b: Behaviour) -> None:
        if b.kind == "hang":
            time.sleep(b.delay_s)
            return self._send(h, 200, "{}")
        if b.kind == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
            return None
        if b.kind == "status":
            headers = {"Retry-After": b.retry_after} if b.retry_after is not None else {}
            headers.update(b.headers)
            return self._send(h, b.status, b.body or json.dumps({"error": f"status {b.status}"}), headers)
        if b.kind == "wire":
            h.close_connection = True
            h.wfile.write(b.wire)
            h.wfile.flush()
            return None
        if b.kind == "flood":
            return self._flood(h, b)
        if b.kind == "malformed":
            return self._send(h, 200, "<html>this is not json")
        time.sleep(self.delay_s + b.delay_s)
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        text = "" if b.kind == "empty" else self.answer(prompt)
        ollama = h.path.startswith("/api/")
        if body.get("stream"):
            return self._stream(h, body, text, ollama)
        return self._send(h, 200, json.dumps(self._ollama(body, text) if ollama else self._openai(body, text)))

    @staticmethod
    def _ollama(body: dict[str, Any], text: str, done: bool = True, words: int | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "model": body["model"],
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": done,
        }
        if done:
            reply.update(
                done_reason="stop",
                prompt_eval_count=26,
                eval_count=len(text.split()) if words is None else words,
                total_duration=1000,
                load_duration=10,
                eval_duration=500,
            )
        return reply

    @staticmethod
    def _openai(body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1767225600,
            "model": body["model"],
            "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 26,
                "completion_tokens": len(text.split()),
                "total_tokens": 26 + len(text.split()),
            },
        }

    def _stream(self, h: BaseHTTPRequestHandler, body: dict[str, Any], text: str, ollama: bool) -> None:
        words = [w + " " for w in text.split(" ")] if text else []
        if words:
            words[-1] = words[-1][:-1]
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(data: str) -> None:
            raw = data.encode()
            h.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            h.wfile.flush()

        if ollama:
            for word in words:
                chunk(json.dumps(self._ollama(body, word, done=False)) + "\n")
            chunk(json.dumps(self._ollama(body, "", words=len(words))) + "\n")
        else:
            for word in words:
                event = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
                chunk(f"data: {json.dumps(event)}\n\n")
            usage = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": body["model"],
                "choices": [],
                "usage": {"prompt_tokens": 26, "completion_tokens": len(words), "total_tokens": 26 + len(words)},
            }
            chunk(f"data: {json.dumps(usage)}\n\n")
            chunk("data: [DONE]\n\n")
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _flood(self, h: BaseHTTPRequestHandler, b: Behaviour) -> None:
        h.close_connection = True
        h.send_response(b.status)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        for name, value in b.headers.items():
            h.send_header(name, value)
        h.end_headers()
        pieces = [b.body.encode()] if b.body else []
        try:
            for piece in [*pieces, *[b.wire] * b.repeat]:
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                h.wfile.flush()
                with self._lock:
                    self.bytes_sent += len(piece)
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            pass  # the client refused the rest, as it should

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        raw = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(raw)
        h.wfile.flush()
