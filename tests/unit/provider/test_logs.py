"""Structured logs: one JSON object per line, extra fields included."""

from __future__ import annotations

import json
import logging

from mercato.provider.logs import JsonFormatter


def test_json_lines_carry_extra_fields() -> None:
    record = logging.LogRecord("mercato.provider", logging.INFO, __file__, 1, "bid %s", ("sent",), None)
    record.deal_id = "0xabc"
    record.price = 1000
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "bid sent" and line["level"] == "info"
    assert (line["deal_id"], line["price"], line["logger"]) == ("0xabc", 1000, "mercato.provider")
