"""The price index math: clearing price per unit, VWAP over trailing windows, candles."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.explorer.prices import PricePoint, candles, to_float, vwap, window_vwaps

HOUR = 3600


def test_vwap_weights_by_units_not_by_deal() -> None:
    # 1 CU at 100 and 9 CU at 10: the per-deal mean would be 55, the VWAP is 190 / 10 = 19
    pts = [PricePoint(at=10, price=100, units=1), PricePoint(at=20, price=90, units=9)]
    assert vwap(pts, 0, 20) == Fraction(19)


def test_windows_are_half_open_and_trailing() -> None:
    now = 100 * HOUR
    pts = [PricePoint(now - 25 * HOUR, 1_000, 1),  # outside both windows
           PricePoint(now - 24 * HOUR, 500, 1),  # exactly 24 h old: outside (start excluded)
           PricePoint(now - 2 * HOUR, 300, 3),  # in 24 h only
           PricePoint(now - HOUR + 1, 200, 1),  # in both
           PricePoint(now, 100, 1)]  # in both (end included)
    got = window_vwaps(pts, now)
    assert got == {"1h": Fraction(300, 2), "24h": Fraction(600, 5)}
    assert window_vwaps(pts, now + 30 * HOUR) == {"1h": None, "24h": None}


def test_points_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        PricePoint(0, 10, 0)
    with pytest.raises(ValueError):
        PricePoint(0, -1, 1)
    with pytest.raises(ValueError):
        candles([], 0)


def test_candles_bucket_by_width() -> None:
    pts = [PricePoint(0, 10, 1), PricePoint(59, 30, 1), PricePoint(60, 50, 2), PricePoint(200, 7, 7)]
    got = candles(pts, 60)
    assert [(c.start, c.deals, c.volume, c.units) for c in got] == [(0, 2, 40, 2), (60, 1, 50, 2), (180, 1, 7, 7)]
    assert (got[0].low, got[0].high, got[0].vwap) == (Fraction(10), Fraction(30), Fraction(20))
    assert [c.start for c in candles(pts, 60, start=60, end=200)] == [60]


def test_to_float_rounds_for_display() -> None:
    assert to_float(Fraction(1, 3)) == 0.333333
    assert to_float(None) is None


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10**20), st.integers(1, 10**6)), min_size=1))
def test_vwap_lies_between_the_cheapest_and_dearest_unit(raw: list[tuple[int, int, int]]) -> None:
    pts = [PricePoint(at, price, units) for at, price, units in raw]
    v = vwap(pts, -1, 10_000)
    assert v is not None
    assert min(p.per_unit for p in pts) <= v <= max(p.per_unit for p in pts)
    # the candles add up to the same totals
    cs = candles(pts, 97)
    assert sum(c.volume for c in cs) == sum(p.price for p in pts)
    assert sum(c.units for c in cs) == sum(p.units for p in pts)
