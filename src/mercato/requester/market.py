"""``Market``: the requester's one object — escrow, the bid round, the deal, the verified result.

    >>> async with Market.connect(settings) as m:                       # doctest: +SKIP
    ...     result = await m.run(load_job_toml("job.toml"))
    ...     print(result.stdout.decode(), result.price)

``run`` asks every qualifying provider at once, picks the winner by ``matching``, releases every
other bid (``DELETE /v1/bids/{id}``, fire-and-forget, so the losers' lanes free at once), hands
the winner a signed acceptance and the blobs at once (optimistic start) while opening the deal
on-chain, waits for the seal, then downloads and verifies every byte against it. On a real
node it then stands by each deal until its lottery and audit are over (``requester._audits``):
it draws the deal if the provider does not, and pushes the job to every auditor drawn for it,
so a provider cannot pass an audit by hiding its job; ``aclose`` waits for that (at most
``audit_wait_s``, default 300 s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

import httpx
from pydantic import ValidationError

from mercato.chain import Deployment, MarketClient, connect
from mercato.chain.api import MarketApi, PendingWithdrawal, Tx
from mercato.chain.keys import Unlocker
from mercato.config import Settings
from mercato.domain.deals import Deal, Terms
from mercato.domain.jobs import JobSpec
from mercato.domain.wire import AcceptMsg, AuditJobMsg, DealStatusMsg, SeedMsg, TermsMsg, new_id
from mercato.domain.wire import Rfq as RfqMsg
from mercato.errors import (
    BalanceTooLow,
    BidReplayed,
    ChainError,
    DeadlineNotPassed,
    LaneBusy,
    MercatoError,
    ProviderFailed,
    ProviderMissedDeadline,
    ResultMismatch,
    SpecError,
    WithdrawalNotReady,
)
from mercato.matching import Ask, Offer, ProviderFacts, choose_winner, score_reputation
from mercato.requester import _auction, _verify
from mercato.requester._audits import AuditSupport
from mercato.requester.events import (
    Accepted,
    Balance,
    BidsCollected,
    Committed,
    Event,
    EventCallback,
    JobResult,
    Paid,
    ProviderView,
    Running,
    Verified,
    WinnerChosen,
)
from mercato.requester.history import JobHistory, JobRecord
from mercato.requester.money import format_musd
from mercato.requester.request import DEFAULT_MAX_INPUT_BYTES, JobRequest
from mercato.verification.lottery import new_seed, seed_hash

__all__ = ["Market"]

log = logging.getLogger("mercato.requester")

_DONE = ("committed", "finalized")
_GAVE_UP = ("failed", "expired", "reclaimed")


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

    def mark(self, name: str) -> None:
        self.marks[name] = round((time.monotonic() - self.t0) * 1000, 3)


class Market:
    """The market seen by one requester account (``api.address``). Use as an async context manager."""

    def __init__(self, api: MarketApi, *, bid_window: float = 0.25, open_on_chain: bool = True,
                 on_event: EventCallback | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 history: JobHistory | None = None, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
                 poll_interval: float = 0.02, max_poll_interval: float = 0.5, clock_slack_s: int = 30,
                 http_timeout: float = 30.0, threaded: bool | None = None, release_timeout: float = 2.0,
                 serve_audits: bool | None = None, audit_wait_s: float = 300.0) -> None:
        self.api = api
        self._floor: int | None = None  # the market's audit_floor_bps, once read
        self.release_timeout = release_timeout  # per DELETE /v1/bids/{id} sent to a losing provider
        self._releases: set[asyncio.Task[None]] = set()
        self.bid_window = bid_window
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
        client = MarketClient.from_deployment(w3, dep, key, gas_margin=s.gas_margin,
                                              timeout=s.tx_timeout)
        if settings is not None:
            options.setdefault("history", JobHistory(settings.home / "requester.sqlite"))
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
            self._http = httpx.AsyncClient(transport=self._transport, timeout=self._http_timeout,
                                           limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        return self._http

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args) if self._threaded else fn(*args)

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
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
        return result

    def _record(self, st: _Job, outcome: str, *, error: str = "", root: str = "", open_tx: str = "") -> None:
        if self.history is None:
            return
        ttfb = (st.started_at - st.created) * 1000 if st.started_at else None
        self.history.record(JobRecord(st.created, st.req.name, st.req.spec.spec_hash(), outcome, st.deal_id,
                                      st.provider, st.price, root, open_tx, ttfb,
                                      (time.monotonic() - st.t0) * 1000, error))

    def _check_sizes(self, req: JobRequest) -> int:
        refs = {ref: "workload" for ref in req.spec.blob_refs()[:1]} | {h: f"input {n!r}" for n, h in req.spec.inputs}
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
        floor = req.collateral_floor
        balance_t = asyncio.ensure_future(self._call(api.balance_of))
        facts, chain_now = await asyncio.gather(_auction.registry_facts(api, self._call), self._now())
        targets = [f for f in facts.values() if f.registered and f.endpoint and f.free_stake >= floor
                   and f.address.lower() not in req.exclude_providers]  # redundancy: k distinct providers
        if not targets:
            raise _auction.no_targets_error(len(facts), floor)
        spec_hash = req.spec.spec_hash()
        audit_bps = req.audit_bps if req.audit_bps is not None else await self._audit_floor()
        st.seed = new_seed()
        committed_seed = seed_hash(st.seed)
        rfq = RfqMsg(rfq_id=new_id(), requester=api.address, chain_id=api.chain_id, market=api.market,
                     spec=req.spec.to_json(), spec_hash=spec_hash, max_price=req.max_price, min_collateral=floor,
                     deadline_s=req.deadline_s, accept_window_s=req.accept_window_s, input_bytes=total,
                     seed_hash="0x" + committed_seed.hex(), audit_bps=audit_bps, audit_fee=req.fee)
        ask = Ask(api.address, bytes.fromhex(spec_hash.removeprefix("sha256:")), req.max_price, floor,
                  chain_now + req.deadline_s, chain_now + req.accept_window_s, self.clock_slack_s,
                  committed_seed, audit_bps, req.fee)
        rnd = await _auction.collect_bids(self._client(), targets, rfq, ask, window,
                                          chain_id=api.chain_id, market=api.market)
        st.mark("bids_ms")
        self._emit(BidsCollected(rnd.asked, rnd.answered, len(rnd.offers), dict(rnd.causes), st.marks["bids_ms"]))
        if not rnd.offers:
            self._release(rnd.others(None))
            raise _auction.no_bids_error(rnd, window=window, max_price=req.max_price)
        winner = await self._choose(rnd.offers, facts)
        t = winner.terms
        st.deal_id, st.provider, st.price = "0x" + t.deal_id.hex(), t.provider, t.price
        self._release(rnd.others(st.deal_id))  # the losers' lanes free at once; the winner does not wait
        others = [o.terms.price for o in rnd.offers if o.provider != t.provider]
        self._emit(WinnerChosen(t.provider, winner.endpoint, t.price, t.collateral, st.deal_id,
                                min(others) if others else None))
        balance = await balance_t
        if balance < t.escrow:
            self._release([(winner.endpoint, st.deal_id)])
            raise BalanceTooLow(f"your escrow balance {format_musd(balance)} mUSD does not cover the winning "
                                f"price {format_musd(t.price)} mUSD plus the audit fee {format_musd(t.audit_fee)} "
                                f"mUSD: run `mercato deposit {format_musd(t.escrow - balance)}` or more",
                                balance=balance, price=t.escrow)
        return await self._deal(st, winner, chain_now)

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
        open_task = asyncio.ensure_future(self._open(t, winner.signature)) if self.open_on_chain else None
        t_accept = time.monotonic()
        try:
            uploaded = await self._hand_over(http, winner.endpoint, st, t, acceptance)
            st.mark("accepted_ms")
            self._emit(Accepted(st.deal_id, uploaded))
        except (httpx.HTTPError, ProviderFailed) as exc:
            if open_task is None:
                raise ProviderFailed(f"provider {t.provider} refused the acceptance or the upload ({exc}); "
                                     "no deal was opened, nothing was charged: run the job again",
                                     provider=t.provider, deal_id=st.deal_id) from None
        local_deadline = t_accept + (t.deadline - chain_now) + 2.0
        status = await self._await_commit(http, winner.endpoint, st, t, local_deadline, open_task)
        opened = await open_task if open_task is not None else _Opened("provider")
        if status is None or status.state not in _DONE:
            await self._missed(st, t, opened, status, local_deadline)
        assert status is not None
        return await self._finish(st, winner, status, opened, chain_now)

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

    async def _hand_over(self, http: httpx.AsyncClient, endpoint: str, st: _Job, t: Terms, sig: bytes) -> int:
        base = endpoint.rstrip("/")
        accept = AcceptMsg(deal_id=st.deal_id, terms=TermsMsg.of(t), acceptance_signature="0x" + sig.hex())
        blobs = self._blobs(st)
        answers = await asyncio.gather(
            http.post(f"{base}/v1/deals/{st.deal_id}/accept", json=accept.model_dump(mode="json")),
            *(http.put(f"{base}/v1/blobs/{ref}", content=data) for ref, data in blobs.items()))
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
                    self._emit(Running(st.deal_id, status.started_at))
                if status.state in _DONE and status.seal and status.salt:
                    st.mark("committed_ms")
                    self._emit(Committed(st.deal_id, status.seal, status.commit_tx))
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
            f"{format_musd(refund)} mUSD refunded and {format_musd(penalty)} mUSD of its collateral paid to you "
            "— run the job again", provider=t.provider, deal_id=st.deal_id, refund=refund, penalty=penalty,
            reclaim_tx="0x" + tx.tx_hash.hex())

    async def _audit_floor(self) -> int:
        """The market's lowest audit probability (read once): the default a job asks for."""
        if self._floor is None:
            params = await self._call(self.api.parameters)  # type: ignore[attr-defined]
            self._floor = int(params["audit_floor_bps"])
        return self._floor

    async def _reveal_seed(self, http: httpx.AsyncClient, endpoint: str, st: _Job) -> None:
        """Give the provider the lottery seed so it can run ``draw`` (docs/SPEC.md §14.3). A failure
        costs nothing but time: an undrawn deal is audited by default after its draw window."""
        try:
            resp = await http.post(f"{endpoint.rstrip('/')}/v1/deals/{st.deal_id}/seed",
                                   json=SeedMsg(seed="0x" + st.seed.hex()).model_dump())
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("could not reveal the lottery seed", extra={"deal_id": st.deal_id, "error": str(exc)})

    async def _challenge(self, deal: Deal) -> None:
        """The result does not open the seal on-chain: send the deal to audit (the escrowed fee
        pays), so the provider must reveal a result that opens its seal to an auditor or lose its
        stake. A challenge that cannot be sent (window over, already audited) is logged."""
        try:
            await self._call(self.api.challenge, deal)
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
        t, http, limits = winner.terms, self._client(), st.req.spec.limits
        got = await _verify.download(http, winner.endpoint, status, (limits.stdout_bytes, limits.output_bytes))
        salt = bytes.fromhex((status.salt or "").removeprefix("0x"))
        claimed = bytes.fromhex((status.seal or "").removeprefix("0x"))
        stored = await self._seals.committed(t, chain_now - self.clock_slack_s, claimed)
        if stored is None and opened.error is not None:
            raise opened.error
        onchain = stored.seal if stored is not None else None
        try:
            root = _verify.verify(got, salt=salt, onchain_seal=onchain, provider=t.provider, deal_id=st.deal_id)
        except ResultMismatch:
            if stored is not None:
                await self._challenge(stored)
                self._stand_by(stored, st)
            raise
        await self._reveal_seed(http, winner.endpoint, st)
        if stored is not None:
            self._stand_by(stored, st)
        st.mark("verified_ms")
        self._emit(Verified(st.deal_id, root, len(got.outputs)))
        out_dir = _verify.write_outputs(st.req.out_dir, got.outputs)
        self._emit(Paid(st.deal_id, t.price, opened.tx, opened.by or "provider"))
        timings = dict(st.marks) | {"total_ms": round((time.monotonic() - st.t0) * 1000, 3)}
        if st.started_at is not None:
            timings["ttfb_ms"] = round((st.started_at - st.created) * 1000, 3)
        return JobResult(st.deal_id, t.provider, winner.endpoint, t.price, t.collateral, got.outcome, got.exit_code,
                         got.fuel_used, root, got.stdout, got.stderr, got.outputs, True, "0x" + claimed.hex(),
                         opened.tx, status.commit_tx, opened.by or "provider", out_dir, st.started_at, timings)

