"""`mercato jobs recover`: what it asks of the SDK and how it reports (the SDK's recovery itself
is tests/unit/requester/test_journal.py's and the chaos test's subject)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import mercato.cli.requester as requester_cli
from mercato.cli import app
from mercato.errors import RpcUnavailable
from mercato.requester.recover import Recovered

DONE = Recovered(deal_id="0x" + "ab" * 32, name="pi", provider="0x" + "11" * 20, state="verified",
                 settled="finalized", done=True, has_result=True, result_dir="/results/pi",
                 actions=("seed revealed", "result verified and saved"), note="")
OPEN = Recovered(deal_id="0x" + "cd" * 32, name="sweep-7", provider="0x" + "22" * 20, state="accepted",
                 settled="", done=False, has_result=False, result_dir="", actions=(), note="before the deadline: wait")


class _Market:
    """Stands in for Market.connect(...): records its options, answers recover()."""

    def __init__(self, reports: list[Recovered] | Exception, seen: dict[str, Any]) -> None:
        self.reports, self.seen = reports, seen

    async def __aenter__(self) -> _Market:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.seen["closed"] = True

    async def recover(self) -> list[Recovered]:
        if isinstance(self.reports, Exception):
            raise self.reports
        return self.reports


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Any:
    seen: dict[str, Any] = {}

    def install(reports: list[Recovered] | Exception) -> dict[str, Any]:
        def fake(settings: Any, **options: Any) -> _Market:
            seen.update(options, account=settings.account)
            return _Market(reports, seen)
        monkeypatch.setattr(requester_cli.Market, "connect", staticmethod(fake))
        return seen
    return install


def test_recover_reports_each_deal_and_what_is_left(connect: Any, cli_env: dict[str, str | None]) -> None:
    seen = connect([DONE, OPEN])
    res = CliRunner().invoke(app, ["jobs", "recover", "--account", "requester1"], env=cli_env | {"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    # recovery never blocks on audit stand-by, and closes its connections
    assert seen["audit_wait_s"] == 0 and seen["closed"] and seen["account"] == "requester1"
    assert "sweep-7" in res.output and "seed revealed" in res.output and "before the deadline" in res.output
    assert "1 deal(s) closed, 1 still open (run again later)" in res.output


def test_recover_json_is_one_object_per_deal(connect: Any, cli_env: dict[str, str | None]) -> None:
    connect([DONE, OPEN])
    res = CliRunner().invoke(app, ["jobs", "recover", "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [(r["deal_id"], r["done"], r["actions"]) for r in rows] == \
        [(DONE.deal_id, True, list(DONE.actions)), (OPEN.deal_id, False, [])]


def test_recover_with_an_empty_journal_says_so(connect: Any, cli_env: dict[str, str | None]) -> None:
    connect([])
    res = CliRunner().invoke(app, ["jobs", "recover"], env=cli_env)
    assert res.exit_code == 0 and "nothing to recover" in res.output


def test_recover_without_a_node_is_a_clean_error(connect: Any, cli_env: dict[str, str | None]) -> None:
    connect(RpcUnavailable("no node answers at http://127.0.0.1:1"))
    res = CliRunner().invoke(app, ["jobs", "recover"], env=cli_env)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "no node answers" in res.output
