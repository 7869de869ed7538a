"""``Market.map`` wired to scripted providers on a fake ledger: the bulk round, batch deals from
one chosen provider at its quote (opened by the provider), splitting, and the money checks.

The providers here are ``requester_fakes.FakeProvider`` plus ``POST /v1/rfq/bulk`` and the batch
output layout of ``domain.batch`` — a stand-in for the real agent, which the integration tests use.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from requester_fakes import DEPOSIT, FakeProvider, MakeMarket

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.batch import task_files, task_seed
from mercato.domain.jobs import ContainerSpec, JobSpec
from mercato.domain.wire import BulkAnswer, BulkQuote, BulkRfq, DeclineMsg, Rfq, bulk_quote_message, new_id
from mercato.errors import BalanceTooLow, BudgetTooLow, NoBids, SpecError
from mercato.requester import (
    BatchDispatched,
    BatchDone,
    BatchFailed,
    ProviderExcluded,
    BidsCollected,
    JobHistory,
    JobRequest,
    MapFinished,
    MapTask,
    Market,
    QuotesCollected,
    TasksQueued,
)
from mercato.verification.lottery import seal_of
from mercato.verification.result_root import result_root, sha256_hex


@dataclass
class BulkProvider(FakeProvider):
    """A FakeProvider that quotes bulk RFQs and runs batch specs (each task prints its args and input)."""

    capacity: int = 2
    max_tasks_per_deal: int = 8
    bulk_decline: bool = False
    bad_quote_signature: bool = False
    fail_batches: bool = False  # report every batch "failed" after it was accepted
    quote_ids: list[str | None] = field(default_factory=list)  # quote_id of every batch RFQ received
    batch_sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.open_itself = True  # map batches are opened by the provider

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/rfq/bulk":
            return self._bulk(BulkRfq.model_validate_json(request.content))
        if request.method == "POST" and request.url.path == "/v1/rfq":
            self.quote_ids.append(Rfq.model_validate_json(request.content).quote_id)
        return await super().handle(request)

    def _bulk(self, rfq: BulkRfq) -> httpx.Response:
        if self.bulk_decline:
            answer = BulkAnswer(decline=DeclineMsg(rfq_id=rfq.rfq_id, code="capacity", reason="all lanes busy"))
            return httpx.Response(200, content=answer.model_dump_json())
        q = BulkQuote(rfq_id=rfq.rfq_id, quote_id=new_id(), provider=self.address, price_per_cu=self.price_per_cu,
                      capacity=self.capacity, max_tasks_per_deal=self.max_tasks_per_deal,
                      expiry=int(time.time()) + 600)
        sig = self.api.sign_text(bulk_quote_message(q) + ("x" if self.bad_quote_signature else ""))
        q = q.model_copy(update={"signature": "0x" + sig.hex()})
        return httpx.Response(200, content=BulkAnswer(quote=q).model_dump_json())

    def _run(self, deal: dict) -> None:
        spec: JobSpec = deal["spec"]
        if not spec.tasks:
            return super()._run(deal)
        if deal["state"] != "accepted" or not set(spec.blob_refs()) <= set(self.blobs):
            return
        self.batch_sizes.append(spec.task_count)
        deal["started_at"] = time.time()
        if self.fail_batches:
            deal["state"], deal["error"] = "failed", "sandbox crashed"
            return
        files: dict[str, bytes] = {}
        for i in range(spec.task_count):
            task = spec.task(i)
            data = b"".join(self.blobs[h] for n, h in task.inputs if n != "data.bin")
            files |= task_files(i, outcome="ok", exit_code=0, fuel=5, stderr=b"",
                                stdout=f"args={' '.join(task.args)} input=".encode() + data,
                                outputs={"seed.txt": task.seed.hex().encode()})
        root = result_root(outputs=[(p, sha256_hex(b)) for p, b in files.items()], stdout=b"", stderr=b"",
                           outcome="ok", exit_code=0)
        salt = secrets.token_bytes(32)
        seal = seal_of(self.address, deal["terms"].deal_id, bytes.fromhex(root), 5, salt)
        deal["receipt"] = {"outcome": "ok", "exit_code": 0, "fuel_used": 5, "cu_used": 1, "result_root": root,
                           "stdout": "", "stderr": "", "message": "",
                           "outputs": [{"path": p, "sha256": sha256_hex(b), "size": len(b)} for p, b in files.items()],
                           "timings": {"compile_ms": 0, "run_ms": 1, "wall_ms": 1}}
        deal["files"], deal["salt"], deal["seal"] = files, salt, seal
        deal["tx"] = self._commit(deal, seal)
        deal["state"] = "committed"

    def _file(self, deal: dict, rest: str) -> httpx.Response:
        if "files" not in deal:
            return super()._file(deal, rest)
        if rest in ("stdout", "stderr"):
            return httpx.Response(200, content=b"")
        data = deal["files"].get(rest.removeprefix("outputs/"))
        return httpx.Response(404) if data is None else httpx.Response(200, content=data)


def _run_map(market: Any, job: JobRequest, inputs: list[Any], **options: Any) -> tuple[list[Any], Any]:
    async def go() -> tuple[list[Any], Any]:
        async with market as m:
            run = m.map(job, inputs, **options)
            results = await run.collect()
            return results, run.summary

    return asyncio.run(go())


def test_map_buys_batches_at_the_quotes_and_splits_them(ledger: FakeLedger, requester: FakeMarket,
                                                       make_market: MakeMarket, request_: JobRequest,
                                                       tmp_path: Path) -> None:
    cheap = BulkProvider("provider1", ledger, price_per_cu=10_000, capacity=2, max_tasks_per_deal=2)
    dear = BulkProvider("provider2", ledger, price_per_cu=30_000)
    market = make_market([cheap, dear])
    inputs = [b"alpha", ["--x", "1"], MapTask(args=("y",), inputs={"task.in": b"beta"}, name="named")]
    results, summary = _run_map(market, request_, inputs, max_price_per_cu=40_000, ordered=True,
                                out_dir=tmp_path / "out")
    assert [r.index for r in results] == [0, 1, 2] and summary.complete
    assert results[0].stdout == b"args=7 input=alpha" and results[1].stdout == b"args=7 --x 1 input="
    assert results[2].stdout == b"args=7 y input=beta" and results[2].name == "named"
    assert {r.provider for r in results} == {cheap.address} and dear.rfqs == 0  # cheapest filled first
    assert sorted(cheap.batch_sizes) == [1, 2] and len(set(cheap.quote_ids)) == 1 and None not in cheap.quote_ids
    # every task draws task_seed(run seed, its run index), whichever batch carried it
    assert [r.outputs["seed.txt"] for r in results] == [task_seed(request_.spec.seed, i).hex().encode()
                                                         for i in range(3)]
    assert [r.seed for r in results] == [task_seed(request_.spec.seed, i).hex() for i in range(3)]
    assert (tmp_path / "out" / "named" / "stdout").read_bytes() == b"args=7 y input=beta"
    # the provider opened each batch itself: the requester sent no transaction for them
    assert all(d.get("onchain") is not None for d in cheap.deals.values() if d["state"] == "committed")
    kinds = {type(e) for e in market.events}  # type: ignore[attr-defined]
    assert {QuotesCollected, TasksQueued, BatchDispatched, BatchDone, MapFinished} <= kinds
    assert BidsCollected not in kinds  # the batches' own deal events are not emitted
    # each batch: max price = quote x 5 CU x its tasks; the audit fee defaults to it; the fake bids below it
    deals = [d["terms"] for d in cheap.deals.values() if d["state"] == "committed"]
    assert sorted(t.audit_fee for t in deals) == [10_000 * 5, 10_000 * 5 * 2]
    assert summary.spent == sum(t.price for t in deals) and summary.committed == sum(t.escrow for t in deals)
    assert requester.balance_of() == DEPOSIT - summary.committed  # exactly what the run says it holds


def test_a_failed_batch_finishes_at_another_provider(ledger: FakeLedger, requester: FakeMarket,
                                                     make_market: MakeMarket, request_: JobRequest) -> None:
    broken = BulkProvider("provider1", ledger, price_per_cu=10_000, fail_batches=True)
    good = BulkProvider("provider2", ledger, price_per_cu=20_000)
    market = make_market([broken, good])
    results, summary = _run_map(market, request_, [b"a", b"b", b"c"], max_price_per_cu=20_000)
    assert summary.complete and {r.provider for r in results} == {good.address}
    assert sorted(broken.batch_sizes) == [1, 2]  # both its lanes took a batch at once; both failed
    assert summary.providers[broken.address].failures == 2 and summary.providers[broken.address].excluded
    events = market.events  # type: ignore[attr-defined]
    assert [e.kind for e in events if isinstance(e, BatchFailed)] == ["failed", "failed"]
    assert [e.provider for e in events if isinstance(e, ProviderExcluded)] == [broken.address]
    assert requester.balance_of() == DEPOSIT - summary.committed  # the failed batch cost nothing


def test_a_declined_batch_goes_elsewhere_without_blame(ledger: FakeLedger, make_market: MakeMarket,
                                                       request_: JobRequest) -> None:
    busy = BulkProvider("provider1", ledger, price_per_cu=10_000, decline=("capacity", "lanes taken meanwhile"))
    free = BulkProvider("provider2", ledger, price_per_cu=20_000)
    market = make_market([busy, free])
    results, summary = _run_map(market, request_, [b"a"], max_price_per_cu=20_000)
    assert summary.complete and results[0].provider == free.address
    assert summary.providers[busy.address].declines == 1 and summary.providers[busy.address].failures == 0
    events = market.events  # type: ignore[attr-defined]
    assert [e.kind for e in events if isinstance(e, BatchFailed)] == ["declined"]
    assert not [e for e in events if isinstance(e, ProviderExcluded)]


def test_map_records_each_batch_in_the_history(ledger: FakeLedger, make_market: MakeMarket,
                                               request_: JobRequest, tmp_path: Path) -> None:
    history = JobHistory(tmp_path / "h.sqlite")
    p = BulkProvider("provider1", ledger, capacity=1, max_tasks_per_deal=4)
    _run_map(make_market([p], history=history), request_, [b"a", b"b"], max_price_per_cu=20_000)
    (row,) = history.recent(10)
    assert row.state == "sealed" and row.name.endswith("#1") and row.provider == p.address


def test_budget_too_low_before_any_deal(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    p = BulkProvider("provider1", ledger, price_per_cu=10_000)
    with pytest.raises(BudgetTooLow) as caught:
        _run_map(make_market([p]), request_, [b"a", b"b"], max_price_per_cu=20_000, budget=199_999)
    assert caught.value.needed == 2 * 2 * 10_000 * 5 and p.rfqs == 0


def test_escrow_too_low_before_any_deal(ledger: FakeLedger, requester: FakeMarket, make_market: MakeMarket,
                                        request_: JobRequest) -> None:
    p = BulkProvider("provider1", ledger, price_per_cu=10_000)
    requester.request_withdrawal(DEPOSIT - 1)
    with pytest.raises(BalanceTooLow) as caught:
        _run_map(make_market([p]), request_, [b"a"], max_price_per_cu=20_000)
    assert "mercato deposit" in str(caught.value) and p.rfqs == 0


def test_no_quote_names_the_causes(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    busy = BulkProvider("provider1", ledger, bulk_decline=True)
    forged = BulkProvider("provider2", ledger, bad_quote_signature=True)
    with pytest.raises(NoBids) as caught:
        _run_map(make_market([busy, forged]), request_, [b"a"], max_price_per_cu=20_000)
    assert "all lanes busy" in str(caught.value) and "bad quote signature" in str(caught.value)


def test_bad_options_and_inputs_are_spec_errors(ledger: FakeLedger, make_market: MakeMarket,
                                                request_: JobRequest) -> None:
    market = make_market([])
    with pytest.raises(SpecError, match="max_price_per_cu"):
        market.map(request_, [b"a"], max_price_per_cu=1.5)
    with pytest.raises(SpecError, match="tasks_per_deal"):
        market.map(request_, [b"a"], max_price_per_cu=1, tasks_per_deal=0)
    with pytest.raises(SpecError, match="Path"):
        market.map(request_, ["a.bin"], max_price_per_cu=1)
    with pytest.raises(SpecError, match="at least one input"):
        market.map(request_, [], max_price_per_cu=1)
    with pytest.raises(SpecError, match="task 1: it redefines the base input"):
        market.map(request_, [b"ok", MapTask(inputs={"data.bin": b"x"})], max_price_per_cu=1)
    container = JobSpec(runtime="container", workload="sha256:" + "ab" * 32, container=ContainerSpec())
    with pytest.raises(SpecError, match="deterministic runtimes"):
        market.map(container, [b"a"], max_price_per_cu=1)


def test_a_batch_reads_only_its_provider_and_fails_if_it_left_the_registry(ledger: FakeLedger,
                                                                          requester: FakeMarket) -> None:
    """A map batch's registry read is the chosen provider's entry alone (no scan of every
    provider); an address with no registered endpoint is ``ProviderFailed``, so the batch goes
    elsewhere."""
    from mercato.errors import ProviderFailed
    from mercato.requester import _auction

    p = BulkProvider("provider1", ledger, price_per_cu=10_000)
    asked: list[str] = []
    scans: list[bool] = []
    info, providers = requester.provider_info, requester.providers
    requester.provider_info = lambda a=None: (asked.append(a), info(a))[1]  # type: ignore[method-assign,misc]
    requester.providers = lambda: (scans.append(True), providers())[1]  # type: ignore[method-assign]

    async def call(fn: Any, *args: Any) -> Any:
        return fn(*args)

    facts = asyncio.run(_auction.registry_facts(requester, call, [p.address]))
    assert list(facts) == [p.address] and facts[p.address].registered and asked == [p.address] and scans == []
    stranger = "0x" + "ab" * 20
    gone = asyncio.run(_auction.registry_facts(requester, call, [stranger]))
    with pytest.raises(ProviderFailed, match="no longer registered"):
        Market._only(stranger, gone, 0)
