"""mUSD text <-> base units, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.requester import format_musd, parse_musd


@pytest.mark.parametrize(("text", "units"), [
    ("12.5", 12_500_000), ("0.000001", 1), ("1", 1_000_000), ("1_000", 1_000_000_000), (".5", 500_000),
    ("7.", 7_000_000), (3, 3_000_000), ("0", 0),
])
def test_parse(text: str | int, units: int) -> None:
    assert parse_musd(text) == units


@pytest.mark.parametrize("text", ["", ".", "-1", "1e3", "1.0000001", "abc", "1.2.3", 1.5, True, -2])
def test_parse_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_musd(text)  # type: ignore[arg-type]


@given(st.integers(0, 10**24))
def test_round_trip(units: int) -> None:
    assert parse_musd(format_musd(units)) == units
