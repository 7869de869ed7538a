"""The bond rule: research §7.3's table, and the contract's integer form against the exact one."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.verification.bond import (
    DEVNET,
    WAD,
    BondParams,
    bond_ok,
    detection_wad,
    max_deals_at_price,
    max_value_in_flight,
    min_bond,
    min_stake,
    wad_mul,
    wad_pow,
)

P, D, LAM = Fraction(3, 100), Fraction(9, 10), Fraction(3, 2)
MUSD = 10**6
params_st = st.builds(BondParams, audit_floor_bps=st.integers(1, 10_000), collusion_bps=st.integers(1, 10_000),
                      bond_lambda_bps=st.integers(1, 100_000))
# deployments worth having: a floor of at least 1 %, at least half the auditors honest, λ ≥ 1
real_params_st = st.builds(BondParams, audit_floor_bps=st.integers(100, 10_000),
                           collusion_bps=st.integers(5_000, 10_000), bond_lambda_bps=st.integers(10_000, 100_000))


def exact_q(n: int, params: BondParams = DEVNET) -> Fraction:
    return 1 - (1 - params.p_min_d) ** n


@pytest.mark.parametrize(("n", "bond", "per_deal", "digits"), [(1, 56, 56, 0), (10, 63, 6.3, 1), (50, 101, 2.0, 1),
                                                                (100, 160, 1.6, 1)])
def test_research_table(n: int, bond: int, per_deal: float, digits: int) -> None:
    """research §7.3: p = 3 %, d = 0.9, λ = 1.5, in units of the price C (as printed there)."""
    b = min_bond(n, 1, P, D, LAM)
    assert round(b) == bond
    assert round(float(b / n), digits) == per_deal


def test_research_table_exact_values() -> None:
    assert min_bond(1, 1, P, D, LAM) == Fraction(500, 9)  # λ / (p·d) = 1.5 / 0.027
    assert min_bond(1, 1, "0.03", "0.9", "1.5") == min_bond(1, 1, 0.03, 0.9, 1.5) == Fraction(500, 9)
    assert min_bond(10, Fraction(3, 2), P, D, LAM) == Fraction(3, 2) * min_bond(10, 1, P, D, LAM)  # linear in price
    assert abs(min_bond(5_000, 1, P, D, LAM) / 5_000 - LAM) < Fraction(1, 10**9)  # → λ·C per deal


@pytest.mark.parametrize(("n", "per_deal", "digits"), [(1, 30, 0), (10, 3.7, 1), (50, 1.6, 1), (100, 1.5, 1)])
def test_research_second_row(n: int, per_deal: float, digits: int) -> None:
    """research §7.3: "with p = 5 % and d = 1: 30C, 3.7C, 1.6C, 1.5C per job"."""
    assert round(float(min_bond(n, 1, "0.05", 1, "1.5") / n), digits) == per_deal


def test_min_bond_grows_with_n_but_per_deal_falls() -> None:
    bonds = [min_bond(n, 1, P, D, LAM) for n in range(1, 200)]
    assert all(a < b for a, b in zip(bonds, bonds[1:]))
    assert all(a / i > b / (i + 1) for i, (a, b) in enumerate(zip(bonds, bonds[1:]), start=1))


def test_wad_arithmetic() -> None:
    assert wad_mul(1, 1) == 1 and wad_mul(1, 1, "down") == 0
    assert wad_pow(WAD // 2, 3) == WAD // 8
    assert wad_pow(12345, 0) == WAD and wad_pow(WAD, 1_000) == WAD and wad_pow(0, 5) == 0
    assert detection_wad(1) == 27 * 10**15  # p_min·d exactly, no rounding at N = 1
    with pytest.raises(ValueError):
        wad_mul(1, 1, "nearest")  # type: ignore[arg-type]


@given(st.integers(0, WAD), st.integers(0, 3_000))
def test_wad_pow_brackets_the_true_power(x: int, n: int) -> None:
    true = Fraction(x, WAD) ** n * WAD
    up, down = wad_pow(x, n), wad_pow(x, n, "down")
    assert down <= true <= up
    assert up - true <= max(n - 1, 0) and true - down <= max(n - 1, 0)  # error(a·b) ≤ error(a) + error(b) + 1


@given(params_st, st.integers(1, 5_000))
def test_integer_rule_is_never_more_permissive(params: BondParams, n: int) -> None:
    q_int, q = detection_wad(n, params), exact_q(n, params)
    assert q_int <= q * WAD  # rounding only ever makes the check stricter
    assert q * WAD - q_int <= n - 1


@given(real_params_st, st.integers(1, 2_000))
def test_integer_rule_agrees_within_1e12(params: BondParams, n: int) -> None:
    q_int, q = detection_wad(n, params), exact_q(n, params)
    assert (q * WAD - q_int) / (q * WAD) < Fraction(1, 10**12)


@given(real_params_st, st.integers(1, 10**5))
def test_error_bound_stays_below_1e12_for_large_n(params: BondParams, n: int) -> None:
    """With q·WAD − q_int ≲ N − 1 (tested above), the relative error is below N / q_int."""
    assert Fraction(n, detection_wad(n, params)) < Fraction(2, 10**13)


def test_integer_rule_agrees_on_the_devnet_grid() -> None:
    for n in [*range(1, 257), 500, 1_000, 10_000]:
        q_int, q = detection_wad(n), exact_q(n)
        assert q_int <= q * WAD and (q * WAD - q_int) / (q * WAD) < Fraction(1, 10**13)


def test_rounding_down_would_be_permissive() -> None:
    """Why the products round up: rounded down, q exceeds the true value for most N."""
    over = [n for n in range(2, 100) if detection_wad(n, rounding="down") > exact_q(n) * WAD]
    assert len(over) > 50
    assert all(detection_wad(n, rounding="down") >= exact_q(n) * WAD for n in range(1, 100))


@given(st.integers(0, 10**15), st.integers(1, 300), real_params_st)
def test_max_value_in_flight_is_the_boundary(stake: int, n: int, params: BondParams) -> None:
    v = max_value_in_flight(stake, n, params)
    assert bond_ok(stake, n, v, params) and not bond_ok(stake, n, v + 1, params)
    exact_max = math.floor(stake * exact_q(n, params) / params.lam)
    assert exact_max - 1 <= v <= exact_max  # never above what the exact rule allows


@given(st.integers(0, 10**15), st.integers(1, 300), params_st)
def test_min_stake_is_the_boundary(value: int, n: int, params: BondParams) -> None:
    s = min_stake(n, value, params)
    assert bond_ok(s, n, value, params)
    assert s == 0 or not bond_ok(s - 1, n, value, params)
    assert s >= params.lam * value / exact_q(n, params)  # at least the exact bound


def test_contract_examples() -> None:
    """1.5 mUSD deals on the devnet parameters (6-decimal base units)."""
    price = 3 * MUSD // 2
    assert min_stake(1, price) == 83_333_334  # ⌈1.5 · 1.5 / 0.027⌉ mUSD
    assert bond_ok(83_333_334, 1, price) and not bond_ok(83_333_333, 1, price)
    assert max_value_in_flight(84 * MUSD, 1) == 1_512_000
    assert min_stake(100, 100 * price) == math.ceil(min_bond(100, price, P, D, LAM))


@given(st.integers(0, 10**13), st.integers(1, 10**8))
def test_max_deals_at_price_is_the_boundary(stake: int, price: int) -> None:
    n = max_deals_at_price(stake, price)
    assert n == 0 or bond_ok(stake, n, n * price)
    assert not bond_ok(stake, n + 1, (n + 1) * price)


def test_max_deals_at_price_brute_force() -> None:
    for stake in (0, 1, 83_333_333, 83_333_334, 10**9, 10**10):
        for price in (1, 1_000, 1_500_000):
            n = max_deals_at_price(stake, price)
            brute = 0
            while brute < 20_000 and bond_ok(stake, brute + 1, (brute + 1) * price):
                brute += 1
            assert n == brute or (brute == 20_000 and n >= brute)


@pytest.mark.parametrize("call", [
    lambda: min_bond(0, 1, P, D, LAM),
    lambda: min_bond(1, 1, 0, D, LAM),
    lambda: min_bond(1, 1, True, D, LAM),
    lambda: wad_pow(WAD + 1, 2),
    lambda: wad_pow(WAD, -1),
    lambda: detection_wad(0),
    lambda: bond_ok(-1, 1, 1),
    lambda: max_deals_at_price(10, 0),
    lambda: BondParams(audit_floor_bps=0),
    lambda: BondParams(collusion_bps=10_001),
    lambda: BondParams(bond_lambda_bps=0),
])
def test_bad_inputs_raise(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError)):
        call()
