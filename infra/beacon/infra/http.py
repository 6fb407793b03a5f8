"""The one way Beacon's HTTP services (`beacon reader`, `beacon submitter-api`, the recorder's /metrics) are served.

uvicorn's defaults trust the client more than a service facing untrusted networks should: an idle or
half-sent request holds its connection open for ever (there is no request-head timeout: "slowloris"), and
connections and concurrent requests are unbounded. `server()` builds every uvicorn server with:

- a request-head deadline: a connection whose request line and headers are not complete within
  HEAD_TIMEOUT_SECONDS of its opening (or, on a kept-alive connection, of the previous response) is closed;
- a short keep-alive (an idle kept-alive connection is closed after KEEP_ALIVE_SECONDS);
- at most MAX_CONCURRENCY connections / requests in flight (more get 503 at once, not a queue);
- a bound on the request head's size (request line + headers, MAX_HEAD_BYTES; more gets 431 and a close).

Both request-head rules live in a small subclass of uvicorn's h11 protocol, passed as `http=` to
uvicorn.Config: a timer is armed when a connection opens and whenever it waits for a new request, and
cancelled when h11 has parsed a request's head; while it waits, the bytes received must hold the head's end
within MAX_HEAD_BYTES. (h11's own `max_incomplete_event_size`, also set, only refuses a head that is still
incomplete past the limit: a longer head that arrives in one read would pass it.) Request bodies are the
application's business (the submitter bounds its body's size and the time to read it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from uvicorn.protocols.http.h11_impl import H11Protocol

from beacon.infra.settings import LOOPBACK_NAMES

HEAD_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONCURRENCY = 100
MAX_HEAD_BYTES = 16 * 1024  # h11's own default, stated here so an upgrade cannot loosen it
MAX_PROBLEMS = 20
MAX_PROBLEM_CHARS = 300
READY_CHECK_SECONDS = 3.0


_HEAD_END = re.compile(rb"\n\r?\n")  # h11 ends a head at a blank line, with or without the \r
_TOO_LARGE_TEXT = f"request line and headers over {MAX_HEAD_BYTES} bytes".encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    + f"content-length: {len(_TOO_LARGE_TEXT)}\r\nconnection: close\r\n\r\n".encode()
    + _TOO_LARGE_TEXT
)


# --- security headers --------------------------------------------------------------------------------

# JSON, metrics and errors: nothing in them may run, load anything, or be framed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def page_policy(html: str) -> str:
    """The Content-Security-Policy of one static page: only its own inline <script> and <style> blocks (by
    their SHA-256, so an injected script or style cannot run), fetches to this origin, never framed."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    script = " ".join(hashes["script"]) or "'none'"
    style = " ".join(hashes["style"]) or "'none'"
    return (
        f"default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """ASGI middleware: every response gets a Content-Security-Policy (the page's own for HTML, API_POLICY
    otherwise), `nosniff`, no referrer and no framing. Pure ASGI, so it costs a header list per response."""

    def __init__(self, app: Any, html_policy: str | None = None) -> None:
        self.app = app
        self.html_policy = html_policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                policy = self.html_policy if html and self.html_policy else API_POLICY
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def host_of(authority: str) -> str:
    """The host of a Host header or an origin's authority, lower case, without its port or brackets."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    name, colon, port = authority.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else authority


def refusal(headers: dict[bytes, bytes], path: str, allowed: tuple[str, ...]) -> tuple[int, str, str] | None:
    """(status, error, problem) when a request must be refused for where it says it is going or coming from.

    The Host must be one of `allowed` (a browser tricked by DNS rebinding sends the attacker's name). A
    browser's request from a page sends Origin (and Sec-Fetch-Site): it must be this very origin, scheme and
    host and port, so no page of another site, or of another port of this machine, can use a visitor's
    browser against the API. /health/* answers everyone (probes address a pod by its IP)."""
    if path.startswith("/health/"):
        return None
    host = headers.get(b"host", b"").decode("latin-1")
    if host_of(host) not in allowed:
        shown = host[:100] if host else "none"
        return 400, "unknown host", f"Host {shown!r} is not a name this service answers to (BEACON_ALLOWED_HOSTS)"
    if headers.get(b"sec-fetch-site", b"") == b"cross-site":
        return 403, "cross-site request refused", "a page of another site may not call this service"
    origin = headers.get(b"origin")
    if origin is not None:
        scheme, sep, authority = origin.decode("latin-1").partition("://")
        if not sep or scheme.lower() not in ("http", "https") or authority.lower() != host.lower():
            shown = origin.decode("latin-1")[:100]
            return 403, "cross-site request refused", f"Origin {shown!r} is not this service's own"
    return None


TOKEN_NEEDED = "send an API token: Authorization: Bearer <token> (`beacon tokens create`)"


def unauthorized(problem: str, invalid: bool) -> JSONResponse:
    """401 with the bearer challenge (RFC 6750): `invalid` when a token was sent but is unknown or revoked."""
    challenge = 'Bearer realm="beacon"' + (', error="invalid_token"' if invalid else "")
    return JSONResponse(
        {"error": "unauthorized", "problems": [problem]}, status_code=401, headers={"www-authenticate": challenge}
    )


class HostAndOrigin:
    """ASGI middleware applying `refusal` before the application sees the request."""

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = tuple(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refused = refusal(dict(scope.get("headers", [])), scope.get("path", ""), self.allowed)
            if refused is not None:
                status, error, why = refused
                await JSONResponse({"error": error, "problems": [why]}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def harden(app: FastAPI, page: str | None = None, allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES) -> None:
    """Security headers on every response of `app`, and requests for unknown hosts or from other sites
    refused; `page`: the HTML of its one static page, if it has one."""
    app.add_middleware(HostAndOrigin, allowed_hosts=allowed_hosts)
    app.add_middleware(SecurityHeaders, html_policy=page_policy(page) if page is not None else None)


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive in time or whole
    within MAX_HEAD_BYTES."""

    head_timeout: float = HEAD_TIMEOUT_SECONDS

    _head_timer: asyncio.TimerHandle | None = None  # armed exactly while a request head is awaited

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        # Nothing has been answered on this request yet and h11 cannot send a response to a request it has
        # not parsed: close, as nginx does on its client_header_timeout.
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            pending = self.conn.trailing_data[0] + data[: MAX_HEAD_BYTES + 2]
            if len(pending) > MAX_HEAD_BYTES and not _HEAD_END.search(pending, 0, MAX_HEAD_BYTES + 2):
                self._disarm_head_timer()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        # h11 parsed a request head (the application has the request now), or handed the connection to a
        # WebSocket protocol: either way this head has arrived.
        if self.cycle is not cycle or self.transport.get_protocol() is not self:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        # Kept alive: the keep-alive timer closes it if nothing comes; this one if the next head dawdles
        # (uvicorn cancels its keep-alive timer on the first byte received). Armed before uvicorn goes on
        # to a pipelined request, whose parsed head (handle_events above) disarms it again.
        if not self.transport.is_closing():
            self._arm_head_timer()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)


def guarded_protocol(head_timeout: float) -> type[HeadTimeoutProtocol]:
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout": head_timeout})


def server(
    app: Any,
    host: str,
    port: int,
    *,
    head_timeout: float = HEAD_TIMEOUT_SECONDS,
    keep_alive: int = KEEP_ALIVE_SECONDS,
    max_concurrency: int = MAX_CONCURRENCY,
    log_level: str = "warning",
) -> Any:
    """A uvicorn.Server for `app` with Beacon's limits; `.run()` it, or `await .serve()` it in a loop."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        http=guarded_protocol(head_timeout),
        timeout_keep_alive=keep_alive,
        limit_concurrency=max_concurrency,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        server_header=False,
    )
    return uvicorn.Server(config)


def bounded(problems: list[str], most: int = MAX_PROBLEMS, width: int = MAX_PROBLEM_CHARS) -> list[str]:
    """Error lines for a response or a terminal: at most `most` lines of at most `width` characters, then
    "… and N more", however much the input had to complain about."""
    lines = [p if len(p) <= width else p[: width - 1] + "…" for p in problems[:most]]
    if len(problems) > most:
        lines.append(f"… and {len(problems) - most} more")
    return lines


# --- what every Beacon HTTP process answers: liveness, readiness, Prometheus --------------------------

ReadyCheck = Callable[[], Awaitable[object]]


def add_ops_routes(app: FastAPI, checks: dict[str, ReadyCheck]) -> None:
    """GET /health/live, /health/ready (each named check must finish within 3 s) and /metrics."""

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), READY_CHECK_SECONDS)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"unavailable: {str(exc)[:200] or type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", **results}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def serve(app: FastAPI, host: str, port: int, what: str, setting: str) -> None:
    """Serve `app` until cancelled; the CLI owns SIGTERM/SIGINT (a clean stop of the whole process)."""
    srv = server(app, host, port)
    srv.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    await srv.serve()
    if not srv.started:
        raise RuntimeError(f"{what} could not listen on {host}:{port} (port taken? set {setting}, or 0 to turn it off)")
