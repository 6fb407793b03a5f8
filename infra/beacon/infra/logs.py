"""structlog set-up: JSON lines for services, readable lines for people at a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

from beacon.infra.redact import log_processor as redact_secrets


def configure(fmt: str = "json", level: int = logging.INFO, library_level: int = logging.WARNING) -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,  # last before rendering: nothing logged escapes it
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # aiokafka logs through the standard library; keep its warnings, drop its chatter.
    logging.basicConfig(level=library_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
