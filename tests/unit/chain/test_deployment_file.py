"""The deployment file: the court's address is recorded, and a file from before the court loads."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mercato.chain import Deployment, DevnetParams

MARKET = "0x" + "22" * 20
COURT = "0x" + "33" * 20


def test_the_court_round_trips(tmp_path: Path) -> None:
    dep = Deployment(31337, "http://x", "0x" + "11" * 20, MARKET, 5, DevnetParams(), court=COURT)
    dep.save(tmp_path / "d.json")
    again = Deployment.load(tmp_path / "d.json")
    assert again == dep and again.log_addresses() == [MARKET, COURT]


def test_a_file_from_before_the_court_still_loads(tmp_path: Path) -> None:
    data = asdict(Deployment(31337, "http://x", "0x" + "11" * 20, MARKET, 5, DevnetParams()))
    del data["court"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Deployment.load(tmp_path / "old.json")
    assert old.court == "" and old.log_addresses() == [MARKET]  # without a node it cannot ask the Market
