"""Derived tables from events (no chain): lifecycle, slash linking, audit counters, idempotence,
and the JSON API over them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mercato.explorer.api import create_app
from mercato.explorer.errors import IndexMismatch
from mercato.explorer.indexer import ZERO32, apply_event
from mercato.explorer.store import Store
from mercato.explorer.views import Views
from mercato.verification.lottery import claim_of

P, Q, A, R = ("0x" + c * 40 for c in "ABCD")  # two providers, an auditor, a requester
D1, D2, D3 = ("0x" + c * 64 for c in "123")
ROOT_OK, ROOT_BAD = b"\x0a" * 32, b"\x0b" * 32


class Chain:
    """Feeds events in order, one transaction per call."""

    def __init__(self, store: Store) -> None:
        self.store, self.block, self.tx = store, 10, 0

    def emit(self, *events: tuple[str, dict[str, Any]], at: int | None = None) -> None:
        self.block += 1
        self.tx += 1
        with self.store.transaction() as db:
            for i, (name, args) in enumerate(events):
                ev = {"name": name, "block": self.block, "log_index": i, "tx_hash": f"0x{self.tx:064x}",
                      "at": at or 1_000 + self.block, "args": args}
                cur = db.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                                 (ev["block"], i, ev["tx_hash"], name, json.dumps(args), ev["at"]))
                if cur.rowcount:
                    apply_event(db, ev)
            db.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)", (self.block, "0x" + "0" * 64, at or 1_000 + self.block))


def opened(deal: str, provider: str, price: int, seal: str = ZERO32, jobs: int = 1) -> tuple[str, dict[str, Any]]:
    return ("DealOpened", {"deal_id": deal, "requester": R, "provider": provider, "lane": 0, "nonce": 1,
                           "jobs_root": "0x" + "ee" * 32, "jobs": jobs, "price": price, "collateral": 10 * price,
                           "deadline": 5_000, "expiry": 4_000, "seed_hash": "0x" + "5d" * 32, "audit_bps": 300,
                           "audit_fee": 7, "seal": seal})


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    store = Store(tmp_path / "x.sqlite")
    store.bind(31337, "0x" + "99" * 20, 0)
    c = Chain(store)
    for p in (P, Q, A):
        c.emit(("ProviderRegistered", {"provider": p, "endpoint": f"http://{p[2:6]}", "resources": "0x" + "00" * 32,
                                       "enc_key": "0x" + "00" * 32}),
               ("Staked", {"provider": p, "amount": 10**30, "stake": 10**30}))  # past SQLite's int64
    return c


def test_a_history_makes_the_tables(chain: Chain) -> None:
    seal = "0x" + "5e" * 32
    chain.emit(opened(D1, P, 500, seal=seal, jobs=2))  # open_and_commit
    chain.emit(("DealDrawn", {"deal_id": D1, "audited": False, "reason": 0}))
    chain.emit(("DealFinalized", {"deal_id": D1}))
    chain.emit(opened(D2, Q, 300))
    chain.emit(("ProviderSlashed", {"provider": Q, "to": R, "amount": 1_500}),
               ("DealReclaimed", {"deal_id": D2, "requester": R, "provider": Q, "refund": 307, "penalty": 1_500}))
    # a cheater caught in a dispute: P reveals a wrong root, the auditor the right one
    chain.emit(opened(D3, P, 200, seal=seal))
    chain.emit(("DealDrawn", {"deal_id": D3, "audited": True, "reason": 2}),
               ("AuditorDrawn", {"deal_id": D3, "auditor": A, "seat": 0, "deadline": 9_999}))
    chain.emit(("ClaimRevealed", {"deal_id": D3, "executor": A, "result_root": "0x" + ROOT_OK.hex(), "fuel": 5}))
    chain.emit(("ClaimRevealed", {"deal_id": D3, "executor": P, "result_root": "0x" + ROOT_BAD.hex(), "fuel": 5}))
    winner = "0x" + claim_of(ROOT_OK, 5).hex()
    chain.emit(("StakeForfeited", {"provider": P, "amount": 10**30}),
               ("BountyPaid", {"deal_id": D3, "to": A, "amount": 7}),
               ("AuditResolved", {"deal_id": D3, "outcome": 4, "claim": winner}))

    views = Views(chain.store, half_life_s=None)
    rows = {p["address"]: p for p in views.providers()}
    assert (rows[P]["completed"], rows[P]["volume"], rows[P]["audits_failed"], rows[P]["disputes_lost"]) == (2, 500, 1, 1)
    assert rows[P]["jailed"] and rows[P]["stake"] == 0 and rows[P]["slashed"] == 1
    assert (rows[Q]["missed"], rows[Q]["slashed"], rows[Q]["stake"]) == (1, 1, 10**30 - 1_500)
    assert rows[A]["audits_done"] == 1
    assert rows[P]["score"] == rows[P]["chain_score"]  # no decay: the same evidence
    assert rows[P]["chain_score_exact"] == "1/12"  # (2 + 1) / (2 + 16 * (1 + 1) + 2) = 3/36
    assert [d["status"] for d in views.deals()] == ["failed", "reclaimed", "finalized"]
    slashes = {(s["kind"], s["deal_id"], s["amount"]) for s in views.slashes()}
    assert slashes == {("miss_penalty", D2, 1_500), ("forfeit", D3, 10**30)}
    d3 = views.deal(D3)
    assert d3 is not None and d3["audit_outcome"] == 4 and len(d3["results"]) == 2
    assert [s["step"] for s in d3["timeline"]] == ["opened", "committed", "drawn", "auditor drawn", "resolved"]
    o = views.overview()
    assert (o["deals"], o["open_deals"], o["volume"], o["slashes"]) == (3, 0, 500, 2)


def test_replaying_events_changes_nothing(chain: Chain) -> None:
    chain.emit(opened(D1, P, 500, seal="0x" + "5e" * 32))
    chain.emit(("DealFinalized", {"deal_id": D1}))
    before = Views(chain.store).providers()
    chain.block -= 2  # the same blocks and log indexes again
    chain.tx -= 2
    chain.emit(opened(D1, P, 500, seal="0x" + "5e" * 32))
    chain.emit(("DealFinalized", {"deal_id": D1}))
    assert Views(chain.store).providers() == before
    assert chain.store.count("deals") == 1


def test_a_database_of_another_market_is_refused(chain: Chain) -> None:
    with pytest.raises(IndexMismatch):
        chain.store.bind(31337, "0x" + "98" * 20, 0)
    with pytest.raises(IndexMismatch):
        chain.store.bind(1, "0x" + "99" * 20, 0)


def test_the_api_serves_the_views_with_an_openapi_schema(chain: Chain) -> None:
    chain.emit(opened(D1, P, 500, seal="0x" + "5e" * 32))
    chain.emit(("DealFinalized", {"deal_id": D1}))
    with chain.store.transaction() as db:
        db.execute("UPDATE deals SET units = 5, unit = 'cu', fuel = '4200000000', units_source = 'chain'")
    status = {"chain_id": 31337, "market": "0x" + "99" * 20, "rpc_url": "", "head": 20, "indexed_block": 20,
              "confirmations": 0, "last_error": None, "last_sync": None}
    client = TestClient(create_app(Views(chain.store), status=lambda: status))
    assert client.get("/api/overview").json()["volume"] == 500
    prices = client.get("/api/prices").json()
    assert prices["vwap"]["24h"] == 100.0 and prices["vwap_exact"]["1h"] == "100/1"
    assert client.get("/api/prices?unit=vcpu_s").json()["points"] == []
    chain.emit(opened(D2, Q, 900, seal="0x" + "5e" * 32))
    chain.emit(("DealFinalized", {"deal_id": D2}))
    with chain.store.transaction() as db:  # a container deal: billed by vCPU-seconds
        db.execute("UPDATE deals SET units = 30, unit = 'vcpu_s', fuel = '0', units_source = 'receipt' "
                   "WHERE deal_id = ?", (D2,))
    boxes = client.get("/api/prices?unit=vcpu_s").json()
    assert [(p["deal_id"], p["per_unit"]) for p in boxes["points"]] == [(D2, 30.0)]
    assert client.get("/api/prices").json()["vwap_exact"]["24h"] == "100/1"  # the CU index is unchanged
    assert client.get("/api/prices?unit=gpu").status_code == 422
    assert client.get(f"/api/deals/{D1}").json()["timeline"][-1]["step"] == "finalized"
    assert client.get("/api/deals/0x" + "00" * 32).status_code == 404
    fin_tx = client.get(f"/api/deals/{D1}").json()["finalized_tx"]
    assert [e["name"] for e in client.get(f"/api/tx/{fin_tx}").json()["events"]] == ["DealFinalized"]
    assert client.get("/api/tx/0x" + "00" * 32).status_code == 404
    provs = client.get("/api/providers").json()
    assert {p["address"] for p in provs} == {P, Q, A} and provs[0]["stake"] == 10**30
    schema = client.get("/openapi.json").json()
    assert {"/api/overview", "/api/providers", "/api/deals", "/api/deals/{deal_id}", "/api/slashes",
            "/api/prices", "/api/status"} <= set(schema["paths"])
    assert "DealDetail" in schema["components"]["schemas"]
    page = client.get("/")
    assert page.status_code == 200 and "Mercato explorer" in page.text
    assert client.get("/static/app.js").status_code == 200
