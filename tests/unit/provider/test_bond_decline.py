"""The bidder keeps to the bond rule (docs/SPEC.md §14.6): a deal the stake cannot carry on top of
those in flight is declined with code ``bond`` instead of a bid the contract would refuse to open."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from provider_kit import STAKE, Harness, make_rfq

from mercato.chain import FakeMarket
from mercato.provider.config import PricingConfig
from mercato.verification.bond import BondParams, bond_ok, max_value_in_flight

pytestmark = pytest.mark.anyio

PARAMS = BondParams(300, 9_000, 15_000)


def _with_bond_rule(h: Harness, in_flight: tuple[int, int, int]) -> None:
    market: Any = h.agent.chain.market
    plain = market.parameters
    market.parameters = lambda: plain() | {"collusion_bps": PARAMS.collusion_bps,
                                           "bond_lambda_bps": PARAMS.bond_lambda_bps,
                                           "audit_floor_bps": PARAMS.audit_floor_bps}
    market.in_flight = lambda provider=None: in_flight
    h.agent.bidder.know_parameters(market.parameters())  # as the agent reads them at start


async def _answer(h: Harness, requester: FakeMarket) -> dict[str, Any]:
    r = await h.client.post("/v1/rfq", json=make_rfq(h.provider, requester.address).model_dump())
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_deal_the_bond_cannot_carry_is_declined(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    heavy = (5_000 * 10**6, 10, 500 * 10**6)  # 5,000 mUSD in 10 deals of 500 already in flight
    _with_bond_rule(h, heavy)
    answer = await _answer(h, requester)
    assert answer["bid"] is None and answer["decline"]["code"] == "bond"
    assert "bond rule needs" in answer["decline"]["reason"]
    assert h.agent.store.busy_lanes(h.agent.cfg.lanes) == 0  # the lane it reserved is free again


async def test_unopened_bids_count_against_the_bond(make_agent, requester: FakeMarket) -> None:
    # a price the stake carries alone, but not twice (q(2) < 2 q(1)): the second bid waits on the first
    per_cu = max_value_in_flight(STAKE, 1, PARAMS) // 2  # the job's fuel cap is 2 CU
    h: Harness = await make_agent(lanes=4, pricing=PricingConfig(price_per_cu=per_cu, utilization_markup=Fraction(0),
                                                                 collateral_factor=Fraction(0)))
    _with_bond_rule(h, (0, 0, 0))  # nothing opened on-chain
    first = await _answer(h, requester)
    price = first["bid"]["terms"]["price"]
    assert bond_ok(STAKE, 1, price, PARAMS) and not bond_ok(STAKE, 2, 2 * price, PARAMS)
    second = await _answer(h, requester)
    assert second["bid"] is None and second["decline"]["code"] == "bond"
    assert (await h.client.delete(f"/v1/bids/{first['bid']['deal_id']}")).status_code == 200
    third = await _answer(h, requester)  # the released bid no longer counts
    assert third["bid"] is not None


async def test_free_deals_in_flight_do_not_lower_the_bond(make_agent, requester: FakeMarket) -> None:
    """Attack class 4 as the bidder sees it: many zero-price deals in flight add no count, so a price the
    stake could carry only as one of many deals is declined, as the contract would refuse it."""
    per_cu = max_value_in_flight(STAKE, 1, PARAMS)  # twice what the stake carries alone (fuel cap 2 CU)
    h: Harness = await make_agent(pricing=PricingConfig(price_per_cu=per_cu, utilization_markup=Fraction(0),
                                                        collateral_factor=Fraction(0)))
    _with_bond_rule(h, (0, 200, 0))  # 200 free deals open: by number they would cover almost anything
    answer = await _answer(h, requester)
    assert answer["bid"] is None and answer["decline"]["code"] == "bond"
