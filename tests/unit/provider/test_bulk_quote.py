"""Batch deals and bulk quotes at the provider: a batch is priced by all its tasks' CUs and run
task by task, ``POST /v1/rfq/bulk`` answers a signed unit price and capacity, and an RFQ naming
a live quote is priced by it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from provider_kit import INPUT, KEYS, WORKLOAD, Harness, accept_msg, make_rfq, make_spec, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.batch import Task, split_outputs
from mercato.domain.deals import job_leaf
from mercato.domain.jobs import JobSpec
from mercato.domain.wire import (
    BulkAnswer,
    BulkRfq,
    DealStatusMsg,
    RfqAnswer,
    TermsMsg,
    bulk_quote_message,
    new_id,
)
from mercato.errors import ConfigError
from mercato.provider import ProviderConfig
from mercato.requester import _verify

pytestmark = pytest.mark.anyio

OTHER_REQUESTER = Account.from_key(KEYS["requester2"]).address


def _batch(n: int, fuel: int = 2 * 10**9) -> JobSpec:
    return make_spec(fuel=fuel).with_tasks(Task(args=(f"task-{i}",)) for i in range(n))


def _bulk_rfq(h: Harness, requester: str, spec: JobSpec | None = None, **kw: Any) -> BulkRfq:
    spec = spec or make_spec()
    values: dict[str, Any] = dict(rfq_id=new_id(), requester=requester, chain_id=h.provider.chain_id,
                                  market=h.provider.market, spec=spec.to_json(), spec_hash=spec.spec_hash(),
                                  tasks=10, max_price_per_cu=10**6, deadline_s=600)
    return BulkRfq(**(values | kw))


async def _bulk(h: Harness, requester: str, **kw: Any) -> BulkAnswer:
    r = await h.client.post("/v1/rfq/bulk", json=_bulk_rfq(h, requester, **kw).model_dump())
    assert r.status_code == 200, r.text
    return BulkAnswer.model_validate(r.json())


async def _answer(h: Harness, requester: str, **kw: Any) -> RfqAnswer:
    r = await h.client_of(requester).post("/v1/rfq", json=make_rfq(h.provider, requester, **kw).model_dump())
    assert r.status_code == 200, r.text
    return RfqAnswer.model_validate(r.json())


# batch RFQs --------------------------------------------------------------------------------------
async def test_a_batch_is_priced_by_the_cus_of_all_its_tasks(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    spec = _batch(3, fuel=3 * 10**9 + 1)  # 4 CU per task after rounding up
    bid = await h.bid(requester, spec=spec)
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    assert (bid["price_per_cu"], terms.price, terms.collateral) == (1000, 3 * 4 * 1000, 19 * 12_000)
    assert terms.jobs_root == job_leaf(bytes.fromhex(spec.spec_hash()[7:]), 12_000, 19 * 12_000)
    low = await _answer(h, requester.address, spec=spec, max_price=17_999)  # 1500 per CU, one lane busy
    assert low.decline is not None and low.decline.code == "price"
    assert "3 tasks × 4 CU" in low.decline.reason and "at least 18000" in low.decline.reason


async def test_a_batch_over_max_tasks_per_deal_is_declined(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(max_tasks_per_deal=2)
    answer = await _answer(h, requester.address, spec=_batch(3))
    assert answer.decline is not None and answer.decline.code == "limits"
    assert "3 tasks" in answer.decline.reason and "at most 2" in answer.decline.reason
    assert (await _answer(h, requester.address, spec=_batch(2))).bid is not None


async def test_each_task_is_held_to_the_limits(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(max_fuel=5 * 10**9)
    assert (await _answer(h, requester.address, spec=_batch(4, fuel=5 * 10**9))).bid is not None  # 20 CU in all
    over = await _answer(h, requester.address, spec=_batch(2, fuel=5 * 10**9 + 1))
    assert over.decline is not None and over.decline.code == "limits"


@pytest.mark.parametrize(("value", "ok"), [(1, True), (1024, True), (0, False), (1025, False), (True, False)])
def test_max_tasks_per_deal_is_checked(tmp_path, value: object, ok: bool) -> None:
    if ok:
        assert ProviderConfig(data_dir=tmp_path, max_tasks_per_deal=value).max_tasks_per_deal == value
    else:
        with pytest.raises(ConfigError, match="max_tasks_per_deal"):
            ProviderConfig(data_dir=tmp_path, max_tasks_per_deal=value)


def test_batch_settings_load_from_toml_sections() -> None:
    cfg = ProviderConfig.from_dict({"limits": {"max_tasks_per_deal": 8}, "intervals": {"bulk_quote_ttl_s": 30}})
    assert (cfg.max_tasks_per_deal, cfg.bulk_quote_ttl_s) == (8, 30)
    assert (ProviderConfig().max_tasks_per_deal, ProviderConfig().bulk_quote_ttl_s) == (256, 120)
    with pytest.raises(ConfigError, match="bulk_quote_ttl_s"):
        ProviderConfig(bulk_quote_ttl_s=0)


# bulk quotes ------------------------------------------------------------------------------------
async def test_a_bulk_quote_is_priced_at_the_load_it_offers_and_signed(
        make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=4, bulk_quote_ttl_s=90)
    answer = await _bulk(h, requester.address, tasks=100)
    quote = answer.quote
    assert quote is not None and answer.decline is None
    assert (quote.provider, quote.capacity, quote.max_tasks_per_deal) == (h.provider.address, 4, 256)
    assert quote.price_per_cu == 2000  # floor × (1 + 1 × 4/4): as if every lane it offers were busy
    assert quote.expiry == ledger.time + 90
    signer = Account.recover_message(encode_defunct(text=bulk_quote_message(quote)),
                                     signature=bytes.fromhex(quote.signature.removeprefix("0x")))
    assert signer == h.provider.address
    few = (await _bulk(h, requester.address, tasks=1)).quote  # one task needs one lane
    assert few is not None and (few.capacity, few.price_per_cu) == (1, 1250)
    await h.bid(requester)  # one lane busy now
    busy = (await _bulk(h, requester.address, tasks=100)).quote
    assert busy is not None and (busy.capacity, busy.price_per_cu) == (3, 2000)
    text = (await h.client.get("/metrics")).text
    assert "mercato_provider_bulk_quotes_total 3.0" in text
    paths = (await h.client.get("/openapi.json")).json()["paths"]
    assert "/v1/rfq/bulk" in paths


async def test_a_bulk_quote_over_max_price_per_cu_is_declined(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=2)
    answer = await _bulk(h, requester.address, max_price_per_cu=1999)
    assert answer.quote is None and answer.decline is not None and answer.decline.code == "price"
    assert "2000 per CU" in answer.decline.reason
    assert h.agent.bidder.live_quotes == {}
    assert (await _bulk(h, requester.address, max_price_per_cu=2000)).quote is not None


async def test_no_free_lane_no_bulk_quote(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1)
    await h.bid(requester)
    answer = await _bulk(h, requester.address)
    assert answer.decline is not None and answer.decline.code == "capacity"


@pytest.mark.parametrize(("change", "code"), [
    ({"spec": _batch(2)}, "spec"),
    ({"spec_hash": "sha256:" + "00" * 32}, "spec"),
    ({"chain_id": 1}, "chain"),
    ({"spec": make_spec(fuel=10**15)}, "limits"),
    ({"spec": make_spec(memory_bytes=1 << 40)}, "limits"),
])
async def test_bulk_quote_declines(make_agent, requester: FakeMarket, change: dict, code: str) -> None:
    h: Harness = await make_agent()
    answer = await _bulk(h, requester.address, **change)
    assert answer.decline is not None and answer.decline.code == code, answer
    assert answer.decline.reason


async def test_an_rfq_naming_a_live_quote_is_priced_by_it(make_agent, requester: FakeMarket,
                                                          ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=8, bulk_quote_ttl_s=100)
    quote = (await _bulk(h, requester.address, tasks=2)).quote
    assert quote is not None and quote.price_per_cu == 1250
    h.agent.bidder.strategy = lambda _rfq, _u: 5000  # the provider got dearer since
    spec = _batch(3)  # 2 CU per task

    async def price_per_cu(**kw: Any) -> int:
        answer = await _answer(h, kw.pop("requester", requester.address), spec=kw.pop("spec", spec), **kw)
        assert answer.bid is not None, answer
        assert answer.bid.terms.price == answer.bid.price_per_cu * spec.cu_cap()
        return answer.bid.price_per_cu

    assert await price_per_cu(quote_id=quote.quote_id) == 1250
    assert await price_per_cu() == 5000
    assert await price_per_cu(quote_id=new_id()) == 5000  # unknown: ignored
    ledger.client(KEYS["requester2"]).deposit(10**9)  # bids need the requester's escrow to cover them
    assert await price_per_cu(quote_id=quote.quote_id, requester=OTHER_REQUESTER) == 5000  # not theirs
    other = JobSpec(runtime="wasm", workload="sha256:" + "ee" * 32, limits=spec.limits, tasks=(Task(),))
    answer = await _answer(h, requester.address, spec=other, quote_id=quote.quote_id)
    assert answer.bid is not None and answer.bid.price_per_cu == 5000  # another workload
    h.agent.bidder.strategy = lambda _rfq, _u: 1000  # cheaper than the quote: the lower price
    assert await price_per_cu(quote_id=quote.quote_id) == 1000
    h.agent.bidder.strategy = lambda _rfq, _u: 5000
    ledger.advance(101)  # expired
    assert await price_per_cu(quote_id=quote.quote_id) == 5000
    assert quote.quote_id not in h.agent.bidder.live_quotes


# a batch deal end to end ------------------------------------------------------------------------
async def test_a_batch_deal_runs_each_task_and_verifies_as_one_result(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    spec = _batch(3)
    bid = await h.bid(requester, spec=spec)
    deal = bid["deal_id"]
    await h.upload(WORKLOAD, INPUT)
    r = await h.client.post(f"/v1/deals/{deal}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    await until(lambda: h.agent.store.get(deal).state == "committed")
    assert h.runtime.calls == [spec.task(i) for i in range(3)]  # each task alone, its own seed
    assert len({c.seed for c in h.runtime.calls}) == 3

    st = (await h.client.get(f"/v1/deals/{deal}")).json()
    receipt = st["receipt"]
    assert (receipt["outcome"], receipt["exit_code"], receipt["stdout"]) == ("ok", 0, "")
    assert "tasks/00002/out/pi.txt" in [o["path"] for o in receipt["outputs"]]
    got = await h.client.get(f"/v1/deals/{deal}/outputs/tasks/00002/out/pi.txt")  # a nested path
    assert (got.status_code, got.content) == (200, b"3.14\n")

    status = DealStatusMsg.model_validate(st)
    download = await _verify.download(h.client, "http://provider", status, _verify.download_caps(spec))
    root = _verify.verify(download, salt=bytes.fromhex(st["salt"][2:]), onchain_seal=bytes.fromhex(st["seal"][2:]),
                          provider=h.provider.address, deal_id=deal)
    assert root == receipt["result_root"]
    tasks = split_outputs(download.outputs, 3)
    assert [t.outputs for t in tasks] == [{"pi.txt": b"3.14\n"}] * 3
    assert [t.stdout for t in tasks] == [b"pi=3.14\n\xff raw"] * 3
    assert receipt["fuel_used"] == sum(t.fuel_used for t in tasks)

    # an auditor drawn for the deal re-runs the batch the same way and gets the same root
    audit = await asyncio.to_thread(h.agent.auditor._sandbox, deal, spec)
    assert (audit.result_root, audit.fuel_used) == (receipt["result_root"], receipt["fuel_used"])


def test_download_caps_are_batch_aware() -> None:
    plain = make_spec(output_bytes=1000, stdout_bytes=100)
    assert _verify.download_caps(plain) == (100, 1000)
    batch = plain.with_tasks([Task(), Task()])
    assert _verify.download_caps(batch) == (100, 2 * (1000 + 2 * 100 + 64))
