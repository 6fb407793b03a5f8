"""Issue 20, point 10: every HTTP response carries a Content-Security-Policy, nosniff, no referrer and no
framing; the portal's policy lets only its own inline script and style run; no /docs loading a CDN UI."""

from __future__ import annotations

import base64
import hashlib

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from beacon.infra.http import API_POLICY, harden, page_policy

PAGE = "<html><head><style>b{x:1}</style></head><body><script>go()</script></body></html>"


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_a_page_may_run_only_its_own_inline_blocks() -> None:
    policy = page_policy(PAGE)
    assert f"script-src {sha('go()')};" in policy and f"style-src {sha('b{x:1}')};" in policy
    assert "unsafe-inline" not in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'none'" in page_policy("<p>no script</p>")  # nothing inline: nothing runs


def test_every_response_gets_the_headers_html_its_page_policy() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/data")
    async def data() -> dict[str, int]:
        return {"n": 1}

    harden(app, page=PAGE)
    client = TestClient(app, base_url="http://localhost")
    html, json, missing = client.get("/page"), client.get("/data"), client.get("/nowhere")
    assert html.headers["content-security-policy"] == page_policy(PAGE)
    for response in (json, missing):  # an error page too
        assert response.headers["content-security-policy"] == API_POLICY
    for response in (html, json, missing):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_the_submitter_serves_no_docs_ui_and_hardens_its_answers() -> None:
    from beacon.infra.settings import Settings
    from beacon.submitter.http import create_app

    app = create_app(Settings.from_env({}), publisher=object())  # type: ignore[arg-type]  # no request reaches it
    client = TestClient(app, base_url="http://localhost")  # not entered: no lifespan, so no Kafka or database
    for path in ("/docs", "/redoc"):
        assert client.get(path).status_code == 404
    answer = client.get("/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-security-policy"] == API_POLICY
