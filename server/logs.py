"""The node's log lines: one JSON object each (or coloured text for a terminal), from structlog.

Every logger, ours, aiohttp's and the media plane's stdlib ones, goes through one root handler
whose `ProcessorFormatter` adds the timestamp, level, logger name and the ids bound in
contextvars (`request_id`, `stream_id`, `session_id`, `sid`) to each line: the media plane
keeps plain `logging` and gets the same fields.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Literal

import structlog
from structlog.typing import Processor

LogFormat = Literal["json", "console"]

_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


def log_handler(log_format: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing each record as one line of ``log_format`` to ``stream`` (stderr)."""
    renderer: Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        finish: list[Processor] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer()
        finish = []
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *finish,
                renderer,
            ],
        )
    )
    return handler


def configure_logging(level: str, log_format: LogFormat, stream: IO[str] | None = None) -> None:
    """Route structlog's loggers through the standard library, and the root logger to one
    ``log_format`` handler at ``level`` writing to ``stream`` (stderr)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(log_handler(log_format, stream))
    root.setLevel(level.upper())
