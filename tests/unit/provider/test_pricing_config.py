"""Pricing strategies (incl. a price script) and the TOML config."""

from __future__ import annotations

import stat
from fractions import Fraction
from pathlib import Path

import pytest

from provider_kit import Harness

from mercato.chain import FakeMarket
from mercato.errors import ConfigError, PricingError
from mercato.provider import PricingConfig, ProviderConfig, ScriptPricing, UtilizationPricing, strategy_for

ROOT = Path(__file__).resolve().parents[3]


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "price.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_utilization_pricing_rounds_up() -> None:
    p = UtilizationPricing(floor=1000, markup=Fraction(1, 3))
    assert p(None, Fraction(0)) == 1000
    assert p(None, Fraction(1, 2)) == 1167  # 1000 × (1 + 1/6) = 1166.67 -> 1167
    assert p(None, Fraction(1)) == 1334


def test_script_pricing_reads_json_and_prints_an_integer(tmp_path: Path) -> None:
    script = _script(tmp_path, 'python3 -c "import json,sys; d=json.load(sys.stdin); '
                               'print(d[\'floor\'] + int(100 * d[\'utilization\']))"')
    assert ScriptPricing(script, floor=500)(None, Fraction(1, 2)) == 550


@pytest.mark.parametrize(("body", "match"), [
    ("exit 3", "exited with 3"),
    ("echo lots", "not an integer"),
    ("echo -5", "negative"),
    ("sleep 5", "took over"),
])
def test_script_failures_are_clear(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(PricingError, match=match):
        ScriptPricing(_script(tmp_path, body), timeout_s=0.5)(None, Fraction(0))


def test_missing_script(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="not found"):
        ScriptPricing(tmp_path / "nope.sh")(None, Fraction(0))


def test_strategy_for_picks_the_script(tmp_path: Path) -> None:
    assert isinstance(strategy_for(PricingConfig()), UtilizationPricing)
    assert isinstance(strategy_for(PricingConfig(script=tmp_path / "x")), ScriptPricing)


@pytest.mark.anyio
async def test_bids_use_the_script_and_a_broken_script_declines(make_agent, requester: FakeMarket,
                                                                tmp_path: Path) -> None:
    good = await make_agent(pricing=PricingConfig(script=_script(tmp_path, "echo 7")))
    bid = await good.bid(requester)
    assert bid["price_per_cu"] == 7 and bid["terms"]["price"] == 14
    bad_script = tmp_path / "bad"
    bad_script.mkdir()
    bad: Harness = await make_agent(data_dir=tmp_path / "b", pricing=PricingConfig(script=_script(bad_script, "exit 1")))
    from provider_kit import make_rfq

    r = await bad.client.post("/v1/rfq", json=make_rfq(bad.provider, requester.address).model_dump())
    assert r.json()["decline"]["code"] == "price"


def test_example_config_loads() -> None:
    cfg = ProviderConfig.load(ROOT / "examples" / "provider.toml")
    assert cfg.behaviour == "honest" and cfg.lanes == 4
    assert cfg.pricing.collateral_factor == 19 and cfg.pricing.utilization_markup == 1
    assert cfg.data_dir.parts[-1] == "provider1" and cfg.public_endpoint == "http://127.0.0.1:7001"


def test_config_paths_and_ratios(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[provider]\ndata_dir = "state"\nlanes = 2\n[pricing]\ncollateral_factor = 1.5\n'
                    'script = "price.sh"\n[testing]\nbehaviour = "wrong_result"\n')
    cfg = ProviderConfig.load(path)
    assert cfg.data_dir == tmp_path / "state" and cfg.pricing.script == tmp_path / "price.sh"
    assert cfg.pricing.collateral_factor == Fraction(3, 2) and cfg.behaviour == "wrong_result"


@pytest.mark.parametrize(("text", "match"), [
    ("lanez = 3", "unknown provider setting"),
    ("[pricing]\nprice_per_kg = 1", "unknown pricing setting"),
    ("[testing]\nbehaviour = 'evil'", "behaviour"),
    ("lanes = 0", "lanes"),
    ("runtimes = ['docker']", "not supported"),
    ("[pricing]\ncollateral_factor = 'x'", "number"),
    ("this is not toml", "not valid TOML"),
])
def test_config_errors_read_like_advice(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        ProviderConfig.load(path)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="copy examples/provider.toml"):
        ProviderConfig.load(tmp_path / "none.toml")
