"""The market price index (pure: no I/O): clearing prices per unit of work and their VWAP.

    >>> pts = [PricePoint(at=100, price=300, units=3), PricePoint(at=200, price=100, units=2)]
    >>> pts[0].per_unit, vwap(pts, start=0, end=200)
    (Fraction(100, 1), Fraction(80, 1))

A **price point** is one cleared (finalized) deal: the price the requester paid (token base
units) and the work it bought, in **compute units** (1 CU = 10⁹ fuel, rounded up, docs/SPEC.md
§12) for the deterministic runtimes, or in **vCPU-seconds** for container runs. Its clearing
price is ``price / units``. The **VWAP** over a window is the total price of the points in the
window divided by their total units, ``Σ price / Σ units``: the average price per unit
weighted by how many units traded at it. It is undefined (``None``) for an empty window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["WINDOWS", "PricePoint", "Candle", "vwap", "window_vwaps", "candles", "to_float"]

WINDOWS: dict[str, int] = {"1h": 3600, "24h": 24 * 3600}


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One cleared deal: ``price`` base units paid for ``units`` of work at unix time ``at``."""

    at: int
    price: int
    units: int
    deal_id: str = ""
    unit: str = "cu"

    def __post_init__(self) -> None:
        if self.units <= 0:
            raise ValueError(f"a price point needs positive units, got {self.units}")
        if self.price < 0:
            raise ValueError(f"a price cannot be negative, got {self.price}")

    @property
    def per_unit(self) -> Fraction:
        """The clearing price per unit (exact)."""
        return Fraction(self.price, self.units)


@dataclass(frozen=True, slots=True)
class Candle:
    """The points of one time bucket ``[start, start + width)``."""

    start: int
    width: int
    deals: int
    volume: int  # Σ price
    units: int  # Σ units
    low: Fraction
    high: Fraction

    @property
    def vwap(self) -> Fraction:
        return Fraction(self.volume, self.units)


def _in(points: Iterable[PricePoint], start: int, end: int) -> list[PricePoint]:
    return [p for p in points if start < p.at <= end]


def vwap(points: Iterable[PricePoint], start: int, end: int) -> Fraction | None:
    """``Σ price / Σ units`` over the points with ``start < at <= end``; None when there are none.

    >>> vwap([PricePoint(10, 50, 1)], start=10, end=20) is None  # the window excludes its start
    True
    """
    chosen = _in(points, start, end)
    units = sum(p.units for p in chosen)
    return Fraction(sum(p.price for p in chosen), units) if units else None


def window_vwaps(points: Sequence[PricePoint], now: int,
                 windows: dict[str, int] | None = None) -> dict[str, Fraction | None]:
    """The VWAP over each trailing window ending at ``now`` (default: 1 h and 24 h)."""
    return {name: vwap(points, now - width, now) for name, width in (windows or WINDOWS).items()}


def candles(points: Iterable[PricePoint], width: int, *, start: int | None = None,
            end: int | None = None) -> list[Candle]:
    """Bucket points by ``width`` seconds (aligned to multiples of ``width``); empty buckets are
    left out. ``start``/``end`` bound the points taken (``start <= at < end``)."""
    if width <= 0:
        raise ValueError(f"bucket width must be positive seconds, got {width}")
    buckets: dict[int, list[PricePoint]] = {}
    for p in points:
        if (start is not None and p.at < start) or (end is not None and p.at >= end):
            continue
        buckets.setdefault(p.at - p.at % width, []).append(p)
    return [Candle(b, width, len(ps), sum(p.price for p in ps), sum(p.units for p in ps),
                   min(p.per_unit for p in ps), max(p.per_unit for p in ps))
            for b, ps in sorted(buckets.items())]


def to_float(value: Fraction | None, digits: int = 6) -> float | None:
    """A Fraction rounded for display and JSON (None stays None)."""
    return None if value is None else round(float(value), digits)
