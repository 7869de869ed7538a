"""Verification terms to ask for a deal: audit rate, fee, bond, and why cheating does not pay.

    >>> v = recommend(1_500_000, risk="low", deals=10)
    >>> v.audit_bps, v.audit_fee, v.bond
    (300, 1500000, 93965772)
    >>> v.cheater_profit < 0
    True

**The cheater's expected profit per cheat** (research §7.3, SPEC §11/§14.6). A provider
holds bond B and N open deals of price R; it cheats on k ≤ N of them, skipping work that
costs it C per deal (worst case C = R) and gaining G per wrong result from outside the
market. Each cheat is caught independently with probability ``p·d`` (p the deal's audit
rate, d the honest share of auditors). Relative to doing the work honestly (R − C each):

- every cheat saves C and earns G;
- a caught cheat's price goes back to the requester (loses R, probability ``p·d`` each);
- one catch forfeits the whole bond, probability ``1 − (1 − p·d)^k``.

    profit per cheat = C + G − p·d·R − (1 − (1 − p·d)^k) · B / k

This rises with k, so k = N is the worst case. With the pooled bond
``B = λ·N·(C + G) / (1 − (1 − p·d)^N)`` it is ``−(λ − 1)·(C + G) − p·d·R < 0`` for λ ≥ 1.
(The price is lost only once when caught: the cheater never had it and spent nothing.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from mercato.verification.bond import DEVNET, BondParams, min_bond, min_stake
from mercato.verification.fees import audit_fee, expected_overhead_pct, expected_verification_cost

__all__ = ["BOND_TABLE_DEALS", "DEFAULT_AUDIT_BPS", "RISK_AUDIT_BPS", "Risk", "VerifyParams", "catch_probability",
           "cheater_profit", "default_audit_bps", "recommend", "required_bond"]

Risk = Literal["low", "standard", "high"]
# The one default audit rate: what the requester SDK asks when a job names none (raised to the
# market's floor where that is higher) and what `mercato verify-params` calls "standard".
DEFAULT_AUDIT_BPS = 500
RISK_AUDIT_BPS: dict[str, int] = {"low": 300, "standard": DEFAULT_AUDIT_BPS, "high": 1_000}
BOND_TABLE_DEALS = (1, 10, 50, 100)
_BPS = 10_000


def default_audit_bps(floor_bps: int) -> int:
    """``default_audit_bps(300) == 500``: the audit rate a deal asks when its job names none —
    :data:`DEFAULT_AUDIT_BPS`, or the market's floor where that is higher."""
    return max(DEFAULT_AUDIT_BPS, int(floor_bps))


def catch_probability(audit_bps: int, collusion_bps: int, cheats: int) -> Fraction:
    """``catch_probability(300, 9000, 1) == Fraction(27, 1000)``: ``1 − (1 − p·d)^k``."""
    if cheats < 1:
        raise ValueError(f"cheats must be >= 1, got {cheats}")
    return 1 - (1 - Fraction(audit_bps * collusion_bps, _BPS * _BPS)) ** cheats


def cheater_profit(*, price: int, bond: int, audit_bps: int, collusion_bps: int, cheats: int,
                   cost: int | None = None, gain: int = 0) -> Fraction:
    """Expected profit per cheat in base units: ``C + G − p·d·R − (1 − (1 − p·d)^k)·B / k``.

    Derived in the module docstring; negative means cheating loses money on average.

    ``cost`` C defaults to the price (the cheater saves the whole price's worth of work).
    """
    c = price if cost is None else cost
    pd = Fraction(audit_bps * collusion_bps, _BPS * _BPS)
    caught = catch_probability(audit_bps, collusion_bps, cheats)
    return c + gain - pd * price - caught * bond / cheats


def required_bond(deals: int, price: int, audit_bps: int, *, gain: int = 0, cost: int | None = None,
                  params: BondParams = DEVNET) -> int:
    """The stake a provider needs for ``deals`` open deals of ``price``: the larger of two bounds.

    The contract's integer rule (``min_stake``, at the floor p_min), and the deterrence bond
    ``⌈λ·N·(C + G) / (1 − (1 − p·d)^N)⌉`` at this deal's p, which also covers an outside gain G.
    """
    c = price if cost is None else cost
    on_chain = min_stake(deals, deals * price, params)
    deter = min_bond(deals, c + gain, Fraction(audit_bps, _BPS), Fraction(params.collusion_bps, _BPS), params.lam)
    return max(on_chain, math.ceil(deter))


@dataclass(frozen=True, slots=True)
class VerifyParams:
    """What to ask for: the audit rate and fee, the bond to expect, and the deterrence it buys."""

    price: int
    risk: str  # "low" | "standard" | "high", or "custom" when audit_bps was given
    gain: int
    deals: int
    audit_bps: int
    audit_fee: int
    expected_cost: Fraction  # base units per deal: p · fee
    overhead_pct: Fraction  # extra compute, % of useful compute
    bond: int  # stake needed for `deals` open deals of `price`
    bond_table: tuple[tuple[int, int], ...]  # (N, bond) for BOND_TABLE_DEALS and `deals`
    cheats: int
    catch_probability: Fraction  # over `cheats` cheats
    cheater_profit: Fraction  # per cheat, base units; negative means cheating loses money
    params: BondParams

    def explain(self, fmt: Callable[[int], str] = lambda units: f"{units} units") -> str:
        """Two or three plain sentences; ``fmt`` renders base units (the CLI passes mUSD)."""
        floor = " (the protocol's floor)" if self.audit_bps == self.params.audit_floor_bps else ""
        why = "" if self.risk == "custom" else f" for {self.risk} risk"
        deals = f"{self.deals} open deal{'s' if self.deals > 1 else ''}"
        cheats = f"all {self.cheats}" if self.cheats == self.deals > 1 else str(self.cheats)
        lines = [
            f"Audit {self.audit_bps / 100:g} % of deals{floor}{why}: an audited deal is re-executed blind "
            f"and its auditor paid {fmt(self.audit_fee)}, so verification costs {fmt(round(self.expected_cost))} "
            f"per deal on average ({float(self.expected_cost / self.price * 100):.2f} % of the price).",
            f"A provider carrying {deals} at this price needs a bond of {fmt(self.bond)}; cheating on "
            f"{cheats} is caught with probability {float(self.catch_probability) * 100:.1f} % and then "
            f"forfeits the whole bond, so each cheat loses {fmt(round(-self.cheater_profit))} on average.",
        ]
        if self.gain > self.price:
            lines.append("A wrong result is worth more to a cheater than the price: consider auditing "
                         "every deal (p = 100 %) or a trusted execution environment.")
        return " ".join(lines)


def recommend(price: int, *, risk: Risk = "standard", gain: int = 0, deals: int = 10,
              audit_bps: int | None = None, margin_bps: int = 0, cost: int | None = None,
              cheats: int | None = None, committee_size: int = 5, dispute_rate: Fraction = Fraction(1, 1000),
              params: BondParams = DEVNET) -> VerifyParams:
    """``recommend(1_500_000, risk="standard")``: verification terms for a deal of ``price`` base units.

    ``risk`` picks p (low 3 %, standard 5 %, high 10 %) unless ``audit_bps`` is given; p is
    never below the floor. ``gain`` is what a wrong result is worth to a cheater outside the
    market; ``deals`` the open deals the provider carries; ``cheats`` (default ``deals``) the
    number of cheats the catch probability is over.
    """
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    if gain < 0:
        raise ValueError(f"gain must not be negative, got {gain}")
    if deals < 1:
        raise ValueError(f"deals must be >= 1, got {deals}")
    if risk not in RISK_AUDIT_BPS:
        raise ValueError(f"risk must be one of {', '.join(RISK_AUDIT_BPS)}, got {risk!r}")
    bps = max(RISK_AUDIT_BPS[risk], params.audit_floor_bps) if audit_bps is None else audit_bps
    if not params.audit_floor_bps <= bps <= _BPS:
        raise ValueError(f"the audit probability must be between the floor {params.audit_floor_bps / 100:g} % "
                         f"and 100 %, got {bps / 100:g} %")
    k = deals if cheats is None else cheats
    label = risk if audit_bps is None else "custom"
    fee = audit_fee(price, margin_bps)

    def bond_for(n: int) -> int:
        return required_bond(n, price, bps, gain=gain, cost=cost, params=params)

    bond = bond_for(deals)
    return VerifyParams(
        price=price, risk=label, gain=gain, deals=deals, audit_bps=bps, audit_fee=fee,
        expected_cost=expected_verification_cost(price, bps, fee),
        overhead_pct=expected_overhead_pct(bps, committee_size, dispute_rate),
        bond=bond,
        bond_table=tuple((n, bond_for(n)) for n in sorted({*BOND_TABLE_DEALS, deals})),
        cheats=k,
        catch_probability=catch_probability(bps, params.collusion_bps, k),
        cheater_profit=cheater_profit(price=price, bond=bond, audit_bps=bps, collusion_bps=params.collusion_bps,
                                      cheats=k, cost=cost, gain=gain),
        params=params,
    )
