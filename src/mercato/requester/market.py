"""``Market``: the requester's one object — escrow, the bid round, the deal, the verified result.

    >>> async with Market.connect(settings) as m:                       # doctest: +SKIP
    ...     result = await m.run(load_job_toml("job.toml"))
    ...     print(result.stdout.decode(), result.price)

``run`` asks every qualifying provider at once, picks the winner by ``matching``, releases every
other bid (``DELETE /v1/bids/{id}``, fire-and-forget, so the losers' lanes free at once; a bid
that arrives after the window is released as it arrives), hands the winner a signed acceptance
and the blobs at once (optimistic start), opens the deal on-chain once the provider took the
acceptance, waits for the seal, then downloads and verifies every byte against it. A round
without a compliant bid for a cause time may cure (a provider too slow, every lane busy) is
asked again with a wider window, up to ``bid_retries`` times (``BidsRetried``, logged). On a real
node it then stands by each deal until its lottery and audit are over (``requester._audits``):
it draws the deal if the provider does not, and pushes the job to every auditor drawn for it,
so a provider cannot pass an audit by hiding its job; ``aclose`` waits for that (at most
``audit_wait_s``, default 300 s).

A result ``run`` returns is *sealed* (it opens the provider's on-chain seal); whether anyone else
re-executed it is known only once the lottery and audit are over: ``await m.verification(result)``
reads it from the chain (``requester.trust``: sealed, audited, unaudited, proven_wrong, void; and
whether the provider is jailed now). A job that names no ``audit_bps`` asks
``verification.params.DEFAULT_AUDIT_BPS`` (5 %), or the market's floor where higher. The first
``run`` also counts who could audit its deal and warns (``AuditorsShort``) when a dispute could
not seat a full committee.

``map`` runs many tasks of one job at once: a bulk RFQ, then batch deals bought one by one with
the same machinery, each from one chosen provider at its quote (``requester.mapper``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import httpx
from pydantic import ValidationError

from mercato.chain import Deployment, MarketClient, connect
from mercato.chain.api import MarketApi, PendingWithdrawal, Tx
from mercato.chain.keys import Unlocker
from mercato.config import Settings
from mercato.domain.batch import MAX_TASKS, split_outputs, task_seed
from mercato.domain.deals import Deal, Terms
from mercato.domain.jobs import JobSpec, cu_from_fuel
from mercato.domain.sealing import BoxKey, sealed_upload
from mercato.domain.wire import AcceptMsg, AuditJobMsg, BulkRfq, DealStatusMsg, SeedMsg, TermsMsg, new_id
from mercato.domain.wire import Rfq as RfqMsg
from mercato.errors import (
    BalanceTooLow,
    BidReplayed,
    ChainError,
    DeadlineNotPassed,
    LaneBusy,
    LotteryError,
    MercatoError,
    NoBids,
    ProviderDeclined,
    ProviderFailed,
    ProviderMissedDeadline,
    ResultMismatch,
    SpecError,
    WithdrawalNotReady,
)
from mercato.matching import Ask, Offer, ProviderFacts, choose_winner, min_collateral_for, score_reputation
from mercato.requester import _auction, _verify, mapper
from mercato.requester._audits import AuditSupport
from mercato.requester._signing import RequestSigner
from mercato.requester.events import (
    Accepted,
    AuditorsShort,
    Balance,
    BidsCollected,
    BidsRetried,
    Committed,
    Event,
    EventCallback,
    JobResult,
    Paid,
    ProviderView,
    QuotesCollected,
    Running,
    Verified,
    WinnerChosen,
)
from mercato.requester.history import JobHistory, JobRecord
from mercato.requester.journal import Journal, JournalEntry
from mercato.requester.money import format_musd
from mercato.requester.mapper import BatchOrder, BatchResult, Costs, MapInput, MapRun, PreparedTasks, ProviderQuote
from mercato.requester.request import DEFAULT_INPUT_NAME, DEFAULT_MAX_INPUT_BYTES, JobRequest
from mercato.requester.trust import VerificationStatus, auditor_pool, read_verification
from mercato.verification.params import default_audit_bps
from mercato.verification.lottery import new_seed, seed_hash

__all__ = ["Market"]

log = logging.getLogger("mercato.requester")

_DONE = ("committed", "finalized")
_GAVE_UP = ("failed", "expired", "reclaimed")
_MAX_ACCEPT_WINDOW_S = 3600  # the wire's cap on an RFQ's accept_window_s
_TARGET_WINDOW_S = 15.0  # how long an RFQ sent to one chosen provider waits for its answer


@dataclasses.dataclass(slots=True)
class _Opened:
    by: str = ""  # "requester", "provider", or "" when not (yet) on-chain
    tx: str | None = None
    error: MercatoError | None = None
    lane_taken: bool = False  # another deal holds the lane: this one cannot open while it stands


@dataclasses.dataclass(slots=True)
class _Job:
    """What one run has learnt so far (for the history row when it fails half-way)."""

    req: JobRequest
    t0: float
    created: float
    deal_id: str = ""
    provider: str = ""
    price: int = 0
    started_at: float | None = None
    seed: bytes = b""  # the lottery seed committed (hashed) in the RFQ, revealed after verification
    marks: dict[str, float] = dataclasses.field(default_factory=dict)
    # a map batch: ask only ``target`` (with its bulk ``quote_id``), let it open the deal, emit nothing
    target: str | None = None
    quote_id: str | None = None
    open_on_chain: bool | None = None  # None: the Market's setting
    quiet: bool = False

    def mark(self, name: str) -> None:
        self.marks[name] = round((time.monotonic() - self.t0) * 1000, 3)


class Market:
    """The market seen by one requester account (``api.address``). Use as an async context manager."""

    def __init__(self, api: MarketApi, *, bid_window: float = 0.25, open_on_chain: bool = True,
                 on_event: EventCallback | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 history: JobHistory | None = None, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
                 poll_interval: float = 0.02, max_poll_interval: float = 0.5, clock_slack_s: int = 30,
                 http_timeout: float = 30.0, threaded: bool | None = None, release_timeout: float = 2.0,
                 serve_audits: bool | None = None, audit_wait_s: float = 300.0,
                 journal: Journal | None = None, bid_retries: int = 2) -> None:
        self.api = api
        # results come back sealed to this key (named per request in ?box=, so a fresh key per
        # Market is enough: nothing sealed to it outlives the process)
        self.box = BoxKey(secrets.token_bytes(32))
        self.journal = journal  # crash journal (requester/journal.py): what `recover` finishes after a kill
        self._params: dict[str, int] | None = None  # the market's deployment parameters, once read
        self._pool: asyncio.Future[None] | None = None  # counting who could audit (once, after the first run)
        self.release_timeout = release_timeout  # per DELETE /v1/bids/{id} sent to a losing provider
        self._releases: set[asyncio.Task[None]] = set()
        self._late: set[asyncio.Task[Any]] = set()  # RFQ answers still coming after their window closed
        self.bid_window = bid_window
        self.bid_retries = bid_retries  # rounds asked again, wider, when one brings no compliant bid
        self.open_on_chain = open_on_chain
        self.on_event = on_event
        self.history = history
        self.max_input_bytes = max_input_bytes
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.clock_slack_s = clock_slack_s
        self.sleep: Callable[[float], Any] = asyncio.sleep  # tests replace it
        self._transport, self._http_timeout = transport, http_timeout
        self._http: httpx.AsyncClient | None = None
        # a node's client blocks on I/O: run it in threads; the in-memory fake is not thread-safe
        self._threaded = isinstance(api, MarketClient) if threaded is None else threaded
        self._seals = _verify.seal_reader_for(api, self._call)
        # a node stamps its next block with at least the wall clock, while its latest block may be
        # old on an idle devnet: judge deadlines by the later of the two (the provider does too)
        self._wall_floor = isinstance(api, MarketClient)
        # stand by each deal through its lottery and audit (default: on a real node; the fake's
        # audits pass at once and its blocks advance only with transactions)
        self.audit_wait_s = audit_wait_s
        serve = isinstance(api, MarketClient) if serve_audits is None else serve_audits
        self._audits = AuditSupport(api, self._call, self._client) if serve else None

    async def _now(self) -> int:
        chain = int(await self._call(self.api.now))
        return max(chain, int(time.time())) if self._wall_floor else chain

    @classmethod
    def connect(cls, settings: Settings | None = None, *, deployment: Deployment | None = None,
                key: str | None = None, **options: Any) -> Market:
        """A Market on a real node: ``settings`` (deployment file, account, RPC) or an explicit
        ``deployment`` + private ``key``. ``options`` go to the constructor (``bid_window`` …)."""
        dep = deployment or Deployment.load((settings or Settings()).deployment_path)
        s = settings or Settings()
        url = (s.rpc_url or dep.rpc_url) if settings is not None and deployment is None else dep.rpc_url
        w3 = connect(url, s.retry, s.rpc_timeout, chain_id=dep.chain_id)
        key = key or dep.key_of(s.account, unlock=Unlocker.from_settings(s), origin=s.account_origin)
        client = MarketClient.from_deployment(w3, dep, key, gas_margin=s.gas_margin, timeout=s.tx_timeout,
                                              ledger=s.home / "txs" if settings is not None else None)
        if settings is not None:
            options.setdefault("history", JobHistory(settings.home / "requester.sqlite"))
            options.setdefault("journal", Journal.for_account(settings.home, dep.chain_id, dep.market, client.address))
        return cls(client, **options)

    async def __aenter__(self) -> Market:
        self._client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait (at most ``audit_wait_s``) until every deal's lottery and audit are over, then close
        the HTTP connections (after the bid releases still in flight, for a moment at most)."""
        if self._audits is not None:
            await self._audits.wait(self.audit_wait_s)
        if self._pool is not None and not self._pool.done():  # the auditor count ran beside the stand-by
            await asyncio.wait([self._pool], timeout=2.0)
            self._pool.cancel()
        if self._late:  # a late bid released as it arrives; one still not here is left to the provider
            _done, late = await asyncio.wait(set(self._late), timeout=self.release_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._releases:
            _done, late = await asyncio.wait(set(self._releases), timeout=self.release_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # every request signed with this account's key: providers serve a deal's data to its requester only
            auth = RequestSigner(self.api.address, self.api.sign_text)  # type: ignore[attr-defined]
            self._http = httpx.AsyncClient(transport=self._transport, timeout=self._http_timeout, auth=auth,
                                           limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        return self._http

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args) if self._threaded else fn(*args)

    def _emit(self, event: Event, st: _Job | None = None) -> None:
        if self.on_event is not None and not (st is not None and st.quiet):
            self.on_event(event)

    # escrow and registry ------------------------------------------------------------------
    async def deposit(self, amount: int) -> Tx:
        """Move ``amount`` base units from your wallet into your escrow balance."""
        return await self._call(self.api.deposit, amount)

    async def balance(self) -> Balance:
        """Escrow balance, pending withdrawal and wallet tokens."""
        available, pending, wallet = await asyncio.gather(
            self._call(self.api.balance_of), self._call(self.api.pending_withdrawal),
            self._call(self.api.token_balance))
        return Balance(available, pending.amount, pending.ready_at, wallet)

    async def request_withdrawal(self, amount: int) -> PendingWithdrawal:
        """Start a withdrawal; it can complete after the market's withdrawal delay."""
        await self._call(self.api.request_withdrawal, amount)
        return await self._call(self.api.pending_withdrawal)

    async def complete_withdrawal(self, *, attempts: int = 1) -> Tx:
        """Pay out the pending withdrawal (retrying ``attempts`` times, 1 s apart, while not ready)."""
        for attempt in range(attempts):
            try:
                return await self._call(self.api.withdraw)
            except WithdrawalNotReady:
                if attempt == attempts - 1:
                    raise
                await self.sleep(1.0)
        raise AssertionError("unreachable")

    async def withdraw(self, amount: int, *, wait: bool = True) -> Tx | PendingWithdrawal:
        """Request a withdrawal and, when ``wait``, sleep out the delay and complete it."""
        pending = await self.request_withdrawal(amount)
        if not wait:
            return pending
        await self.sleep(max(0.0, pending.ready_at - await self._now()))
        return await self.complete_withdrawal(attempts=30)

    async def providers(self) -> list[ProviderView]:
        """Every registered provider with its stake and reputation."""
        facts = await _auction.registry_facts(self.api, self._call)
        reps = await asyncio.gather(*(self._call(self.api.reputation, a) for a in facts))
        return [ProviderView(f.address, f.endpoint, f.stake, f.free_stake, r.completed, r.missed,
                             float(score_reputation(r))) for f, r in zip(facts.values(), reps, strict=True)]

    # crash safety (requester/journal.py, requester/recover.py) ----------------------------------
    async def recover(self) -> list[Any]:
        """After a crash: finish every deal the journal holds (reveal seeds, fetch and verify results,
        reclaim missed deals) and report each one's state (``requester.recover``). Idempotent."""
        from mercato.requester.recover import recover

        return await recover(self)

    def _jot_begin(self, st: _Job, winner: Offer, acceptance: bytes) -> None:
        if self.journal is None:
            return
        t = winner.terms
        self.journal.begin(JournalEntry(
            st.deal_id, st.created, st.req.name, st.req.spec.spec_hash(), t.provider, winner.endpoint,
            TermsMsg.of(t).model_dump_json(), "0x" + st.seed.hex(), "0x" + acceptance.hex(),
            "0x" + winner.signature.hex(), str(st.req.out_dir or ""),
            ",".join(str(c) for c in _verify.download_caps(st.req.spec))))

    # running a job ------------------------------------------------------------------------
    async def run(self, job: JobRequest | JobSpec, **options: Any) -> JobResult:
        """Buy one verified execution of ``job`` (options override JobRequest fields)."""
        if isinstance(job, JobSpec):
            req = JobRequest(spec=job, **options)
        else:
            req = dataclasses.replace(job, **options) if options else job
        state = _Job(req, time.monotonic(), time.time())
        try:
            result = await self._run(state)
        except MercatoError as exc:
            self._record(state, type(exc).__name__, error=str(exc))
            raise
        self._record(state, "verified", root=result.result_root, open_tx=result.open_tx or "")
        if self._pool is None:  # who could audit: counted once, in the background, after the first result
            self._pool = asyncio.ensure_future(self._check_auditors(result.provider))
        return result

    async def verification(self, result: JobResult | str, provider: str | None = None) -> VerificationStatus:
        """What the chain says now about a result (``JobResult``, or a deal id with its ``provider``):
        sealed, auditing, audited, unaudited (passed by default), proven_wrong or void, and whether
        the provider is jailed. ``result.with_status(await m.verification(result))`` for a copy. The
        local job history (``mercato jobs``) is updated with what it says."""
        if isinstance(result, JobResult):
            deal_id, provider = result.deal_id, provider or result.provider
        else:
            deal_id = result
        status = await read_verification(self.api, self._call, deal_id, provider or "")
        if self.history is not None and status.state != "sealed":  # `mercato jobs` shows it from now on
            self.history.set_state(status.deal_id, str(status.state))
        return status

    async def auditor_pool(self, exclude: Iterable[str] = ()) -> list[str]:
        """Providers that could be drawn to audit a deal now (registered, staked, not jailed), less
        ``exclude`` (a deal's provider; you are always left out)."""
        return await auditor_pool(self.api, self._call, [self.api.address, *exclude])

    async def _check_auditors(self, provider: str) -> None:
        """Warn (log and ``AuditorsShort``) when fewer than ``committee_size + 1`` providers besides
        ``provider`` and this requester could audit a deal: a first auditor and a full committee."""
        try:
            params = await self._parameters()
            if "committee_size" not in params:  # a market that does not say (the in-memory fake): no check
                return
            committee = int(params["committee_size"])
            pool = await auditor_pool(self.api, self._call, [self.api.address, provider])
        except Exception as exc:  # the count is advice: a failure (a node hiccup) is only logged
            log.info("could not count the auditors", extra={"error": str(exc)})
            return
        if len(pool) < committee + 1:
            log.warning("too few independent auditors: an audit of this market's deals may pass by default "
                        "(nobody checks) or a dispute end void",
                        extra={"available": len(pool), "needed": committee + 1, "committee_size": committee})
            self._emit(AuditorsShort(len(pool), committee + 1, committee, provider))

    # running many tasks -------------------------------------------------------------------
    def map(self, workload: JobRequest | JobSpec, inputs: Iterable[MapInput], *, max_price_per_cu: int,
            budget: int | None = None, ordered: bool = False, tasks_per_deal: int | None = None,
            input_name: str = DEFAULT_INPUT_NAME, out_dir: Path | None = None, max_attempts: int = 3,
            speculate_after: float | None = 3.0, **options: Any) -> MapRun:
        """Run ``workload`` once per item of ``inputs``, on as many providers as it takes, and
        stream each task's verified result (a :class:`~mercato.requester.mapper.MapRun`)::

            run = market.map(job, [Path("a.bin"), Path("b.bin")], max_price_per_cu=20_000, budget=10**8)
            async for task in run:          # TaskResult: index, name, stdout, outputs, provider …
                ...
            run.summary                     # MapSummary: done, failed, not_run, spent, per provider

        Each item is one task: bytes or a ``Path`` (mounted as ``/input/<input_name>``), a list of
        strings (arguments appended to the job's), a ``MapTask`` (args, several inputs, a name)
        or a ``domain.batch.Task``. Every task draws its own random stream (``TaskResult.seed``):
        task ``i`` of the run gets ``task_seed(seed, i)`` whichever batch carries it (its ``Task.index``
        is set to ``i``), so no two tasks of a run share a stream and a re-run draws the same one.

        The tasks are bought as batch deals (``tasks_per_deal`` tasks each; by default up to 32,
        spread over the chosen provider's free lanes) from the providers that answer the bulk RFQ
        at or below ``max_price_per_cu`` (base units per CU): cheapest first, several batches at
        once. Gas: each batch is opened *by its provider* (``open_and_commit``, the requester
        sends no transaction), so the run's gas is the providers', one deal per batch; a batch's
        accept window is its deadline, so it may be opened until then.

        ``budget`` (base units; default: the escrow balance) caps what the run holds at once and
        for good: each batch's max price plus its audit fee (``audit_fee`` and ``min_collateral``
        in the job are per task and scale with a batch's size). ``BudgetTooLow`` (or
        ``BalanceTooLow``) from the first step if it cannot cover every task at the cheapest
        quote. Failed batches go to other providers (``max_attempts`` failed batches give a task
        up); a straggler is duplicated once the queue is empty (``speculate_after`` × the median
        batch time; None: never). When the budget runs out the run stops cleanly: the summary
        says what was done and what was not run. ``options`` override JobRequest fields
        (``deadline_s`` is each batch's deadline: it must cover a batch's tasks one after another).
        """
        if isinstance(workload, JobSpec):
            base = JobRequest(spec=workload, **options)
        else:
            base = dataclasses.replace(workload, **options) if options else workload
        _check_map_options(max_price_per_cu, budget, tasks_per_deal, max_attempts, speculate_after)
        prepared = mapper.prepare_tasks(inputs, base=base, input_name=input_name)

        async def setup() -> mapper.Scheduler:
            return await self._map_setup(base, prepared, max_price_per_cu=max_price_per_cu, budget=budget,
                                         ordered=ordered, tasks_per_deal=tasks_per_deal, max_attempts=max_attempts,
                                         speculate_after=speculate_after)

        return MapRun(setup, out_dir=out_dir)

    async def _map_setup(self, base: JobRequest, prepared: PreparedTasks, *, max_price_per_cu: int,
                         budget: int | None, **run_options: Any) -> mapper.Scheduler:
        """The bulk round and the money checks, then a scheduler over this Market's batches."""
        n, costs = len(prepared), Costs(cu_from_fuel(base.spec.limits.fuel), base.audit_fee)
        self._check_sizes(base)
        sizes = [(ref, len(b)) for ref, b in prepared.blobs.items()] + [(ref, p.stat().st_size)
                                                                        for ref, p in prepared.files.items()]
        for ref, size in sizes:
            if size > self.max_input_bytes:
                raise SpecError(f"a task input ({ref[:19]}…) is {size} bytes, over the {self.max_input_bytes}-byte "
                                "limit on one upload: split it, or raise max_input_bytes", field="inputs")
        rnd = await self._bulk_quotes(base, n, max_price_per_cu, frozenset())
        if not rnd.quotes:
            raise mapper.no_quotes_error(rnd, max_price_per_cu)
        cheapest = min(q.price_per_cu for q in rnd.quotes)
        need = costs.cost(n, cheapest)
        if budget is not None and budget < need:
            raise mapper.budget_too_low(budget, n, cheapest, costs)
        balance = int(await self._call(self.api.balance_of))
        if balance < need:
            raise BalanceTooLow(f"your escrow balance {format_musd(balance)} mUSD does not cover the {n} tasks even at "
                                f"the cheapest quote: that needs {format_musd(need)} mUSD (each batch's max price plus "
                                f"its audit fee, held until it settles): run `mercato deposit "
                                f"{format_musd(need - balance)}` or more", balance=balance, price=need)

        async def run_batch(order: BatchOrder) -> BatchResult:
            return await self._run_batch(base, prepared, order)

        async def requote(pending: int, skip: frozenset[str]) -> list[ProviderQuote]:
            return (await self._bulk_quotes(base, pending, max_price_per_cu, skip)).quotes

        return mapper.Scheduler(n, rnd.quotes, run_batch, costs=costs, names=prepared.names,
                                budget=balance if budget is None else min(budget, balance), requote=requote,
                                emit=self._emit, **run_options)

    async def _bulk_quotes(self, base: JobRequest, tasks: int, max_price_per_cu: int,
                           skip: frozenset[str]) -> mapper.QuoteRound:
        """``POST /v1/rfq/bulk`` to every qualifying provider not in ``skip``; the usable quotes,
        each with its provider's reputation (the allocation's tie-breaker)."""
        api = self.api
        facts = await _auction.registry_facts(api, self._call)
        cu = cu_from_fuel(base.spec.limits.fuel)
        floor = base.min_collateral if base.min_collateral is not None else min_collateral_for(max_price_per_cu * cu)
        left_out = skip | base.exclude_providers
        targets = [f for f in facts.values() if f.registered and f.endpoint and f.free_stake >= floor
                   and f.address.lower() not in left_out]
        if not targets:
            raise _auction.no_targets_error(len(facts), floor)
        rfq = BulkRfq(rfq_id=new_id(), requester=api.address, chain_id=api.chain_id, market=api.market,
                      spec=base.spec.to_json(), spec_hash=base.spec.spec_hash(), tasks=tasks,
                      max_price_per_cu=max_price_per_cu, deadline_s=base.deadline_s)
        rnd = await mapper.collect_quotes(self._client(), targets, rfq, base.bid_window or self.bid_window,
                                          now=time.time())
        reps = await asyncio.gather(*(self._call(api.reputation, q.provider) for q in rnd.quotes))
        rnd.quotes = [dataclasses.replace(q, reputation=r) for q, r in zip(rnd.quotes, reps, strict=True)]
        self._emit(QuotesCollected(rnd.asked, len(rnd.quotes), dict(rnd.causes), rnd.window_ms))
        return rnd

    async def _run_batch(self, base: JobRequest, prepared: PreparedTasks, order: BatchOrder) -> BatchResult:
        """Buy one batch deal: an ordinary RFQ for the batch spec sent to the order's provider only,
        naming its bulk quote; the provider opens the deal (``open_and_commit``). The verified
        result split into one ``TaskOutput`` per task (a layout that does not split is a mismatch)."""
        k = len(order.tasks)
        # each task carries its run index: it draws task_seed(run seed, index) whichever batch carries it
        spec = dataclasses.replace(base.spec, tasks=tuple(dataclasses.replace(prepared.tasks[i], index=i)
                                                          for i in order.tasks))
        refs = set(spec.blob_refs())
        have = {h for h, _ in base.files}
        files = base.files + tuple((h, p) for h, p in prepared.files.items() if h in refs and h not in have)
        blobs = base.blobs | {h: b for h, b in prepared.blobs.items() if h in refs}
        req = dataclasses.replace(
            base, spec=spec, files=files, blobs=blobs, max_price=order.max_price, audit_fee=order.audit_fee,
            min_collateral=None if base.min_collateral is None else base.min_collateral * k,
            accept_window_s=min(base.deadline_s, _MAX_ACCEPT_WINDOW_S), out_dir=None,
            name=f"{base.name or 'map'}#{order.batch}", redundancy=1, exclude_providers=frozenset())
        st = _Job(req, time.monotonic(), time.time(), target=order.provider, quote_id=order.quote.quote_id,
                  open_on_chain=False, quiet=True)
        try:
            result = await self._run(st)
        except MercatoError as exc:
            self._record(st, type(exc).__name__, error=str(exc))
            raise
        except asyncio.CancelledError:
            self._record(st, "abandoned")
            raise
        self._record(st, "verified", root=result.result_root, open_tx=result.open_tx or "")
        try:
            outputs = split_outputs(result.outputs, k)
        except ValueError as exc:
            raise ResultMismatch(f"batch deal {result.deal_id} from provider {result.provider} opens its seal, but its "
                                 f"outputs are not one result per task ({exc}): the provider did not run the batch "
                                 "as specified; its tasks go to another provider", provider=result.provider,
                                 deal_id=result.deal_id, what="batch layout") from None
        return BatchResult(result.deal_id, result.price, tuple(outputs),
                           tuple(task_seed(base.spec.seed, i) for i in order.tasks))

    def _record(self, st: _Job, outcome: str, *, error: str = "", root: str = "", open_tx: str = "") -> None:
        if self.journal is not None and st.deal_id:  # crash journal
            self.journal.outcome(st.deal_id, outcome, error)
        if self.history is None:
            return
        ttfb = (st.started_at - st.created) * 1000 if st.started_at else None
        state = "sealed" if outcome == "verified" else outcome  # what is known when run returns (trust.py)
        self.history.record(JobRecord(st.created, st.req.name, st.req.spec.spec_hash(), state, st.deal_id,
                                      st.provider, st.price, root, open_tx, ttfb,
                                      (time.monotonic() - st.t0) * 1000, error))

    def _check_sizes(self, req: JobRequest) -> int:
        refs = ({ref: "workload" for ref in req.spec.blob_refs()[:1]} | {h: f"input {n!r}" for n, h in req.spec.inputs}
                | {h: f"task {i}'s input {n!r}" for i, t in enumerate(req.spec.tasks) for n, h in t.inputs})
        total = 0
        for ref, what in refs.items():
            size = req.blob_size(ref)
            if size > self.max_input_bytes:
                raise SpecError(f"the {what} is {size} bytes, over the {self.max_input_bytes}-byte limit on "
                                "one upload: split it, or raise max_input_bytes", field="inputs")
            total += size
        return total

    async def _run(self, st: _Job) -> JobResult:
        req, api = st.req, self.api
        total = self._check_sizes(req)
        window = req.bid_window or self.bid_window
        if st.target:  # one provider chosen already (a map batch): no auction to close, wait for its answer
            window = max(window, _TARGET_WINDOW_S)  # (a bid cut off late would hold a lane there until expiry)
        floor = req.collateral_floor
        balance_t = asyncio.ensure_future(self._call(api.balance_of))
        # a map batch reads only the provider chosen for it, not the whole registry
        only = [st.target] if st.target is not None else None
        facts, chain_now = await asyncio.gather(_auction.registry_facts(api, self._call, only), self._now())
        targets = [f for f in facts.values() if f.registered and f.endpoint and f.free_stake >= floor
                   and f.address.lower() not in req.exclude_providers]  # redundancy: k distinct providers
        if st.target is not None:
            targets = self._only(st.target, facts, floor)
        if not targets:
            raise _auction.no_targets_error(len(facts), floor)
        spec_hash = req.spec.spec_hash()
        audit_bps = req.audit_bps if req.audit_bps is not None else await self._default_audit_bps()
        st.seed = new_seed()
        committed_seed = seed_hash(st.seed)
        rfq = RfqMsg(rfq_id=new_id(), requester=api.address, chain_id=api.chain_id, market=api.market,
                     spec=req.spec.to_json(), spec_hash=spec_hash, max_price=req.max_price, min_collateral=floor,
                     deadline_s=req.deadline_s, accept_window_s=req.accept_window_s, input_bytes=total,
                     seed_hash="0x" + committed_seed.hex(), audit_bps=audit_bps, audit_fee=req.fee,
                     quote_id=st.quote_id)
        ask = Ask(api.address, bytes.fromhex(spec_hash.removeprefix("sha256:")), req.max_price, floor,
                  chain_now + req.deadline_s, chain_now + req.accept_window_s, self.clock_slack_s,
                  committed_seed, audit_bps, req.fee)
        rnd, windows = await self._rounds(st, targets, rfq, ask, window)
        window = windows[-1]
        if not rnd.offers:
            self._release(rnd.others(None))
            if st.target is not None:
                raise self._declined(rnd, st.target, window=window, max_price=req.max_price)
            if _auction.short_of_escrow(rnd):
                balance, need = await balance_t, req.max_price + req.fee
                raise BalanceTooLow(f"providers declined: your escrow balance {format_musd(balance)} mUSD does not "
                                    f"cover their price plus the audit fee {format_musd(req.fee)} mUSD: run "
                                    f"`mercato deposit {format_musd(max(need - balance, 1))}` (max_price plus the fee, "
                                    "less what you hold) or more", balance=balance, price=need)
            raise _auction.no_bids_error(rnd, window=window, max_price=req.max_price, windows=windows)
        winner = await self._choose(rnd.offers, facts)
        t = winner.terms
        st.deal_id, st.provider, st.price = "0x" + t.deal_id.hex(), t.provider, t.price
        self._release(rnd.others(st.deal_id))  # the losers' lanes free at once; the winner does not wait
        others = [o.terms.price for o in rnd.offers if o.provider != t.provider]
        self._emit(WinnerChosen(t.provider, winner.endpoint, t.price, t.collateral, st.deal_id,
                                min(others) if others else None), st)
        balance = await balance_t
        if balance < t.escrow:
            self._release([(winner.endpoint, st.deal_id)])
            raise BalanceTooLow(f"your escrow balance {format_musd(balance)} mUSD does not cover the winning "
                                f"price {format_musd(t.price)} mUSD plus the audit fee {format_musd(t.audit_fee)} "
                                f"mUSD: run `mercato deposit {format_musd(t.escrow - balance)}` or more",
                                balance=balance, price=t.escrow)
        return await self._deal(st, winner, chain_now)

    async def _rounds(self, st: _Job, targets: list[ProviderFacts], rfq: RfqMsg, ask: Ask,
                      window: float) -> tuple[_auction.Round, list[float]]:
        """The bid round, and every window it waited: a round without a compliant bid waits again,
        wider, at most ``bid_retries`` times while time may cure its causes (``worth_retrying``):
        a slow provider's request runs on, a busy one is asked again (after a pause when no answer
        is on its way), every bid the round brought is released. Whatever is still on its way at
        the end is released as it arrives. A map batch's round is asked once: its scheduler decides
        what a decline means."""
        auction = _auction.Auction(self._client(), rfq, ask, chain_id=self.api.chain_id, market=self.api.market)
        auction.send(targets)
        windows: list[float] = []
        try:
            while True:
                rnd = await auction.collect(window)
                windows.append(window)
                st.mark("bids_ms")
                self._emit(BidsCollected(rnd.asked, rnd.answered, len(rnd.offers), dict(rnd.causes),
                                         st.marks["bids_ms"]), st)
                if (rnd.offers or st.target is not None or len(windows) > self.bid_retries
                        or not _auction.worth_retrying(rnd)):
                    return rnd, windows
                self._release(rnd.others(None))
                rnd.bids.clear()
                wider = _auction.wider(window)
                pause, reason = _auction.retry_pause(rnd, wider), _auction.retry_reason(rnd)
                log.info("no compliant bid: asking again with a wider bid window",
                         extra={"attempt": len(windows), "retries": self.bid_retries, "window_ms": window * 1000,
                                "next_window_ms": wider * 1000, "pause_s": pause, "reason": reason})
                self._emit(BidsRetried(len(windows), self.bid_retries, window * 1000, wider * 1000, pause, reason,
                                       dict(rnd.causes)), st)
                await self.sleep(pause)
                again = _auction.busy(rnd, targets)
                if again:  # their bids' clock moved on since the first ask
                    shift = max(0, await self._now() - (auction.ask.deadline - st.req.deadline_s))
                    auction.ask = dataclasses.replace(auction.ask, deadline=auction.ask.deadline + shift,
                                                      expiry=auction.ask.expiry + shift)
                    auction.send(again)
                window = wider
        finally:
            self._release_late(auction.close())

    def _release_late(self, late: list[tuple[asyncio.Task[Any], str]]) -> None:
        """Release each bid still on its way when the auction closed, as it arrives: nobody will accept it."""
        def arrived(endpoint: str, task: asyncio.Task[Any]) -> None:
            self._late.discard(task)
            if not task.cancelled() and task.exception() is None and task.result().bid is not None:
                self._release([(endpoint, task.result().bid.deal_id)])

        for task, endpoint in late:
            self._late.add(task)
            task.add_done_callback(functools.partial(arrived, endpoint))

    @staticmethod
    def _only(target: str, facts: dict[str, ProviderFacts], floor: int) -> list[ProviderFacts]:
        """The one provider a map batch goes to: ``ProviderFailed`` if it left the registry, a mere
        ``ProviderDeclined`` if its free stake cannot lock the collateral now (its deals settle)."""
        found = next((f for f in facts.values() if f.address.lower() == target.lower()), None)
        if found is None or not found.registered or not found.endpoint:
            raise ProviderFailed(f"provider {target} is no longer registered with an endpoint: its batch goes to "
                                 "another provider", provider=target)
        if found.free_stake < floor:
            reason = (f"its free stake {format_musd(found.free_stake)} mUSD cannot lock the {format_musd(floor)} mUSD "
                      "collateral asked")
            raise ProviderDeclined(f"provider {target} cannot take the batch now: {reason}; nothing was charged",
                                   provider=found.address, code="bond", causes={found.address: f"bond: {reason}"})
        return [found]

    @staticmethod
    def _declined(rnd: _auction.Round, target: str, *, window: float, max_price: int) -> NoBids:
        """No bid from a map batch's one provider: ``ProviderDeclined`` for a refusal or silence
        (no one's fault), the usual ``NoBids`` when it was unreachable or its bid did not comply."""
        who = next((a for a in rnd.kinds if a.lower() == target.lower()), target)
        kind, cause = rnd.kinds.get(who), rnd.causes.get(who, "")
        if kind in ("declined", "silent"):
            code = cause.split(":", 1)[0] if kind == "declined" else "silent"
            return ProviderDeclined(f"provider {who} declined the batch ({cause}); nothing was charged",
                                    provider=who, code=code, causes=dict(rnd.causes))
        return _auction.no_bids_error(rnd, window=window, max_price=max_price)

    def _release(self, bids: list[tuple[str, str]]) -> None:
        """Send ``DELETE /v1/bids/{id}`` for each ``(endpoint, deal_id)`` concurrently, without waiting:
        failures only cost the provider a lane until the bid's expiry, so they are logged, not raised."""
        for endpoint, deal_id in bids:
            task = asyncio.ensure_future(self._release_one(endpoint, deal_id))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _release_one(self, endpoint: str, deal_id: str) -> None:
        try:
            code = await _auction.release_bid(self._client(), endpoint, deal_id, self.release_timeout)
        except Exception as exc:  # fire-and-forget: nothing here may reach the caller
            log.info("could not release a losing bid", extra={"endpoint": endpoint, "deal_id": deal_id,
                                                              "error": str(exc) or type(exc).__name__})
            return
        if code >= 300:
            log.info("a losing bid was not released", extra={"endpoint": endpoint, "deal_id": deal_id,
                                                             "status": code})

    async def _choose(self, offers: list[Offer], facts: dict[str, ProviderFacts]) -> Offer:
        best = choose_winner(offers, facts)
        assert best is not None
        tied = sorted({o.provider for o in offers if o.terms.price == best.terms.price})
        if len(tied) > 1:  # reputation only matters for a tie: read it only then
            reps = await asyncio.gather(*(self._call(self.api.reputation, p) for p in tied))
            facts = facts | {p: dataclasses.replace(facts[p], reputation=r) for p, r in zip(tied, reps, strict=True)}
            best = choose_winner(offers, facts)
            assert best is not None
        return best

    async def _deal(self, st: _Job, winner: Offer, chain_now: int) -> JobResult:
        t, http = winner.terms, self._client()
        acceptance = self.api.sign_acceptance(t)
        self._jot_begin(st, winner, acceptance)  # crash journal: before anything leaves
        opens = self.open_on_chain if st.open_on_chain is None else st.open_on_chain
        # whether the provider took the acceptance: a bid it no longer holds is not opened on-chain
        took: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        open_task = asyncio.ensure_future(self._open_if(took, t, winner.signature)) if opens else None
        t_accept = time.monotonic()
        try:
            uploaded = await self._hand_over(http, winner, st, acceptance, took)
            await asyncio.sleep(0)  # the open (woken by the acceptance's answer) goes out before the first poll
            st.mark("accepted_ms")
            self._emit(Accepted(st.deal_id, uploaded), st)
        except (httpx.HTTPError, ProviderFailed) as exc:
            if not took.done():
                took.set_result(True)
            if open_task is None or not took.result():
                if open_task is not None:
                    await open_task  # returns at once: it opens nothing
                raise ProviderFailed(f"provider {t.provider} refused the acceptance or the upload ({exc}); "
                                     "no deal was opened, nothing was charged: run the job again",
                                     provider=t.provider, deal_id=st.deal_id) from None
        finally:
            if not took.done():  # stopped before the acceptance went out: there is nothing to open
                took.set_result(False)
        local_deadline = t_accept + (t.deadline - chain_now) + 2.0
        status = await self._await_commit(http, winner.endpoint, st, t, local_deadline, open_task)
        opened = await open_task if open_task is not None else _Opened("provider")
        if status is None or status.state not in _DONE:
            await self._missed(st, t, opened, status, local_deadline)
        assert status is not None
        return await self._finish(st, winner, status, opened, chain_now)

    async def _open_if(self, took: asyncio.Future[bool], terms: Terms, signature: bytes) -> _Opened:
        """``_open`` once the provider took the acceptance (or its answer was lost, as it may have)."""
        return await self._open(terms, signature) if await took else _Opened()

    async def _open(self, terms: Terms, signature: bytes) -> _Opened:
        try:
            dt = await self._call(self.api.open_deal, terms, signature)
        except (LaneBusy, BidReplayed) as exc:  # the provider opened (and committed) it first — or not?
            return await self._lane_holder(terms, exc)
        except ChainError as exc:
            return _Opened("", None, exc)
        return _Opened("requester", "0x" + dt.tx.tx_hash.hex())

    async def _lane_holder(self, terms: Terms, exc: ChainError) -> _Opened:
        """After ``LaneBusy``/``BidReplayed``: fine only if the lane holds (or held) *this* deal — its
        nonce is the lane's last (deal_id = keccak(provider, lane, nonce)). A lane busy with an
        earlier nonce holds another deal (a bid its requester released, then opened anyway): this
        one cannot open while it stands."""
        try:
            lane = await self._call(self.api.lane, terms.provider, terms.lane)
        except ChainError as err:
            return _Opened("", None, err)
        if lane.last_nonce == terms.nonce:
            return _Opened("provider")
        what = (f"lane {terms.lane} of provider {terms.provider} holds another deal (nonce {lane.last_nonce}, "
                f"ours is {terms.nonce})")
        error = ChainError(f"{exc}: {what}")
        return _Opened("", None, error, lane_taken=lane.busy and lane.last_nonce < terms.nonce)

    async def _hand_over(self, http: httpx.AsyncClient, winner: Offer, st: _Job, sig: bytes,
                         took: asyncio.Future[bool]) -> int:
        """Send the acceptance and upload the job's blobs, each sealed to the provider's registered key;
        ``took`` learns whether the provider took the acceptance (True too when its answer was lost)."""
        base, t = winner.endpoint.rstrip("/"), winner.terms
        accept = AcceptMsg(deal_id=st.deal_id, terms=TermsMsg.of(t), acceptance_signature="0x" + sig.hex())
        blobs = self._blobs(st)
        uploads = {ref: sealed_upload(data, winner.enc_key) for ref, data in blobs.items()}

        async def post_accept() -> httpx.Response:
            try:
                resp = await http.post(f"{base}/v1/deals/{st.deal_id}/accept", json=accept.model_dump(mode="json"))
            except BaseException:
                if not took.done():  # the answer was lost: the acceptance may have landed
                    took.set_result(True)
                raise
            if not took.done():
                took.set_result(resp.status_code < 300)
            return resp

        async def put(ref: str) -> httpx.Response:
            body, headers = uploads[ref]
            return await http.put(f"{base}/v1/blobs/{ref}", content=body, headers=headers)

        answers = list(await asyncio.gather(post_accept(), *(put(ref) for ref in uploads)))
        if answers[0].status_code < 300:  # an upload that beat an acceptance taken after the bid's hold goes again
            for i, ref in enumerate(uploads, start=1):
                if answers[i].status_code in (403, 409):
                    answers[i] = await put(ref)
        for resp in answers:
            if resp.status_code >= 300:
                raise ProviderFailed(f"{resp.request.method} {resp.request.url.path} answered "
                                     f"{resp.status_code}: {resp.text[:200]}", provider=t.provider)
        return sum(len(b) for b in blobs.values())

    @staticmethod
    def _blobs(st: _Job) -> dict[str, bytes]:
        """The job's blobs by content hash (a container job ships its image archive, if any, not its image ID)."""
        return {ref: st.req.blob(ref) for ref in dict.fromkeys(st.req.spec.blob_refs())}

    def _stand_by(self, deal: Deal, st: _Job) -> None:
        """Stand by ``deal`` in the background through its lottery and audit (see ``_audits``)."""
        if self._audits is not None:
            job = AuditJobMsg(deal_id=st.deal_id, terms=TermsMsg.of(deal.terms), spec=st.req.spec.to_json())
            self._audits.start(deal, st.seed, job, self._blobs(st))

    async def _status(self, http: httpx.AsyncClient, url: str) -> DealStatusMsg | None:
        try:
            resp = await http.get(url)
            return DealStatusMsg.model_validate(resp.json()) if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, ValidationError):
            return None  # a hiccup: keep polling until the deadline

    async def _await_commit(self, http: httpx.AsyncClient, endpoint: str, st: _Job, t: Terms,
                            local_deadline: float, open_task: asyncio.Future[_Opened] | None = None,
                            ) -> DealStatusMsg | None:
        url, delay, last = f"{endpoint.rstrip('/')}/v1/deals/{st.deal_id}", self.poll_interval, None
        while True:
            if (open_task is not None and open_task.done() and open_task.exception() is None
                    and open_task.result().lane_taken):
                return last  # it can never open: do not wait for the deadline
            status = await self._status(http, url)
            if status is not None:
                last = status
                if status.started_at is not None and st.started_at is None:
                    st.started_at = status.started_at
                    st.mark("running_ms")
                    self._emit(Running(st.deal_id, status.started_at), st)
                if status.state in _DONE and status.seal and status.salt:
                    st.mark("committed_ms")
                    self._emit(Committed(st.deal_id, status.seal, status.commit_tx), st)
                    return status
                if status.state in _GAVE_UP:
                    return status
            if await self._now() > t.deadline or time.monotonic() > local_deadline:
                return last
            await self.sleep(delay)
            delay = min(delay * 1.5, self.max_poll_interval)

    async def _missed(self, st: _Job, t: Terms, opened: _Opened, status: DealStatusMsg | None,
                      local_deadline: float) -> NoReturn:
        said = f" (it said: {status.error})" if status is not None and status.error else ""
        if opened.by != "requester":
            cause = f"; opening it on-chain failed: {opened.error}" if opened.error else ""
            if opened.lane_taken:
                cause += " (lane taken by an earlier bid the requester opened)"
            raise ProviderFailed(f"provider {t.provider} did not deliver deal {st.deal_id}{said}; the deal is not "
                                 f"open on-chain, so nothing was charged{cause}: run the job again",
                                 provider=t.provider, deal_id=st.deal_id)
        tx = await self._reclaim(t, local_deadline)
        args = tx.events_named("DealReclaimed")[0].args
        refund, penalty = int(args["refund"]), int(args["penalty"])
        raise ProviderMissedDeadline(
            f"provider {t.provider} committed no result for deal {st.deal_id} by its deadline{said}; reclaimed: "
            f"{format_musd(refund)} mUSD refunded and {format_musd(penalty)} mUSD of its collateral burned "
            "— run the job again", provider=t.provider, deal_id=st.deal_id, refund=refund, penalty=penalty,
            reclaim_tx="0x" + tx.tx_hash.hex())

    async def _parameters(self) -> dict[str, int]:
        """The market's deployment parameters (read once)."""
        if self._params is None:
            self._params = dict(await self._call(self.api.parameters))  # type: ignore[attr-defined]
        return self._params

    async def _default_audit_bps(self) -> int:
        """The audit probability a job that names none asks: ``DEFAULT_AUDIT_BPS`` (the standard of
        ``mercato verify-params``), or the market's floor where that is higher."""
        return default_audit_bps(int((await self._parameters())["audit_floor_bps"]))

    async def _reveal_seed(self, http: httpx.AsyncClient, endpoint: str, st: _Job) -> bool:
        """Give the provider the lottery seed so it can run ``draw`` (docs/SPEC.md §14.3). A failure
        costs nothing but time: an undrawn deal is audited by default after its draw window."""
        try:
            resp = await http.post(f"{endpoint.rstrip('/')}/v1/deals/{st.deal_id}/seed",
                                   json=SeedMsg(seed="0x" + st.seed.hex()).model_dump())
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("could not reveal the lottery seed", extra={"deal_id": st.deal_id, "error": str(exc)})
            return False
        return True

    async def _challenge(self, deal: Deal) -> None:
        """The result does not open the seal on-chain: send the deal to audit (the escrowed fee
        pays), so the provider must reveal a result that opens its seal to an auditor or lose its
        stake. The audit's seed is the deal's beacon block hash (SPEC §14.3), so a challenge goes
        out once that block is mined. A challenge that cannot be sent (window over, already
        audited) is logged."""
        try:
            for attempt in range(120):  # a block a second on the devnet; a few seconds on real chains
                try:
                    await self._call(self.api.challenge, deal)
                    break
                except LotteryError as exc:
                    if "beacon not ready" not in str(exc) or attempt == 119:
                        raise
                    await self.sleep(0.5)
            log.warning("result did not match its seal: deal challenged", extra={"deal_id": "0x" + deal.deal_id.hex()})
        except MercatoError as exc:
            log.warning("could not challenge the deal", extra={"deal_id": "0x" + deal.deal_id.hex(), "error": str(exc)})

    async def _reclaim(self, t: Terms, local_deadline: float) -> Tx:
        while await self._now() <= t.deadline and time.monotonic() <= local_deadline:
            await self.sleep(min(1.0, max(0.01, local_deadline - time.monotonic())))
        for _ in range(30):  # a node's clock may lag the wall clock by a block or two
            try:
                return await self._call(self.api.reclaim, [Deal(t)])
            except DeadlineNotPassed:
                await self.sleep(1.0)
        return await self._call(self.api.reclaim, [Deal(t)])

    async def _finish(self, st: _Job, winner: Offer, status: DealStatusMsg, opened: _Opened,
                      chain_now: int) -> JobResult:
        t, http = winner.terms, self._client()
        got = await _verify.download(http, winner.endpoint, status, _verify.download_caps(st.req.spec), box=self.box)
        salt = bytes.fromhex((status.salt or "").removeprefix("0x"))
        claimed = bytes.fromhex((status.seal or "").removeprefix("0x"))
        stored = await self._seals.committed(t, chain_now - self.clock_slack_s, claimed)
        if stored is None and opened.error is not None:
            raise opened.error
        onchain = stored.seal if stored is not None else None
        try:
            root = _verify.verify(got, salt=salt, onchain_seal=onchain, provider=t.provider, deal_id=st.deal_id)
        except ResultMismatch:
            if self.journal is not None:  # crash journal
                self.journal.outcome(st.deal_id, "mismatch")
            if stored is not None:
                await self._challenge(stored)
                self._stand_by(stored, st)
            raise
        if self.journal is not None:  # crash journal: the verified bytes on disk before the seed leaves
            self.journal.save_result(st.deal_id, result_root=root, stdout=got.stdout, stderr=got.stderr,
                                     outputs=got.outputs, meta={"provider": t.provider, "price": t.price})
        if await self._reveal_seed(http, winner.endpoint, st) and self.journal is not None:
            self.journal.mark_revealed(st.deal_id)
        if stored is not None:
            self._stand_by(stored, st)
        st.mark("verified_ms")
        self._emit(Verified(st.deal_id, root, len(got.outputs)), st)
        out_dir = _verify.write_outputs(st.req.out_dir, got.outputs)
        self._emit(Paid(st.deal_id, t.price, opened.tx, opened.by or "provider"), st)
        timings = dict(st.marks) | {"total_ms": round((time.monotonic() - st.t0) * 1000, 3)}
        if st.started_at is not None:
            timings["ttfb_ms"] = round((st.started_at - st.created) * 1000, 3)
        return JobResult(st.deal_id, t.provider, winner.endpoint, t.price, t.collateral, got.outcome, got.exit_code,
                         got.fuel_used, root, got.stdout, got.stderr, got.outputs, True, "0x" + claimed.hex(),
                         opened.tx, status.commit_tx, opened.by or "provider", out_dir, st.started_at, timings)



def _check_map_options(max_price_per_cu: object, budget: object, tasks_per_deal: object, max_attempts: object,
                       speculate_after: object) -> None:
    """``SpecError`` naming the first unusable ``Market.map`` option."""
    def whole(value: object, *, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not whole(max_price_per_cu, low=0):
        raise SpecError(f"max_price_per_cu must be a non-negative integer (base units per CU), got "
                        f"{max_price_per_cu!r}", field="max_price_per_cu")
    if budget is not None and not whole(budget, low=0):
        raise SpecError(f"budget must be a non-negative integer (base units), got {budget!r}", field="budget")
    if tasks_per_deal is not None and not (whole(tasks_per_deal, low=1) and tasks_per_deal <= MAX_TASKS):
        raise SpecError(f"tasks_per_deal must be an integer from 1 to {MAX_TASKS}, got {tasks_per_deal!r}",
                        field="tasks_per_deal")
    if not whole(max_attempts, low=1):
        raise SpecError(f"max_attempts must be a positive integer, got {max_attempts!r}", field="max_attempts")
    if speculate_after is not None and (isinstance(speculate_after, bool)
                                        or not isinstance(speculate_after, (int, float)) or speculate_after <= 0):
        raise SpecError(f"speculate_after must be a positive number (times the median batch time) or None, got "
                        f"{speculate_after!r}", field="speculate_after")
