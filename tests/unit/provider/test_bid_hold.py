"""Bids that do not clog: an unaccepted bid holds its lane for ``bid_hold_s`` at most; a late
answer (its requester hung up) holds nothing; the safety nets for a released bid that is opened
or accepted after all keep working."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from provider_kit import INPUT, KEYS, WORKLOAD, DEPOSIT, Harness, accept_msg, make_rfq, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.wire import request_auth_headers
from mercato.errors import ConfigError
from mercato.provider import ProviderConfig
from mercato.provider.store import HELD_OUT, LANE_TAKEN, RELEASED_CLOSED, UNSENT

pytestmark = pytest.mark.anyio
HOLD = 0.2  # seconds


@pytest.fixture
def requester2(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["requester2"])
    m.deposit(DEPOSIT)
    return m


async def _code(h: Harness, requester: FakeMarket) -> str | None:
    r = await h.client_for(requester).post("/v1/rfq", json=make_rfq(h.provider, requester.address).model_dump())
    decline = r.json()["decline"]
    return None if decline is None else str(decline["code"])


def _held_out(h: Harness, deal_id: str) -> bool:
    rec = h.agent.store.get(deal_id)
    return rec is not None and rec.state == "expired" and rec.error == HELD_OUT


async def test_an_unaccepted_bid_frees_its_lane_when_its_hold_is_over(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1, bid_hold_s=HOLD)
    first = await h.bid(requester)  # accept window 60 s: without the hold, the lane would be held a minute
    assert await _code(h, requester) == "capacity"
    await until(lambda: _held_out(h, first["deal_id"]))
    assert h.agent.store.busy_lanes(1) == 0 and h.agent.metrics.held_out._value.get() == 1
    second = await h.bid(requester)
    assert (second["terms"]["lane"], second["terms"]["nonce"]) == (0, 2)  # the old bid can no longer take the lane
    assert (await h.client.get(f"/v1/deals/{first['deal_id']}")).json()["error"] == HELD_OUT
    # the requester's release after the hold is a no-op that still answers 200
    assert (await h.client.delete(f"/v1/bids/{first['deal_id']}")).status_code == 200
    assert h.agent.metrics.released._value.get() == 0


async def test_an_accepted_bid_keeps_its_lane_past_the_hold(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1, bid_hold_s=HOLD)
    bid = await h.bid(requester)
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200
    await asyncio.sleep(2 * HOLD)  # past the hold
    await h.upload(WORKLOAD, INPUT)
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")
    assert h.agent.metrics.held_out._value.get() == 0 and h.agent.store.busy_lanes(1) == 1


async def test_a_late_acceptance_takes_the_bid_while_its_lane_is_unused(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1, bid_hold_s=HOLD)
    bid = await h.bid(requester)
    await until(lambda: _held_out(h, bid["deal_id"]))
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "accepted" and r.json()["error"] is None
    assert h.agent.store.lanes(1)[0][2] == bid["deal_id"]
    await h.upload(WORKLOAD, INPUT)
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")


async def test_a_late_acceptance_is_refused_once_another_bid_had_the_lane(make_agent, requester: FakeMarket,
                                                                          requester2: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1, bid_hold_s=HOLD)
    old = await h.bid(requester)
    await until(lambda: _held_out(h, old["deal_id"]))
    new = await h.bid(requester2)  # the lane's next nonce
    assert (await h.client_for(requester2).delete(f"/v1/bids/{new['deal_id']}")).status_code == 200
    r = await h.client.post(f"/v1/deals/{old['deal_id']}/accept", json=accept_msg(requester, old).model_dump())
    assert r.status_code == 409
    assert "nothing was charged; send a new RFQ" in r.json()["detail"]
    assert _held_out(h, old["deal_id"]) and h.agent.store.busy_lanes(1) == 0


async def test_a_held_out_bid_opened_anyway_is_adopted_and_the_newer_bid_fails(
        make_agent, requester: FakeMarket, requester2: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1, bid_hold_s=HOLD)
    old = await h.bid(requester)
    await until(lambda: _held_out(h, old["deal_id"]))
    new = await h.bid(requester2)
    r = await h.client_for(requester2).post(f"/v1/deals/{new['deal_id']}/accept",
                                           json=accept_msg(requester2, new).model_dump())
    assert r.status_code == 200
    requester.open_deal(terms_of(old), bytes.fromhex(old["signature"][2:]))  # valid on-chain until its expiry
    await until(lambda: h.agent.store.get(old["deal_id"]).state == "accepted")
    assert h.agent.store.get(new["deal_id"]).error == LANE_TAKEN
    await h.upload(WORKLOAD, INPUT)
    await until(lambda: h.agent.store.get(old["deal_id"]).state == "committed")


async def test_a_held_out_bid_never_opened_is_closed_after_its_expiry(make_agent, requester: FakeMarket,
                                                                      ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=1, bid_hold_s=HOLD)
    old = await h.bid(requester, accept_window_s=5)
    await until(lambda: _held_out(h, old["deal_id"]))
    ledger.advance(6)
    await until(lambda: h.agent.store.get(old["deal_id"]).error == RELEASED_CLOSED)


async def test_a_restart_keeps_what_is_left_of_each_hold(make_agent, requester: FakeMarket, tmp_path: Path) -> None:
    first: Harness = await make_agent(data_dir=tmp_path / "a", lanes=1, bid_hold_s=HOLD)
    bid = await first.bid(requester)
    await first.agent.stop()  # the hold's timer dies with the process
    second: Harness = await make_agent(data_dir=tmp_path / "a", lanes=1, bid_hold_s=HOLD)
    await until(lambda: _held_out(second, bid["deal_id"]))
    assert second.agent.store.busy_lanes(1) == 0


async def test_a_late_answer_holds_nothing(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1)
    body = make_rfq(h.provider, requester.address).model_dump_json().encode()
    signed = request_auth_headers(requester.sign_text, requester.address, "POST", "/v1/rfq", body, int(time.time()))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in signed.items())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/rfq", "raw_path": b"/v1/rfq", "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("provider", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:  # the body, then the requester hangs up (its bid window closed)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await h.app(scope, receive, send)
    assert sent[0]["status"] == 200
    (rec,) = h.agent.store.in_states("expired")
    assert rec.error == UNSENT and h.agent.store.busy_lanes(1) == 0
    assert h.agent.metrics.unsent._value.get() == 1
    waited = await h.bid(requester)  # the lane bids again at once; an answer its requester waits for stays a bid
    assert h.agent.store.get(waited["deal_id"]).state == "bid"


@pytest.mark.parametrize("hold", [0, -1, 3601, "5", True])
def test_bid_hold_must_be_a_sensible_number_of_seconds(hold: object) -> None:
    with pytest.raises(ConfigError, match="bid_hold_s must be a number of seconds"):
        ProviderConfig(bid_hold_s=hold)  # type: ignore[arg-type]


def test_bid_hold_defaults_to_a_few_seconds_and_reads_from_toml(tmp_path: Path) -> None:
    assert ProviderConfig().bid_hold_s == 5.0
    path = tmp_path / "p.toml"
    path.write_text("[provider]\nbid_hold_s = 2.5\n")
    assert ProviderConfig.load(path).bid_hold_s == 2.5
