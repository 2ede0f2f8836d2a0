"""Structured JSON logs on stderr: one object a line, with the fields given in ``extra``.

Secrets never reach the log: the settings keep them as ``SecretStr`` (shown as ``**********``),
and as a second line of defence every line is scrubbed of the secret values themselves (a
password inside an error message, say) before it is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

REDACTED = "**********"

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first, so a secret that contains another is replaced whole; each also as it
        # reads inside a JSON string (quotes and backslashes escaped)
        values = {v for s in secrets if s for v in (s, orjson.dumps(s).decode()[1:-1])}
        self.secrets = sorted(values, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """JSON lines on stderr at ``level``, with every value in ``secrets`` blanked out."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
