"""The explorer dashboard in a real browser against a devnet with live agents: the numbers shown
are the chain's, the page refreshes by itself when a new deal lands, a click leads to a deal's
lifecycle, and each page is saved as a screenshot."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_KIT = str(Path(__file__).resolve().parents[1] / "integration" / "explorer")
if _KIT not in sys.path:
    sys.path.append(_KIT)

from explorer_kit import STAKE, job, logs, missed_deal, run_job, running_devnet, start_agent, wait_for  # noqa: E402

from mercato.chain import Deployment, Devnet, DevnetParams, MarketClient, connect  # noqa: E402
from mercato.config import RetryPolicy  # noqa: E402
from mercato.explorer.service import Explorer  # noqa: E402
from mercato.matching import score_reputation  # noqa: E402

pytestmark = pytest.mark.timeout(300)
PRICES = {"provider2": 100, "provider3": 120}  # base units per CU


def musd(n: int) -> str:
    """As the page prints amounts: thousands separators, six decimals."""
    return f"{n // 10**6:,}.{n % 10**6:06d}"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("e2e-devnet")
    gen = running_devnet(home, DevnetParams(audit_floor_bps=1))
    net: Devnet = next(gen)
    agents = []
    try:
        dep = net.status().deployment
        assert dep is not None
        chain = MarketClient.from_deployment(connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1)), dep,
                                             dep.keys["requester1"])
        chain.deposit(1_000 * 10**6)
        root = tmp_path_factory.mktemp("e2e-agents")
        agents = [start_agent(root, net, name, stake=STAKE, pricing={"price_per_cu": price, "utilization_markup": 0})
                  for name, price in PRICES.items()]
        first = run_job(dep, job())
        wait_for(lambda: len(logs(chain, "DealFinalized")) == 1, "the first deal finalized", w3=chain.w3)
        missed = missed_deal(chain, dep, "provider5")
        with Explorer.for_deployment(dep, home / "explorer.sqlite", port=0, interval=0.5) as ex:
            print(f"\nexplorer at {ex.url}")
            yield {"net": net, "dep": dep, "chain": chain, "explorer": ex, "first": first, "missed": missed}
    finally:
        for a in agents:
            a.kill(signal.SIGTERM)
        next(gen, None)


def _active_providers(chain: MarketClient) -> int:
    return sum(1 for a in chain.providers() if chain.provider_info(a).stake > 0 and not chain.jailed(a))


def _open_deals(chain: MarketClient) -> int:
    ended = len(logs(chain, "DealFinalized")) + len(logs(chain, "DealReclaimed")) + sum(
        1 for e in logs(chain, "AuditResolved") if e["args"]["outcome"] in (4, 5))
    return len(logs(chain, "DealOpened")) - ended


def test_dashboard_shows_the_chain(browser: Any, market: dict[str, Any], screenshots: Path) -> None:
    chain: MarketClient = market["chain"]
    ex: Explorer = market["explorer"]
    dep: Deployment = market["dep"]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # overview: the cards equal what the chain says
    page.goto(ex.url + "/")
    page.wait_for_selector("[data-testid=active-providers]")
    wait_for(lambda: ex.views.deal(market["first"].deal_id)["units"] is not None, "the receipt's work units")
    page.wait_for_function("document.querySelector('[data-testid=price-chart]') !== null", timeout=15_000)
    assert page.inner_text("[data-testid=active-providers]") == str(_active_providers(chain))
    assert page.inner_text("[data-testid=open-deals]") == str(_open_deals(chain))
    assert page.inner_text("[data-testid=total-deals]") == str(len(logs(chain, "DealOpened")))
    volume = sum(chain.reputation(a).volume for a in chain.providers())
    assert volume == market["first"].price
    assert page.inner_text("[data-testid=volume]") == musd(volume)

    # live refresh: a new deal shows up without reloading the page
    second = run_job(dep, job())
    wait_for(lambda: len(logs(chain, "DealFinalized")) == 2, "the second deal finalized", w3=chain.w3)
    page.wait_for_function(
        f"document.querySelector('[data-testid=total-deals]').innerText === '{len(logs(chain, 'DealOpened'))}'",
        timeout=20_000)
    page.wait_for_function(
        f"document.querySelector('[data-testid=volume]').innerText === '{musd(market['first'].price + second.price)}'",
        timeout=20_000)
    page.wait_for_function("document.querySelectorAll('[data-testid=price-chart] circle').length === 2",
                           timeout=20_000)
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)

    # providers: stake and completed jobs per row, from the contract's views
    page.click("nav >> text=Providers")
    page.wait_for_selector("[data-testid=provider-row]")
    asks = {dep.accounts[name]: price for name, price in PRICES.items()}
    for address in chain.providers():
        row = page.locator(f"[data-testid=provider-row][data-address='{address}']")
        rep, rec = chain.reputation(address), chain.audit_record(address)
        assert row.locator("[data-field=stake]").inner_text() == musd(chain.provider_info(address).stake)
        assert row.locator("[data-field=completed]").inner_text() == str(rep.completed)
        assert row.locator("[data-field=missed]").inner_text() == str(rep.missed)
        # the decayed score: a minute of age at a 30-day half-life moves it by far less than the rounding
        assert abs(float(row.locator("[data-field=score]").inner_text()) - float(score_reputation(rep, rec))) < 0.0015
        if address in asks:  # what the live agent asks per CU (its /v1/info)
            assert row.locator("[data-field=asks]").inner_text() == f"{asks[address] / 10**6:.6f}"
    page.screenshot(path=str(screenshots / "providers.png"), full_page=True)

    # click through to the first deal: its lifecycle and transactions
    page.click("nav >> text=Overview")
    first_id = market["first"].deal_id
    page.wait_for_selector(f"[data-testid=deal-row][data-deal='{first_id}'] >> [data-testid=deal-link]")
    page.click(f"[data-testid=deal-row][data-deal='{first_id}'] >> [data-testid=deal-link]")
    page.wait_for_selector("[data-testid=deal-status]")
    assert page.inner_text("[data-testid=deal-id]") == first_id
    assert page.inner_text("[data-testid=deal-status]") == "finalized"
    assert page.inner_text("[data-testid=deal-price]") == musd(market["first"].price)
    steps = page.locator("[data-testid=timeline-step]").all_inner_texts()
    assert steps[0].startswith("opened") and steps[-1].startswith("finalized")
    opened = next(e for e in logs(chain, "DealOpened") if "0x" + bytes(e["args"]["deal_id"]).hex() == first_id)
    assert "0x" + bytes(opened["transactionHash"]).hex() in steps[0]
    done = logs(chain, "DealFinalized")
    fin = next(e for e in done if "0x" + bytes(e["args"]["deal_id"]).hex() == first_id)
    assert "0x" + bytes(fin["transactionHash"]).hex() in steps[-1]
    page.screenshot(path=str(screenshots / "deal.png"), full_page=True)

    # a transaction link: the events it logged, as the chain's receipt has them
    page.locator("[data-testid=tx-link]").first.click()
    page.wait_for_selector("[data-testid=tx-event]")
    opened_tx = "0x" + bytes(opened["transactionHash"]).hex()
    assert page.inner_text("[data-testid=tx-hash]") == opened_tx
    receipt = chain.w3.eth.get_transaction_receipt(opened_tx)
    names = [ev.name for ev in map(chain.decode_log, receipt["logs"]) if ev is not None]  # the Market's and the court's
    assert page.locator("[data-testid=tx-event] >> [data-field=name]").all_inner_texts() == names
    assert "DealOpened" in names

    # slashing history: the missed deal's penalty
    page.click("nav >> text=Slashing")
    page.wait_for_selector("[data-testid=slash-row]")
    slashed = logs(chain, "ProviderSlashed")
    rows = page.locator("[data-testid=slash-row]")
    assert rows.count() == len(slashed) == 1
    assert rows.first.locator("[data-field=amount]").inner_text() == musd(slashed[0]["args"]["amount"])
    assert re.search("miss_penalty", rows.first.inner_text())
    page.screenshot(path=str(screenshots / "slashing.png"), full_page=True)
    assert not errors, errors
    page.close()
