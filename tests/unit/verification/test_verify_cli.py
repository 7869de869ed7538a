"""`mercato verify-params`: the table, the JSON, and clean errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mercato.cli import app
from mercato.cli.verify import parse_probability


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["verify-params", *args])
    return res.exit_code, res.output


def test_table_shows_the_figures() -> None:
    code, out = _run("--price", "1.5", "--p", "0.03")
    flat = " ".join(out.split())
    assert code == 0, out
    for figure in ("3 % (custom)", "1.5 mUSD", "0.045 mUSD per deal", "3.00 %", "3.015 %",
                   "83.333334 mUSD", "93.965772 mUSD", "150.900004 mUSD", "240.579084 mUSD", "23.94 %",
                   "-0.7905 mUSD", "the protocol's floor"):
        assert figure in flat, figure


def test_default_risk_is_standard() -> None:
    code, out = _run("--price", "1.5", "--deals", "1")
    assert code == 0 and "5 % (standard)" in " ".join(out.split())


def test_json_is_one_object() -> None:
    code, out = _run("--price", "1.5", "--p", "3%", "--deals", "50", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["audit_bps"] == 300 and data["audit_probability"] == 0.03
    assert data["audit_fee_musd"] == "1.5" and data["expected_cost_musd"] == "0.045"
    assert data["deals"] == 50 and data["bond_musd"] == "150.900004"
    assert [row["deals"] for row in data["bond_table"]] == [1, 10, 50, 100]
    assert data["bond_table"][0] == {"deals": 1, "bond_musd": "83.333334", "per_deal_musd": "83.333334"}
    assert data["cheater_profit_per_cheat_musd"].startswith("-")
    assert "bond" in data["explanation"]


def test_json_with_gain_and_risk() -> None:
    data = json.loads(_run("--price", "2", "--risk", "high", "--gain", "30", "--json")[1])
    assert data["risk"] == "high" and data["audit_bps"] == 1_000 and data["gain_musd"] == "30"
    assert "every deal" in data["explanation"]


@pytest.mark.parametrize(("args", "message"), [
    (["--p", "abc"], "--p must be a probability"),
    (["--p", "0"], "above 0"),
    (["--p", "2"], "at most 1"),
    (["--p", "150%"], "at most 1"),
    (["--p", "0.00001"], "whole number of basis points"),
    (["--p", "0.02"], "floor 3 %"),
    (["--price", "abc"], "--price must be a decimal number"),
    (["--price", "0"], "--price must be above 0"),
    (["--price", "1.0000001"], "more than 6 decimals"),
    (["--gain", "-3"], "--gain"),
])
def test_bad_input_is_a_clean_error(args: list[str], message: str) -> None:
    full = ["--price", "1.5", *args] if "--price" not in args else args
    code, out = _run(*full)
    assert code == 1 and "Traceback" not in out
    assert "error:" in out and message in " ".join(out.split())


@pytest.mark.parametrize("args", [["--price", "1", "--deals", "0"], ["--price", "1", "--risk", "extreme"], []])
def test_usage_errors(args: list[str]) -> None:
    code, out = _run(*args)
    assert code == 2 and "Traceback" not in out


@pytest.mark.parametrize(("text", "bps"), [("0.03", 300), ("3%", 300), (" 3.5 % ", 350), ("1", 10_000), ("1/8", 1_250)])
def test_parse_probability(text: str, bps: int) -> None:
    assert parse_probability(text) == bps
