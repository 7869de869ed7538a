"""What the dashboard, the JSON API and `mercato market price` show, read from the :class:`Store`.

The reputation score is :func:`mercato.matching.reputation.reputation_score`, the function
behind the requester SDK's tie-breaks, over each provider's outcomes decayed by age
(``score``) and over the plain counters (``chain_score``: what the SDK computes from the
on-chain counters, no decay).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mercato.explorer.indexer import ACTIVE_STATES
from mercato.explorer.prices import WINDOWS, PricePoint, candles, to_float, window_vwaps
from mercato.explorer.store import Store
from mercato.matching.reputation import DEFAULT_HALF_LIFE_S, Evidence, Outcome, decayed_evidence, reputation_score

__all__ = ["Views"]


@dataclass
class Views:
    """Read models over one store. ``now`` defaults to the newest indexed block's time."""

    store: Store
    half_life_s: int | None = DEFAULT_HALF_LIFE_S

    def chain_now(self) -> int:
        row = self.store.one("SELECT MAX(timestamp) AS t FROM blocks")
        return int(row["t"]) if row and row["t"] is not None else int(time.time())

    # prices --------------------------------------------------------------------------------
    def price_points(self, unit: str = "cu") -> list[PricePoint]:
        rows = self.store.rows("SELECT deal_id, price, units, unit, finalized_at FROM deals WHERE status = 'finalized' "
                               "AND units > 0 AND unit = ? ORDER BY finalized_at, finalized_block", (unit,))
        return [PricePoint(int(r["finalized_at"]), int(r["price"]), int(r["units"]), r["deal_id"], r["unit"])
                for r in rows]

    def prices(self, unit: str = "cu", bucket_s: int = 60, since_s: int = 24 * 3600) -> dict[str, Any]:
        now = self.chain_now()
        points = self.price_points(unit)
        vw = window_vwaps(points, now)
        return {
            "unit": unit,
            "now": now,
            "vwap": {k: to_float(v) for k, v in vw.items()},
            "vwap_exact": {k: None if v is None else f"{v.numerator}/{v.denominator}" for k, v in vw.items()},
            "last": to_float(points[-1].per_unit) if points else None,
            "points": [{"at": p.at, "deal_id": p.deal_id, "price": p.price, "units": p.units,
                        "per_unit": to_float(p.per_unit)} for p in points if p.at > now - since_s],
            "candles": [{"start": c.start, "deals": c.deals, "volume": c.volume, "units": c.units,
                         "vwap": to_float(c.vwap), "low": to_float(c.low), "high": to_float(c.high)}
                        for c in candles(points, bucket_s, start=now - since_s)],
            "windows": dict(WINDOWS),
        }

    # providers and reputation -----------------------------------------------------------------
    def outcomes(self, provider: str) -> list[Outcome]:
        """The provider's scored outcomes, each at its block time."""
        out: list[Outcome] = []
        for d in self.store.rows("SELECT jobs, price, status, finalized_at, reclaimed_at FROM deals WHERE provider = ? "
                                 "AND status IN ('finalized', 'reclaimed')", (provider,)):
            if d["status"] == "finalized":
                out.append(Outcome("completed", int(d["finalized_at"]), int(d["jobs"]), int(d["price"])))
            else:
                out.append(Outcome("missed", int(d["reclaimed_at"]), int(d["jobs"])))
        for d in self.store.rows("SELECT d.audit_outcome, d.resolved_at, "
                                 "EXISTS (SELECT 1 FROM results r WHERE r.deal_id = d.deal_id "
                                 "AND r.executor = d.provider) AS revealed "
                                 "FROM deals d WHERE d.provider = ? AND d.audit_outcome IN (3, 4)", (provider,)):
            if d["audit_outcome"] == 3:
                out.append(Outcome("audit_passed", int(d["resolved_at"])))
            else:
                out.append(Outcome("audit_failed", int(d["resolved_at"])))
                if d["revealed"]:
                    out.append(Outcome("dispute_lost", int(d["resolved_at"])))
        for s in self.store.rows("SELECT s.at FROM slashes s JOIN deals d ON d.deal_id = s.deal_id "
                                 "WHERE s.kind = 'forfeit' AND s.provider = ? AND d.provider != ?", (provider, provider)):
            out.append(Outcome("dispute_lost", int(s["at"])))
        return out

    def providers(self) -> list[dict[str, Any]]:
        now = self.chain_now()
        last_price = {r["provider"]: r for r in self.store.rows(
            "SELECT provider, price, units, MAX(finalized_at) AS at FROM deals WHERE status = 'finalized' AND units > 0 "
            "AND unit = 'cu' GROUP BY provider")}
        active = {r["provider"]: r["n"] for r in self.store.rows(
            f"SELECT provider, COUNT(*) AS n FROM deals WHERE status IN ({_marks(ACTIVE_STATES)}) GROUP BY provider",
            ACTIVE_STATES)}
        rows = []
        for p in self.store.rows("SELECT * FROM providers ORDER BY registered_block, address"):
            counters = Evidence(completed=p["completed"], missed=p["missed"], audits_passed=p["audits_passed"],
                                audits_failed=p["audits_failed"], disputes_lost=p["disputes_lost"], volume=p["volume"])
            decayed = decayed_evidence(self.outcomes(p["address"]), now, self.half_life_s)
            lp = last_price.get(p["address"])
            rows.append(p | {
                "registered": p["registered_block"] >= 0,
                "jailed": bool(p["jailed"]),
                "active_deals": active.get(p["address"], 0),
                "score": to_float(reputation_score(decayed)),
                "chain_score": to_float(reputation_score(counters)),
                "chain_score_exact": _exact(reputation_score(counters)),
                "last_price_per_cu": to_float(Fraction(lp["price"], lp["units"])) if lp else None,
            })
        return rows

    def provider(self, address: str) -> dict[str, Any] | None:
        for p in self.providers():
            if p["address"].lower() == address.lower():
                p["deals"] = self.deals(provider=p["address"], limit=50)
                p["slashes"] = [s for s in self.slashes() if s["provider"] == p["address"]]
                p["stakes"] = self.store.rows("SELECT * FROM stakes WHERE provider = ? ORDER BY block, log_index",
                                              (p["address"],))
                return p
        return None

    # deals ----------------------------------------------------------------------------------
    def deals(self, *, status: str | None = None, provider: str | None = None, limit: int = 50,
              offset: int = 0) -> list[dict[str, Any]]:
        where, params = [], []
        if status == "active":
            where.append(f"status IN ({_marks(ACTIVE_STATES)})")
            params += list(ACTIVE_STATES)
        elif status:
            where.append("status = ?")
            params.append(status)
        if provider:
            where.append("lower(provider) = lower(?)")
            params.append(provider)
        sql = "SELECT * FROM deals" + (" WHERE " + " AND ".join(where) if where else "")
        return [_deal_summary(d) for d in self.store.rows(
            sql + " ORDER BY opened_block DESC, deal_id LIMIT ? OFFSET ?", [*params, limit, offset])]

    def deal(self, deal_id: str) -> dict[str, Any] | None:
        d = self.store.one("SELECT * FROM deals WHERE lower(deal_id) = lower(?)", (deal_id,))
        if d is None:
            return None
        audit = [a | {"detail": json.loads(a["detail"]) if a["detail"] else None}
                 for a in self.store.rows("SELECT * FROM audits WHERE deal_id = ? ORDER BY block, log_index",
                                          (d["deal_id"],))]
        results = self.store.rows("SELECT * FROM results WHERE deal_id = ? ORDER BY block, log_index", (d["deal_id"],))
        slashes = self.store.rows("SELECT * FROM slashes WHERE deal_id = ? ORDER BY block, log_index", (d["deal_id"],))
        return _deal_summary(d) | {"timeline": _timeline(d, audit), "audit": audit, "results": results,
                                   "slashes": slashes}

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        """The Market events one transaction logged (None if it logged none that were indexed)."""
        rows = self.store.rows("SELECT block, log_index, name, args, at, tx_hash FROM events WHERE lower(tx_hash) = "
                               "lower(?) ORDER BY block, log_index", (tx_hash,))
        if not rows:
            return None
        return {"tx_hash": rows[0]["tx_hash"], "block": rows[0]["block"], "at": rows[0]["at"],
                "events": [{"log_index": r["log_index"], "name": r["name"], "args": json.loads(r["args"])}
                           for r in rows]}

    def slashes(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.store.rows("SELECT * FROM slashes ORDER BY block DESC, log_index DESC LIMIT ?", (limit,))

    # overview --------------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        now = self.chain_now()
        providers = self.store.rows("SELECT address, stake, jailed, registered_block FROM providers")
        finalized = self.store.rows("SELECT price, finalized_at FROM deals WHERE status = 'finalized'")
        counts = {r["status"]: r["n"] for r in self.store.rows("SELECT status, COUNT(*) AS n FROM deals GROUP BY status")}
        slashes = self.store.rows("SELECT amount FROM slashes")
        prices = self.prices()
        return {
            "chain_time": now,
            "indexed_block": self.store.cursor(),
            "providers": sum(1 for p in providers if p["registered_block"] >= 0),
            "active_providers": sum(1 for p in providers
                                    if p["registered_block"] >= 0 and not p["jailed"] and p["stake"] > 0),
            "total_stake": sum(p["stake"] for p in providers),
            "deals": sum(counts.values()),
            "open_deals": sum(counts.get(s, 0) for s in ACTIVE_STATES),
            "deals_by_status": counts,
            "volume": sum(int(r["price"]) for r in finalized),
            "volume_24h": sum(int(r["price"]) for r in finalized if int(r["finalized_at"]) > now - 24 * 3600),
            "slashes": len(slashes),
            "slashed_amount": sum(int(s["amount"]) for s in slashes),
            "vwap_1h": prices["vwap"]["1h"],
            "vwap_24h": prices["vwap"]["24h"],
            "last_price": prices["last"],
        }


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" for _ in values)


def _exact(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}"


def _deal_summary(d: dict[str, Any]) -> dict[str, Any]:
    per_unit = to_float(Fraction(d["price"], d["units"])) if d.get("units") else None
    return d | {"per_unit": per_unit, "audited": None if d["audited"] is None else bool(d["audited"]),
                "flagged": bool(d["flagged"])}


def _timeline(d: dict[str, Any], audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"step": "opened", "block": d["opened_block"], "at": d["opened_at"],
                                    "tx": d["opened_tx"], "note": f"by the {d['opened_by']}"}]
    if d["committed_block"] is not None:
        steps.append({"step": "committed", "block": d["committed_block"], "at": d["committed_at"],
                      "tx": d["commit_tx"], "note": f"seal {d['seal']}"})
    for a in audit:
        if a["kind"] in ("drawn", "auditor_drawn", "missed", "resolved"):
            note = {"drawn": lambda x: ("audited" if x["detail"]["audited"] else "cleared")
                    + f" ({x['detail']['reason']})",
                    "auditor_drawn": lambda x: f"auditor {x['party']} (seat {x['detail']['seat']})",
                    "missed": lambda x: f"auditor {x['party']} missed (penalty {x['amount']})",
                    "resolved": lambda x: f"audit {x['detail']['outcome']}"}[a["kind"]](a)
            steps.append({"step": a["kind"].replace("_", " "), "block": a["block"], "at": a["at"],
                          "tx": a["tx_hash"], "note": note})
    if d["finalized_block"] is not None:
        steps.append({"step": "finalized", "block": d["finalized_block"], "at": d["finalized_at"],
                      "tx": d["finalized_tx"], "note": "settled: the provider earns the price"})
    if d["reclaimed_block"] is not None:
        steps.append({"step": "reclaimed", "block": d["reclaimed_block"], "at": d["reclaimed_at"],
                      "tx": d["reclaimed_tx"],
                      "note": f"missed: refund {d['refund']} base units to the requester, penalty {d['penalty']} burned"})
    return steps
