"""Fees, expected costs and recommended terms: cheating must always lose money."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.verification.bond import DEVNET, BondParams, min_bond, min_stake
from mercato.verification.fees import audit_fee, expected_overhead_pct, expected_verification_cost
from mercato.verification.params import (
    RISK_AUDIT_BPS,
    catch_probability,
    cheater_profit,
    recommend,
    required_bond,
)

PRICE = 1_500_000  # 1.5 mUSD


@pytest.mark.parametrize(("price", "margin", "fee"), [
    (1_500_000, 0, 1_500_000), (1_500_000, 2_000, 1_800_000), (0, 500, 0), (1, 1, 2), (3, 3_333, 4), (10, 10_000, 20),
])
def test_audit_fee(price: int, margin: int, fee: int) -> None:
    assert audit_fee(price, margin) == fee
    assert fee >= price * (10_000 + margin) / 10_000  # never short of price plus margin


def test_fee_bounds() -> None:
    with pytest.raises(ValueError, match="96 bits"):
        audit_fee(2**96)
    for bad in ((-1, 0), (1, -1)):
        with pytest.raises(ValueError):
            audit_fee(*bad)


def test_expected_cost_and_overhead() -> None:
    assert expected_verification_cost(PRICE, 300) == 45_000
    assert expected_verification_cost(PRICE, 300, fee=1_800_000) == 54_000
    assert expected_verification_cost(7, 300) == Fraction(21, 100)  # exact, not rounded
    assert expected_overhead_pct(300) == 3
    assert expected_overhead_pct(300, committee_size=5, dispute_rate="0.001") == Fraction(3015, 1000)
    assert expected_overhead_pct(10_000, committee_size=5, dispute_rate=1) == 600
    for bad in (lambda: expected_overhead_pct(10_001), lambda: expected_overhead_pct(300, dispute_rate=2),
                lambda: expected_verification_cost(PRICE, -1)):
        with pytest.raises(ValueError):
            bad()


def test_catch_probability() -> None:
    assert catch_probability(300, 9_000, 1) == Fraction(27, 1000)
    assert catch_probability(300, 9_000, 2) == 1 - Fraction(973, 1000) ** 2
    assert catch_probability(10_000, 10_000, 1) == 1


def test_cheater_profit_formula() -> None:
    """Per cheat: C + G − p·d·R − (1 − (1 − p·d)^k)·B / k."""
    pd = Fraction(27, 1000)
    # no bond, one cheat: keeps the price unless caught → (1 − p·d)·R
    assert cheater_profit(price=PRICE, bond=0, audit_bps=300, collusion_bps=9_000, cheats=1) == (1 - pd) * PRICE
    # with a bond: (1 − p·d)·R − p·d·B
    assert cheater_profit(price=PRICE, bond=10**8, audit_bps=300, collusion_bps=9_000, cheats=1) == \
        (1 - pd) * PRICE - pd * 10**8
    # a cheaper job to skip and an outside gain
    assert cheater_profit(price=PRICE, bond=0, audit_bps=300, collusion_bps=9_000, cheats=1, cost=1_000_000,
                          gain=5) == 1_000_000 + 5 - pd * PRICE


@pytest.mark.parametrize("n", [1, 10, 50, 100])
def test_pooled_bond_makes_each_cheat_lose(n: int) -> None:
    """At B = λ·N·(C+G)/(1 − (1 − p·d)^N) the profit per cheat is −(λ − 1)·(C + G) − p·d·R."""
    pd, lam, gain = Fraction(27, 1000), Fraction(3, 2), 400_000
    bond = min_bond(n, PRICE + gain, "0.03", "0.9", lam)
    profit = cheater_profit(price=PRICE, bond=bond, audit_bps=300, collusion_bps=9_000,  # type: ignore[arg-type]
                            cheats=n, gain=gain)
    assert profit == -(lam - 1) * (PRICE + gain) - pd * PRICE
    # fewer cheats lose even more per cheat: k = N is the worst case
    for k in range(1, n):
        assert cheater_profit(price=PRICE, bond=bond, audit_bps=300, collusion_bps=9_000,  # type: ignore[arg-type]
                              cheats=k, gain=gain) < profit


def test_recommend_defaults() -> None:
    v = recommend(PRICE)
    assert (v.risk, v.audit_bps, v.audit_fee, v.deals, v.cheats) == ("standard", 500, PRICE, 10, 10)
    assert v.bond == min_stake(10, 10 * PRICE)  # the contract's rule binds when there is no outside gain
    assert v.expected_cost == 75_000 and v.overhead_pct == Fraction(5025, 1000)
    assert [n for n, _ in v.bond_table] == [1, 10, 50, 100]
    assert dict(v.bond_table)[1] == 83_333_334
    assert v.cheater_profit < 0


@pytest.mark.parametrize("risk", ["low", "standard", "high"])
def test_risk_levels(risk: str) -> None:
    v = recommend(PRICE, risk=risk)  # type: ignore[arg-type]
    assert v.audit_bps == RISK_AUDIT_BPS[risk] >= DEVNET.audit_floor_bps
    assert v.cheater_profit < 0


def test_recommend_overrides_and_errors() -> None:
    v = recommend(PRICE, audit_bps=10_000, deals=3, margin_bps=1_000)
    assert (v.risk, v.audit_bps, v.audit_fee) == ("custom", 10_000, 1_650_000)
    assert v.catch_probability == 1 - Fraction(1, 10) ** 3  # p·d = 0.9 per cheat, 3 cheats
    assert [n for n, _ in recommend(PRICE, deals=3).bond_table] == [1, 3, 10, 50, 100]
    assert recommend(PRICE, params=BondParams(audit_floor_bps=800), risk="low").audit_bps == 800  # never below floor
    for kwargs in ({"audit_bps": 299}, {"audit_bps": 10_001}, {"risk": "extreme"}, {"deals": 0}, {"gain": -1}):
        with pytest.raises(ValueError):
            recommend(PRICE, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        recommend(0)


def test_gain_raises_the_bond() -> None:
    plain, risky = recommend(PRICE, risk="low"), recommend(PRICE, risk="low", gain=20 * PRICE)
    assert risky.bond > plain.bond
    assert risky.bond == math.ceil(min_bond(10, 21 * PRICE, "0.03", "0.9", "1.5"))
    assert risky.cheater_profit < 0


@given(st.integers(1, 10**12), st.sampled_from(["low", "standard", "high"]), st.integers(0, 10**13),
       st.integers(1, 200), st.integers(300, 10_000))
def test_cheating_never_pays(price: int, risk: str, gain: int, deals: int, bps: int) -> None:
    for v in (recommend(price, risk=risk, gain=gain, deals=deals),  # type: ignore[arg-type]
              recommend(price, gain=gain, deals=deals, audit_bps=bps)):
        assert v.cheater_profit < 0
        assert v.bond >= required_bond(deals, price, v.audit_bps, gain=gain)
        assert all(b1 <= b2 for (_, b1), (_, b2) in zip(v.bond_table, v.bond_table[1:]))


def test_explain() -> None:
    text = recommend(PRICE, risk="low").explain(lambda u: f"{u / 10**6:g} mUSD")
    assert "Audit 3 % of deals (the protocol's floor) for low risk" in text
    assert "1.5 mUSD" in text and "93.9658 mUSD" in text and "23.9 %" in text
    assert "100 %" not in text
    assert "every deal" in recommend(PRICE, gain=2 * PRICE).explain()
    assert "units" in recommend(PRICE).explain()
