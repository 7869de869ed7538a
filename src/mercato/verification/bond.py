"""The bond rule: how much value a provider's stake may carry in flight (SPEC §14.6).

    >>> round(float(min_bond(10, price=1, p="0.03", d="0.9", lam="1.5")), 2)
    62.64
    >>> bond_ok(stake=84_000_000, n=1, value=1_500_000)
    True
    >>> max_value_in_flight(84_000_000, n=1)
    1512000

**Why.** A provider's whole stake B is forfeit on any proven fault. Cheating on k ≤ N
open deals gains at most their value and is caught with probability at least
``1 − (1 − p·d)^k``, where p is an audit's probability and d the share of audit capacity
assumed honest. The binding case is k = N, hence (λ a safety margin)

    B · (1 − (1 − p_min·d)^N) ≥ λ · V       ⇔       B ≥ λ·N·price / (1 − (1 − p·d)^N)

for N deals of one price. :func:`min_bond` is that real-valued bound, computed exactly.

**The integer rule** (what the contract checks; all integers, WAD = 10**18):

    x        = WAD − audit_floor_bps · collusion_bps · 10**10      # (1 − p_min·d), exact
    q(N)     = WAD − wad_pow(x, N)                                  # 1 − (1 − p_min·d)^N
    ok       ⇔ stake · q(N) · 10_000 ≥ bond_lambda_bps · V · WAD

``wad_pow`` is binary exponentiation (least significant bit first: ``z = WAD``; for each
bit, if set ``z = mul(z, x)``; then ``x = mul(x, x)``) where every product is rounded
**up**: ``mul(a, b) = ⌈a·b / WAD⌉``. The power is therefore never below the true
``(1 − p_min·d)^N · WAD``, so ``q`` is never above the true value and the rule is never
more permissive than the exact inequality. Rounding each product *down* would round
``q`` up and let a stake carry a hair more than it secures (``rounding="down"`` computes
that variant, for comparison). Each product adds at most 1 wei and a product's error is at
most the sum of its factors' errors plus 1 (factors ≤ 1), so ``x^N`` is off by about N − 1
wei at most: relative to q, about N / (q·WAD), below 2e-13 for any N ≤ 10⁵ with p_min·d ≥ 0.5 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

__all__ = [
    "WAD",
    "DEVNET",
    "BondParams",
    "Number",
    "bond_ok",
    "code_price",
    "deals_on_value",
    "detection_wad",
    "exact",
    "max_deals_at_price",
    "max_value_in_flight",
    "min_bond",
    "min_stake",
    "next_largest_price",
    "price_code",
    "wad_mul",
    "wad_pow",
]

WAD = 10**18
_BPS = 10_000
_BPS2_TO_WAD = WAD // (_BPS * _BPS)  # bps · bps → WAD: 10**10

Number = int | str | Decimal | Fraction | float
Rounding = Literal["up", "down"]


def exact(x: Number) -> Fraction:
    """``exact(0.03) == Fraction(3, 100)``: a number as an exact fraction (floats via their repr)."""
    if isinstance(x, bool):
        raise TypeError("a bool is not a number here")
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


@dataclass(frozen=True, slots=True)
class BondParams:
    """The deployment parameters the rule reads (SPEC §14.1); defaults are the devnet's."""

    audit_floor_bps: int = 300
    collusion_bps: int = 9_000
    bond_lambda_bps: int = 15_000

    def __post_init__(self) -> None:
        if not 0 < self.audit_floor_bps <= _BPS:
            raise ValueError(f"audit_floor_bps must be within 1..{_BPS}, got {self.audit_floor_bps}")
        if not 0 < self.collusion_bps <= _BPS:
            raise ValueError(f"collusion_bps must be within 1..{_BPS}, got {self.collusion_bps}")
        if self.bond_lambda_bps <= 0:
            raise ValueError(f"bond_lambda_bps must be positive, got {self.bond_lambda_bps}")

    @property
    def p_min_d(self) -> Fraction:
        """``p_min · d``, the least probability that one cheat is caught (0.027 on the devnet)."""
        return Fraction(self.audit_floor_bps * self.collusion_bps, _BPS * _BPS)

    @property
    def lam(self) -> Fraction:
        """λ as a fraction (3/2 on the devnet)."""
        return Fraction(self.bond_lambda_bps, _BPS)


DEVNET = BondParams()


def min_bond(n_deals: int, price: Number, p: Number, d: Number, lam: Number) -> Fraction:
    """``min_bond(1, 1, "0.03", "0.9", "1.5") == Fraction(500, 9)``: ``λ·N·price / (1 − (1 − p·d)^N)``.

    The exact real-valued bond that deters cheating on all of ``n_deals`` deals of ``price``.
    """
    if n_deals < 1:
        raise ValueError(f"n_deals must be >= 1, got {n_deals}")
    pd = exact(p) * exact(d)
    if not 0 < pd <= 1:
        raise ValueError(f"p·d must be within (0, 1], got {pd}")
    return exact(lam) * n_deals * exact(price) / (1 - (1 - pd) ** n_deals)


def wad_mul(a: int, b: int, rounding: Rounding = "up") -> int:
    """``wad_mul(1, 1) == 1``, ``wad_mul(1, 1, "down") == 0``: ``a·b / WAD``, rounded up or down."""
    if rounding == "up":
        return -(-(a * b) // WAD)
    if rounding == "down":
        return a * b // WAD
    raise ValueError(f"rounding must be 'up' or 'down', got {rounding!r}")


def wad_pow(x: int, n: int, rounding: Rounding = "up") -> int:
    """``wad_pow(WAD // 2, 3) == WAD // 8``: ``x^n`` in WAD fixed point, by squaring (LSB first).

    ``z = WAD``; while ``n``: if ``n & 1``: ``z = wad_mul(z, x)``; ``n >>= 1``; if ``n``:
    ``x = wad_mul(x, x)``. Every product rounds the same way (up by default).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= x <= WAD:
        raise ValueError(f"x must be within 0..WAD, got {x}")
    z = WAD
    while n:
        if n & 1:
            z = wad_mul(z, x, rounding)
        n >>= 1
        if n:
            x = wad_mul(x, x, rounding)
    return z


def detection_wad(n: int, params: BondParams = DEVNET, rounding: Rounding = "up") -> int:
    """``detection_wad(1) == 27 * 10**15``: ``q(N) = WAD − wad_pow(WAD − p_min·d·WAD, N)``.

    In WAD, the probability (rounded down) that cheating on all N deals is caught.
    """
    if n < 1:
        raise ValueError(f"n (open deals including the new one) must be >= 1, got {n}")
    x = WAD - params.audit_floor_bps * params.collusion_bps * _BPS2_TO_WAD
    return WAD - wad_pow(x, n, rounding)


def bond_ok(stake: int, n: int, value: int, params: BondParams = DEVNET) -> bool:
    """``bond_ok(stake, n, value)``: ``stake · q(N) · 10000 ≥ λ_bps · value · WAD`` (the contract's check).

    ``n`` counts the provider's open deals including the new one; ``value`` is their total price.
    """
    if stake < 0 or value < 0:
        raise ValueError("stake and value must not be negative")
    return stake * detection_wad(n, params) * _BPS >= params.bond_lambda_bps * value * WAD


_U24 = 2**24 - 1


def price_code(price: int) -> int:
    """``price_code(5) == 5``, ``code_price(price_code(2**24 + 1)) == 2**24 + 2``: the contract's 32-bit code
    of the smallest value ``mantissa << exponent`` (24-bit mantissa) at least ``price`` (exact below 2**24)."""
    if not 0 <= price < 2**96:
        raise ValueError(f"price must be within 0..2**96 - 1, got {price}")
    if price <= _U24:
        return price
    exponent = price.bit_length() - 24
    mantissa = -(-price >> exponent)  # ceil(price / 2**exponent)
    if mantissa == 2**24:
        mantissa, exponent = 2**23, exponent + 1
    return mantissa | (exponent << 24)


def code_price(code: int) -> int:
    """``code_price(price_code(p)) >= p``: the price a code stands for."""
    return (code & _U24) << (code >> 24)


def next_largest_price(largest: int, value_before: int, price: int) -> int:
    """The largest price m the contract counts after opening a deal of ``price``: the deal's own (rounded up
    as the contract stores it) when nothing of value was in flight, else the larger of the two.

    ``largest`` is m as ``in_flight`` reports it (already rounded)."""
    if value_before == 0 or price > largest:
        return code_price(price_code(price))
    return largest


def deals_on_value(value: int, largest: int) -> int:
    """``deals_on_value(10, 2) == 5``: N_eff = max(1, V // m), the deals the bond rule counts (attack class 4:
    zero-price and cheap deals add value, not count; ``largest`` is m, 0 when nothing is in flight)."""
    if largest == 0 or value < 2 * largest:
        return 1
    return value // largest


def max_value_in_flight(stake: int, n: int, params: BondParams = DEVNET) -> int:
    """``max_value_in_flight(stake, n)``: the largest total price V that ``bond_ok`` accepts.

    ``⌊stake · q(N) · 10000 / (λ_bps · WAD)⌋``: V passes, V + 1 does not.
    """
    if stake < 0:
        raise ValueError(f"stake must not be negative, got {stake}")
    return stake * detection_wad(n, params) * _BPS // (params.bond_lambda_bps * WAD)


def min_stake(n: int, value: int, params: BondParams = DEVNET) -> int:
    """``min_stake(1, 1_500_000) == 83_333_334``: the least stake ``bond_ok`` accepts for N deals worth V.

    ``⌈λ_bps · V · WAD / (q(N) · 10000)⌉``: this stake passes, one unit less does not.
    """
    if value < 0:
        raise ValueError(f"value must not be negative, got {value}")
    need = params.bond_lambda_bps * value * WAD
    return -(-need // (detection_wad(n, params) * _BPS))


def max_deals_at_price(stake: int, price: int, params: BondParams = DEVNET) -> int:
    """``max_deals_at_price(stake, price)``: the most open deals of ``price`` the stake may carry (0 if none).

    The largest N with ``bond_ok(stake, N, N·price)``. The check is monotone in N (q(N)/N
    falls as N grows), so a binary search finds it; since q ≤ 1, N ≤ stake/(λ·price).
    """
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    if stake < 0:
        raise ValueError(f"stake must not be negative, got {stake}")
    lo, hi = 0, stake * _BPS // (params.bond_lambda_bps * price)  # bond_ok(lo) holds; > hi never does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if bond_ok(stake, mid, mid * price, params):
            lo = mid
        else:
            hi = mid - 1
    return lo
