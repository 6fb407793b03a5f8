"""`beacon reader`: HTTP request → query the projection (queries.py) → shape it (api.py, analysis.py)
→ JSON or the portal. Reads only: it never consumes a topic or writes a row."""

from __future__ import annotations

from beacon.infra import db, http, logs
from beacon.infra.settings import Settings
from beacon.reader.api import create_app

log = logs.get("beacon.reader")


async def run(settings: Settings) -> None:
    if not settings.http_port:
        raise RuntimeError("BEACON_HTTP_PORT is 0: the reader has nothing to serve (set a port)")
    db.require_current(settings.database_url)  # migrated by `beacon migrate` (make up): its role may only read
    host, port = settings.http_host, settings.http_port
    log.info("reader_serving", url=f"http://{host}:{port}/")
    await http.serve(create_app(settings), host, port, "the read API", "BEACON_HTTP_PORT")
