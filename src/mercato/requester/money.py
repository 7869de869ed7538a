"""mUSD amounts as text ⇄ integer base units (6 decimals), exactly: no float anywhere.

    >>> parse_musd("12.5")
    12500000
    >>> format_musd(12_500_000)
    '12.5'
"""

from __future__ import annotations

import re

__all__ = ["DECIMALS", "UNIT", "parse_musd", "format_musd"]

DECIMALS = 6
UNIT = 10**DECIMALS
_AMOUNT_RE = re.compile(r"^(\d[\d_]*)?(?:\.(\d*))?$")


def parse_musd(text: str | int, *, what: str = "amount") -> int:
    """``"12.5"`` mUSD -> 12_500_000 base units; an ``int`` is whole mUSD.

    More than 6 decimals, a sign, exponents or anything else is a ``ValueError`` saying so.

    >>> parse_musd("0.000001"), parse_musd(3), parse_musd("1_000")
    (1, 3000000, 1000000000)
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{what} must be a decimal string such as \"12.5\", got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{what} must not be negative, got {text}")
        return text * UNIT
    raw = text.strip()
    match = _AMOUNT_RE.match(raw)
    if not raw or raw == "." or match is None:
        raise ValueError(f"{what} must be a decimal number of mUSD such as \"12.5\", got {text!r}")
    whole, frac = (match.group(1) or "0").replace("_", ""), match.group(2) or ""
    if len(frac) > DECIMALS:
        raise ValueError(f"{what} has more than {DECIMALS} decimals ({text!r}): 0.000001 mUSD is the smallest unit")
    return int(whole) * UNIT + int(frac.ljust(DECIMALS, "0") or "0")


def format_musd(amount: int) -> str:
    """Base units -> ``"1,234.5"``-free plain text ``"1234.5"`` (trailing zeros dropped).

    >>> format_musd(0), format_musd(1), format_musd(-2_500_000)
    ('0', '0.000001', '-2.5')
    """
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), UNIT)
    return sign + str(whole) + (f".{frac:0{DECIMALS}d}".rstrip("0") if frac else "")
