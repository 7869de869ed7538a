"""Structured logs: one JSON object per line, with the ``extra=`` fields of each call.

    configure_logging("INFO")      # the CLI calls this once; library code only logs
    log.info("bid", extra={"deal_id": "0x…", "price": 1000})
    # {"ts": 1700000000.123, "level": "info", "logger": "mercato.provider.bidder", "msg": "bid", "deal_id": …}
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; non-JSON values are written with ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        out |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send ``mercato`` logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("mercato")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
