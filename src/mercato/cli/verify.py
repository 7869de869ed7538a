"""`mercato verify-params`: what verification to ask for a deal, and why cheating does not pay.

    mercato verify-params --price 1.5
    mercato verify-params --price 1.5 --p 0.03 --deals 50
    mercato verify-params --price 1.5 --risk high --gain 20 --json

Amounts are mUSD (6 decimals). The figures come from `mercato.verification.recommend`; the
bond column applies the contract's own integer bond rule (SPEC §14.6). The default risk,
"standard", is `verification.params.DEFAULT_AUDIT_BPS`: the audit rate the requester SDK asks
for a job that names none (or the market's floor where higher).
"""

from __future__ import annotations

import enum
import json
from fractions import Fraction
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from mercato.cli._errors import clean_errors
from mercato.requester import format_musd, parse_musd
from mercato.verification import VerifyParams, recommend
from mercato.verification.params import Risk

console = Console()


class RiskLevel(str, enum.Enum):
    """How much a wrong result would hurt: picks the audit probability (3 %, 5 %, 10 %)."""

    low = "low"
    standard = "standard"
    high = "high"


def parse_probability(text: str) -> int:
    """``"0.03"`` or ``"3%"`` -> 300 basis points; anything else is a ``ValueError`` saying why."""
    raw = text.strip()
    scale = 100 if raw.endswith("%") else 1
    try:
        p = Fraction(raw.removesuffix("%").strip()) / scale
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"--p must be a probability such as 0.03 or 3%, got {text!r}") from None
    if not 0 < p <= 1:
        raise ValueError(f"--p must be above 0 and at most 1 (100%), got {text!r}")
    bps = p * 10_000
    if bps.denominator != 1:
        raise ValueError(f"--p must be a whole number of basis points (steps of 0.0001), got {text!r}")
    return int(bps)


def _musd(units: int | Fraction) -> str:
    return f"{format_musd(round(units))} mUSD"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _pct(x: Fraction, digits: int = 2) -> str:
    return f"{float(x) * 100:.{digits}f} %"


def to_json(v: VerifyParams) -> dict[str, Any]:
    """One JSON object: money as mUSD decimal strings, probabilities as numbers in 0..1."""
    return {
        "price_musd": format_musd(v.price),
        "risk": v.risk,
        "audit_bps": v.audit_bps,
        "audit_probability": v.audit_bps / 10_000,
        "audit_fee_musd": format_musd(v.audit_fee),
        "expected_cost_musd": format_musd(round(v.expected_cost)),
        "overhead_pct": float(v.overhead_pct),
        "deals": v.deals,
        "bond_musd": format_musd(v.bond),
        "bond_table": [{"deals": n, "bond_musd": format_musd(b), "per_deal_musd": format_musd(round(Fraction(b, n)))}
                       for n, b in v.bond_table],
        "cheats": v.cheats,
        "catch_probability": float(v.catch_probability),
        "cheater_profit_per_cheat_musd": format_musd(round(v.cheater_profit)),
        "gain_musd": format_musd(v.gain),
        "explanation": v.explain(_musd),
    }


def render(v: VerifyParams) -> tuple[Table, Table]:
    """The summary table and the minimum-bond table."""
    summary = Table(title=f"verification for a deal of {_musd(v.price)}", show_header=False)
    summary.add_row("audit probability", f"{v.audit_bps / 100:g} % ({v.risk})")
    summary.add_row("audit fee", f"{_musd(v.audit_fee)} (paid only when the deal is audited)")
    summary.add_row("expected verification cost",
                    f"{_musd(v.expected_cost)} per deal ({_pct(v.expected_cost / v.price)} of the price)")
    summary.add_row("extra compute", f"{float(v.overhead_pct):.3f} % of useful compute")
    summary.add_row("bond needed", f"{_musd(v.bond)} for {_count(v.deals, 'open deal')} at this price")
    summary.add_row("catch probability", f"{_pct(v.catch_probability)} over {_count(v.cheats, 'cheat')}")
    summary.add_row("cheater's expected profit", f"{_musd(v.cheater_profit)} per cheat")
    bonds = Table(title="minimum bond by deals in flight")
    for column in ("deals in flight", "bond", "per deal"):
        bonds.add_column(column, justify="right")
    for n, b in v.bond_table:
        bonds.add_row(str(n), _musd(b), _musd(Fraction(b, n)))
    return summary, bonds


def verify_params(
    price: Annotated[str, typer.Option("--price", help="the deal's price in mUSD, e.g. 1.5")],
    p: Annotated[str | None, typer.Option("--p", help="audit probability, e.g. 0.03 or 3% (overrides --risk)")] = None,
    risk: Annotated[RiskLevel, typer.Option("--risk", help="audits: low 3 %, standard 5 % (what the SDK asks "
                                                        "by default), high 10 %")] = (
        RiskLevel.standard),
    deals: Annotated[int, typer.Option("--deals", min=1, help="open deals the provider carries at this price")] = 10,
    gain: Annotated[str, typer.Option("--gain", help="mUSD a wrong result is worth to a cheater")] = "0",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Recommend an audit probability, fee and bond for a deal, and show why cheating loses money."""
    units = parse_musd(price, what="--price")
    if units == 0:
        raise ValueError("--price must be above 0")
    bps = None if p is None else parse_probability(p)
    v = recommend(units, risk=cast(Risk, risk.value), gain=parse_musd(gain, what="--gain"), deals=deals, audit_bps=bps)
    if as_json:
        typer.echo(json.dumps(to_json(v), sort_keys=True))
        return
    for table in render(v):
        console.print(table)
    console.print(v.explain(_musd), soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `verify-params` to the main app."""
    app.command("verify-params")(clean_errors(ValueError)(verify_params))
