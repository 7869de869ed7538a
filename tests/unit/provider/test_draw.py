"""The audit lottery at the provider (docs/SPEC.md §14.3): the requester's seed, ``draw`` once the
beacon is mined, ``audit_by_default`` when no seed came, and finalizing only drawn deals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from provider_kit import AUDIT_FEE, DEPOSIT, INPUT, SEED, WORKLOAD, Harness, accept_msg, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN
from mercato.provider.store import _SCHEMA, Store
from mercato.verification.lottery import is_audited, lottery_value

pytestmark = pytest.mark.anyio


async def _committed(h: Harness, requester: FakeMarket, **kw: object) -> str:
    bid = await h.bid(requester, **kw)
    await h.upload(WORKLOAD, INPUT)
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")
    return str(bid["deal_id"])


def _expected(h: Harness, deal_id: str) -> int:
    """The lottery's verdict for ``deal_id``, computed with the verification library."""
    rec = h.agent.store.get(deal_id)
    beacon = h.ledger.beacon(rec.committed_block + h.ledger.beacon_delay)
    r = lottery_value(SEED, beacon, bytes.fromhex(deal_id[2:]))
    return AUDITED if is_audited(r, rec.terms_obj.audit_bps) else CLEARED


def _drawn_events(events, deal_id: str) -> list:
    return [ev for ev in events.log if ev.name == "DealDrawn" and ev.args["deal_id"] == bytes.fromhex(deal_id[2:])]


async def test_seed_endpoint_keeps_only_the_committed_seed(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    deal = (await h.bid(requester))["deal_id"]
    wrong = await h.reveal(deal, b"\x00" * 32)
    assert wrong.status_code == 422 and "seed_hash" in wrong.json()["detail"]
    for bad in ("0xzz", "0x1234", "", "0x" + SEED.hex() + "00"):
        r = await h.client.post(f"/v1/deals/{deal}/seed", json={"seed": bad})
        assert r.status_code == 422, bad
    assert (await h.client.post(f"/v1/deals/{deal}/seed", json={})).status_code == 422
    assert h.agent.store.get(deal).seed is None  # nothing kept from the refused ones
    ok = await h.reveal(deal)
    assert ok.status_code == 200 and ok.json()["deal_id"] == deal
    assert h.agent.store.get(deal).seed == "0x" + SEED.hex()
    assert (await h.client.post(f"/v1/deals/{deal}/seed", json={"seed": SEED.hex()})).status_code == 200  # bare hex
    assert (await h.reveal("0x" + "00" * 32)).status_code == 404
    assert "/v1/deals/{deal_id}/seed" in (await h.client.get("/openapi.json")).json()["paths"]


async def test_no_draw_before_the_beacon_nor_without_the_seed(make_agent, requester: FakeMarket, events,
                                                              ledger: FakeLedger) -> None:
    h: Harness = await make_agent(housekeeping_interval_s=60)  # we run the settler's rounds ourselves
    deal = await _committed(h, requester)
    settle = h.agent.settler.run_once
    committed_block = h.agent.store.get(deal).committed_block
    assert committed_block is not None and committed_block == ledger.block
    ledger.advance(ledger.challenge_window, blocks=ledger.beacon_delay + 5)  # past the beacon and the window
    await settle()
    rec = h.agent.store.get(deal)
    assert (rec.state, rec.status) == ("committed", UNDRAWN)  # no seed: no draw, and no payment
    assert not _drawn_events(events, deal)
    # with the seed, the draw waits for the block after the beacon block
    h2: Harness = await make_agent(data_dir=h.agent.cfg.data_dir.parent / "two", key=_key("provider2"),
                                   housekeeping_interval_s=60)
    other = await _committed(h2, requester)
    assert (await h2.reveal(other)).status_code == 200
    cb = h2.agent.store.get(other).committed_block
    ledger.advance(0, blocks=cb + ledger.beacon_delay - 1 - ledger.block)  # the next block is the beacon's
    await h2.agent.settler.run_once()
    assert h2.agent.store.get(other).status == UNDRAWN and not _drawn_events(events, other)
    ledger.advance(0)
    await h2.agent.settler.run_once()
    (drawn,) = _drawn_events(events, other)
    assert drawn.block == cb + ledger.beacon_delay + 1 and drawn.args["reason"] == 0
    assert h2.agent.store.get(other).status == _expected(h2, other)
    assert drawn.args["audited"] == (_expected(h2, other) == AUDITED)


def _key(name: str) -> str:
    from provider_kit import KEYS

    return KEYS[name]


async def test_deals_are_drawn_in_one_batch(make_agent, requester: FakeMarket, events, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=3, housekeeping_interval_s=60)
    deals = [await _committed(h, requester) for _ in range(3)]
    for deal in deals[:2]:
        assert (await h.reveal(deal)).status_code == 200
    h.past_beacon(deals[-1])
    await h.agent.settler.run_once()
    drawn = [_drawn_events(events, d) for d in deals]
    assert len(drawn[0]) == len(drawn[1]) == 1 and drawn[2] == []  # the third never got its seed
    assert drawn[0][0].block == drawn[1][0].block  # one transaction
    assert [h.agent.store.get(d).status for d in deals[:2]] == [_expected(h, d) for d in deals[:2]]
    assert h.agent.store.get(deals[2]).status == UNDRAWN


async def test_cleared_deal_is_finalized_and_the_fee_goes_back(make_agent, requester: FakeMarket,
                                                               ledger: FakeLedger) -> None:
    h: Harness = await make_agent(housekeeping_interval_s=60)
    deal = await _committed(h, requester)
    price = terms_of({"terms": (await h.client.get(f"/v1/deals/{deal}")).json()["terms"]}).price
    assert requester.balance_of() == DEPOSIT - price - AUDIT_FEE
    assert _expected(h, deal) == CLEARED  # the fake's beacon is deterministic: this seed clears this deal
    assert (await h.reveal(deal)).status_code == 200
    ledger.advance(ledger.challenge_window, blocks=ledger.beacon_delay)
    await h.agent.settler.run_once()  # draws, then finalizes in the same round
    rec = h.agent.store.get(deal)
    assert (rec.state, rec.status) == ("finalized", CLEARED)
    assert requester.balance_of() == DEPOSIT - price  # the audit fee came back
    assert h.provider.reputation().completed == 1 and h.agent.store.busy_lanes(2) == 0


async def test_drawn_deal_waits_for_the_challenge_window(make_agent, requester: FakeMarket,
                                                         ledger: FakeLedger) -> None:
    h: Harness = await make_agent(housekeeping_interval_s=60)
    deal = await _committed(h, requester)
    assert (await h.reveal(deal)).status_code == 200
    h.past_beacon(deal)
    await h.agent.settler.run_once()
    rec = h.agent.store.get(deal)
    assert rec.status != UNDRAWN and rec.state == "committed"
    ledger.advance(ledger.challenge_window)
    await h.agent.settler.run_once()
    assert h.agent.store.get(deal).state == "finalized"


async def test_always_audited_deal_passes_in_the_fake_and_is_paid(make_agent, requester: FakeMarket,
                                                                  ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    deal = await _committed(h, requester, audit_bps=10_000)
    assert (await h.reveal(deal)).status_code == 200
    h.past_beacon(deal)
    await until(lambda: h.agent.store.get(deal).status == AUDITED)
    ledger.advance(ledger.challenge_window)
    await until(lambda: h.agent.store.get(deal).state == "finalized")


async def test_withheld_seed_is_audited_by_default_after_the_draw_window(make_agent, requester: FakeMarket,
                                                                         events, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(housekeeping_interval_s=60)
    deal = await _committed(h, requester)
    cb = h.agent.store.get(deal).committed_block
    last = cb + ledger.beacon_delay + ledger.draw_blocks
    ledger.advance(ledger.challenge_window, blocks=last - 1 - ledger.block)  # the next block is the window's last
    await h.agent.settler.run_once()
    assert h.agent.store.get(deal).status == UNDRAWN and not _drawn_events(events, deal)
    ledger.advance(0)
    await h.agent.settler.run_once()
    (ev,) = _drawn_events(events, deal)
    assert ev.args["audited"] and ev.args["reason"] == 1
    assert h.agent.store.get(deal).status == AUDITED
    await h.agent.settler.run_once()  # the fake's audit passed: the deal is paid
    assert h.agent.store.get(deal).state == "finalized"


async def test_a_late_seed_is_not_drawn_after_the_window(make_agent, requester: FakeMarket, events,
                                                         ledger: FakeLedger) -> None:
    h: Harness = await make_agent(housekeeping_interval_s=60)
    deal = await _committed(h, requester)
    cb = h.agent.store.get(deal).committed_block
    ledger.advance(0, blocks=cb + ledger.beacon_delay + ledger.draw_blocks - ledger.block)
    assert (await h.reveal(deal)).status_code == 200
    await h.agent.settler.run_once()
    (ev,) = _drawn_events(events, deal)  # no failed draw first: straight to the default audit
    assert ev.args["reason"] == 1 and h.agent.store.get(deal).status == AUDITED


def test_an_old_database_gains_the_lottery_columns(tmp_path: Path) -> None:
    old = _SCHEMA
    for column in ("    committed_block INTEGER,\n", "    status INTEGER NOT NULL DEFAULT 0,\n", "    seed TEXT,\n"):
        assert column in old
        old = old.replace(column, "")
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(old)
    db.close()
    store = Store(path)
    try:
        columns = {row[1] for row in store._db.execute("PRAGMA table_info(deals)").fetchall()}
        assert {"committed_block", "status", "seed"} <= columns
    finally:
        store.close()
    Store(path).close()  # and again: nothing left to add
