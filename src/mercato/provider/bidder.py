"""The bid engine: an RFQ becomes a signed bid on a reserved lane, or a reasoned decline.

    answer = await bidder.answer(rfq)       # RfqAnswer(bid=BidMsg(...)) or (decline=DeclineMsg(...))

Checks run cheapest first (chain, spec, runtime, limits, price); the lane and the collateral
are reserved under one lock, so concurrent RFQs never get the same lane and never promise
the same free stake twice. Pricing: ``cu_cap = spec.cu_cap()`` (the fuel cap in whole CUs,
times the tasks of a batch), ``price = price_per_cu × cu_cap``,
``collateral = max(rfq.min_collateral, price × factor)``.

Batches (docs/SPEC.md §17): each task is held to the limits as a plain job is; a batch of more
than ``max_tasks_per_deal`` tasks is declined (``limits``). ``quote_bulk`` answers a
``BulkRfq`` with a signed ``BulkQuote``: a price per CU priced as if every lane it offers
(``capacity``: the free lanes, at most one per task) were busy already, so the price holds
while the requester fills them; it is kept in memory until its expiry, and an ``Rfq`` naming
it (``quote_id``) from the same requester for the same workload is priced at no more than it.

Holds (docs/SPEC.md §13): a bid holds its lane only while it can still win: until its requester
releases it or ``bid_hold_s`` after it was signed (``provider.holds``); a late acceptance still
takes it while its lane is free and unused since (``retake``).

Terms that could force a miss (docs/SPEC.md §13, "Terms a provider refuses"): the requester may open
the bid on-chain at any moment up to its expiry and reclaims ``miss_penalty_bps`` of the collateral
if no seal lands by the deadline, so the bidder declines (``expiry``) an RFQ whose expiry leaves less
than ``run_estimate_s(spec) + min_run_margin_s`` before the deadline, or lies more than
``max_expiry_s`` ahead (unless ``allow_batch_expiry_at_deadline`` and the RFQ is a batch priced by
a live bulk quote); (``collateral``) a collateral over ``max_collateral``, or over
``collateral_ratio_floor`` and ``max_collateral_ratio`` times the price; and (``bond``) a deal that
would take the miss penalties of the deals that can still miss over ``max_miss_exposure``.

Container jobs (``runtime = "container"``) are admitted by the container runtime's ``admit``
(engine present, image obtainable, reservation within ``[container]`` caps, GPUs satisfiable:
declines ``runtime``, ``image``, ``limits``, ``no_gpu``) and priced per reserved
resource-second (``pricing.container_price``); their ``price_per_cu`` in the bid is 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass
from fractions import Fraction

from eth_utils import is_address

from mercato.domain.deals import Terms, job_leaf
from mercato.domain.jobs import CONTAINER_RUNTIME, RUNTIMES, JobSpec
from mercato.domain.wire import (
    BidMsg,
    BulkAnswer,
    BulkQuote,
    BulkRfq,
    DeclineMsg,
    Rfq,
    RfqAnswer,
    TermsMsg,
    bulk_quote_message,
    new_id,
)
from mercato.errors import (
    GpuUnavailable,
    ImageRejected,
    MercatoError,
    PricingError,
    RuntimeUnavailable,
    SpecError,
)
from mercato.provider.chainio import ChainIO
from mercato.provider.config import ProviderConfig
from mercato.provider.metrics import Metrics
from mercato.provider.pricing import PricingStrategy, ResourceRates, container_price
from mercato.provider.holds import Holds
from mercato.provider.store import DealRecord, Store
from mercato.verification.bond import BondParams, bond_ok, deals_on_value, min_stake, next_largest_price

__all__ = ["Bidder", "LiveQuote", "Quote", "run_estimate_s"]

log = logging.getLogger("mercato.provider.bidder")
_MAX_AMOUNT = 2**96
MAX_LIVE_QUOTES = 4096  # bulk quotes kept at once; the oldest go first when more are asked for


@dataclass(frozen=True, slots=True)
class Quote:
    """What a job costs here: price per CU, CUs at the fuel cap, total price and collateral."""

    price_per_cu: int
    cu_cap: int
    price: int
    collateral: int


@dataclass(frozen=True, slots=True)
class LiveQuote:
    """A bulk quote this agent gave and still honours: to whom, for what workload, at what
    price per CU, until when (chain time)."""

    requester: str  # lowercase
    workload: str
    price_per_cu: int
    expiry: int


def run_estimate_s(spec: JobSpec, cu_per_s: float) -> float:
    """The longest this job may run here, in seconds: its fuel cap at ``cu_per_s`` CU a second, but
    never more than its wall clock (the sandbox stops it there and commits that outcome), per task
    of a batch (its tasks run one after another). A container job burns no fuel: its wall clock::

        run_estimate_s(JobSpec(..., limits=Limits(fuel=5 * 10**9, wall_clock_s=300)), 1.0)   # 5.0
    """
    tasks = max(1, len(spec.tasks))
    wall = spec.limits.wall_clock_s * tasks
    if spec.runtime == CONTAINER_RUNTIME:
        return wall
    return min(wall, spec.cu_cap() / cu_per_s)


class _Decline(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Bidder:
    """Answers RFQs for one agent."""

    def __init__(self, cfg: ProviderConfig, store: Store, chain: ChainIO, strategy: PricingStrategy,
                 metrics: Metrics) -> None:
        self.cfg = cfg
        self.store = store
        self.chain = chain
        self.strategy = strategy
        self.metrics = metrics
        self._lock = asyncio.Lock()
        # set by the agent when it offers containers: raises why this machine cannot run the spec
        self.admit_container: Callable[[JobSpec], object] | None = None
        self._bond: BondParams | bool | None = None  # the bond rule's parameters, once read (False: none)
        self._miss_bps: int | None = None  # the market's miss_penalty_bps, once read
        self.live_quotes: dict[str, LiveQuote] = {}  # quote_id -> the bulk quote, oldest first
        self.holds = Holds(store, metrics)  # each bid frees its lane after cfg.bid_hold_s unless accepted

    def utilization(self) -> Fraction:
        """Busy lanes over all lanes."""
        return Fraction(self.store.busy_lanes(self.cfg.lanes), self.cfg.lanes)

    async def answer(self, rfq: Rfq) -> RfqAnswer:
        """A signed bid with a lane reserved for it, or a decline that says what would work."""
        try:
            spec = self._check(rfq)
            if spec.runtime == CONTAINER_RUNTIME:
                await self._admit_container(spec)
            await self._check_timing(rfq, spec)
            quote = await self.quote(rfq, spec)
            self._check_collateral(quote)
            bid = await self._reserve_and_sign(rfq, spec, quote)
        except _Decline as d:
            self.metrics.declines.labels(code=d.code).inc()
            log.info("declined", extra={"rfq_id": rfq.rfq_id, "code": d.code, "reason": d.reason})
            return RfqAnswer(decline=DeclineMsg(rfq_id=rfq.rfq_id, code=d.code, reason=d.reason))  # type: ignore[arg-type]
        self.metrics.bids.inc()
        log.info("bid", extra={"rfq_id": rfq.rfq_id, "deal_id": bid.deal_id, "lane": bid.terms.lane,
                               "price": bid.terms.price, "collateral": bid.terms.collateral})
        return RfqAnswer(bid=bid)

    def _check(self, rfq: Rfq) -> JobSpec:
        self._check_parties(rfq)
        seed_hash = rfq.seed_hash.removeprefix("0x")
        if len(seed_hash) != 64 or not all(c in "0123456789abcdefABCDEF" for c in seed_hash) or int(seed_hash, 16) == 0:
            raise _Decline("spec", "seed_hash must be the 0x-hex keccak256 of your 32-byte lottery seed")
        spec = self._spec_of(rfq)
        self._check_limits(spec)
        cfg = self.cfg
        if len(spec.tasks) > cfg.max_tasks_per_deal:
            raise _Decline("limits", f"the batch holds {len(spec.tasks)} tasks, over this provider's "
                                     f"{cfg.max_tasks_per_deal} per deal: split it into batches of at most "
                                     f"{cfg.max_tasks_per_deal} tasks")
        if rfq.input_bytes > cfg.max_input_bytes:
            raise _Decline("inputs", f"{rfq.input_bytes} bytes of workload and inputs is over this provider's "
                                     f"{cfg.max_input_bytes}: shrink the inputs or split the job")
        return spec

    async def _check_timing(self, rfq: Rfq, spec: JobSpec) -> None:
        """Decline an expiry that lets the requester force a miss: opened on-chain at its expiry, the
        deal must still leave the job's run (``run_estimate_s``) plus ``min_run_margin_s`` before the
        deadline; and an expiry further ahead than ``max_expiry_s`` (the bid stays usable that long).
        With ``allow_batch_expiry_at_deadline`` neither applies to a batch priced by a live bulk
        quote this agent gave the requester for the workload (``mercato map`` asks each batch's
        expiry at its deadline, so that the provider can run it and then ``open_and_commit``)."""
        cfg = self.cfg
        if (cfg.allow_batch_expiry_at_deadline and rfq.quote_id is not None
                and await self.live_quote(rfq.quote_id, rfq.requester, spec.workload) is not None):
            return
        window = min(rfq.accept_window_s, rfq.deadline_s)  # the bid's expiry is now + this, at most its deadline
        if window > cfg.max_expiry_s:
            raise _Decline("expiry", f"accept_window_s {rfq.accept_window_s} is over this provider's "
                                     f"{cfg.max_expiry_s} s: a bid here may be accepted at most {cfg.max_expiry_s} s "
                                     "after it is signed; lower accept_window_s")
        left = rfq.deadline_s - window  # what is left to run when the requester opens at the expiry
        run = run_estimate_s(spec, cfg.cu_per_s)
        need = math.ceil(run + cfg.min_run_margin_s)
        if left < need:
            raise _Decline("expiry", f"the bid's expiry leaves {left} s before its deadline, less than this "
                                     f"provider needs to run the job when it is opened at the expiry ({run:g} s for "
                                     f"the job's limits, plus a {cfg.min_run_margin_s:g} s margin): make "
                                     f"deadline_s - accept_window_s at least {need} (raise deadline_s or lower "
                                     "accept_window_s), or lower limits.fuel / limits.wall_clock_s")

    def _check_collateral(self, quote: Quote) -> None:
        """Decline collateral over this provider's caps: ``max_collateral``, and above
        ``collateral_ratio_floor`` ``max_collateral_ratio`` times the price."""
        cfg = self.cfg
        if quote.collateral > cfg.max_collateral:
            raise _Decline("collateral", f"the collateral asked, {quote.collateral}, is over this provider's cap of "
                                         f"{cfg.max_collateral} per deal: lower min_collateral")
        cap = max(cfg.collateral_ratio_floor, math.floor(Fraction(str(cfg.max_collateral_ratio)) * quote.price))
        if quote.collateral > cap:
            raise _Decline("collateral", f"the collateral asked, {quote.collateral}, is over {cfg.max_collateral_ratio}"
                                         f" times this bid's price {quote.price} (and over the "
                                         f"{cfg.collateral_ratio_floor} this provider posts whatever the price): lower "
                                         f"min_collateral to at most {cap}")

    def _check_parties(self, rfq: Rfq | BulkRfq) -> None:
        """The RFQ is for this chain and market, from an address."""
        market = self.chain.market
        if rfq.chain_id != market.chain_id or rfq.market.lower() != market.market.lower():
            raise _Decline("chain", f"this provider settles on chain {market.chain_id} at market {market.market}; "
                                    f"the RFQ names chain {rfq.chain_id} at {rfq.market}: check your deployment")
        if not is_address(rfq.requester):
            raise _Decline("spec", f"requester {rfq.requester!r} is not an address: send your 0x account address")

    def _spec_of(self, rfq: Rfq | BulkRfq) -> JobSpec:
        """The RFQ's spec, valid and matching its ``spec_hash``, on a runtime this provider runs."""
        try:
            spec = JobSpec.from_json(rfq.spec)
        except SpecError as exc:
            raise _Decline("spec", f"the job spec does not validate: {exc}") from None
        if spec.spec_hash() != rfq.spec_hash:
            raise _Decline("spec", f"spec_hash {rfq.spec_hash} does not match the spec (it hashes to "
                                   f"{spec.spec_hash()}): send JobSpec.spec_hash() of the spec you send")
        if spec.runtime not in self.cfg.runtimes:
            raise _Decline("runtime", f"this provider runs {', '.join(self.cfg.runtimes)}, not {spec.runtime}: "
                                      "ask providers whose registry entry lists it")
        return spec

    def _check_limits(self, spec: JobSpec) -> None:
        """One execution's caps (each task's, for a batch) are within this provider's."""
        cfg = self.cfg
        if spec.limits.fuel > cfg.max_fuel and spec.runtime != CONTAINER_RUNTIME:  # containers burn no fuel
            raise _Decline("limits", f"fuel cap {spec.limits.fuel} is over this provider's {cfg.max_fuel}: "
                                     "lower limits.fuel or split the job")
        if spec.limits.memory_bytes > cfg.max_memory_bytes:
            raise _Decline("limits", f"memory cap {spec.limits.memory_bytes} bytes is over this provider's "
                                     f"{cfg.max_memory_bytes}: lower limits.memory_bytes")

    async def _admit_container(self, spec: JobSpec) -> None:
        """Decline a container job this machine cannot run (engine calls run off the event loop)."""
        cap = self.cfg.container
        if spec.limits.wall_clock_s > cap.max_wall_clock_s:
            raise _Decline("limits", f"wall clock {spec.limits.wall_clock_s:g} s is over this provider's "
                                     f"{cap.max_wall_clock_s:g} s for containers: lower limits.wall_clock_s")
        if self.admit_container is None:
            raise _Decline("runtime", "this provider has no container engine configured: ask another provider")
        try:
            await asyncio.to_thread(self.admit_container, spec)
        except GpuUnavailable as exc:
            raise _Decline("no_gpu", f"{exc}: ask a provider whose registry entry lists such GPUs") from None
        except RuntimeUnavailable as exc:
            raise _Decline("runtime", f"this provider cannot run containers right now ({exc})") from None
        except ImageRejected as exc:
            raise _Decline("image", f"{exc}") from None
        except MercatoError as exc:
            raise _Decline("limits", f"{exc}") from None

    async def quote(self, rfq: Rfq | None, spec: JobSpec) -> Quote:
        """Price ``spec`` at the current utilization (a price script runs off the event loop)."""
        if spec.runtime == CONTAINER_RUNTIME:
            return self._container_quote(rfq, spec)
        per_cu = await self._price_per_cu(rfq, self.utilization())
        if rfq is not None and rfq.quote_id is not None:
            quoted = await self.live_quote(rfq.quote_id, rfq.requester, spec.workload)
            if quoted is not None:
                per_cu = min(per_cu, quoted.price_per_cu)
        cu_cap = spec.cu_cap()
        price = per_cu * cu_cap
        factor = self.cfg.pricing.collateral_factor
        collateral = max(rfq.min_collateral if rfq else 0, math.floor(price * factor))
        if rfq is not None and price > rfq.max_price:
            of = f"{len(spec.tasks)} tasks × {cu_cap // len(spec.tasks)} CU" if spec.tasks else f"{cu_cap} CU"
            raise _Decline("price", f"this provider asks {per_cu} per CU, {price} for the {of} of the "
                                    f"fuel cap; raise max_price to at least {price} or lower limits.fuel")
        if price >= _MAX_AMOUNT or collateral >= _MAX_AMOUNT:
            raise _Decline("price", "the price or collateral does not fit the contract's 96-bit amounts: "
                                    "lower limits.fuel or min_collateral")
        return Quote(per_cu, cu_cap, price, collateral)

    async def _price_per_cu(self, rfq: Rfq | None, utilization: Fraction) -> int:
        """The strategy's price per CU at ``utilization`` (a price script runs off the event loop)."""
        try:
            return await asyncio.to_thread(self.strategy, rfq, utilization)
        except PricingError as exc:
            log.error("pricing failed", extra={"error": str(exc)})
            raise _Decline("price", "this provider cannot price jobs right now (its price script failed); "
                                    "try another provider") from None

    # bulk quotes ----------------------------------------------------------------------------
    async def quote_bulk(self, rfq: BulkRfq) -> BulkAnswer:
        """A signed unit price and capacity for a run of ``rfq.tasks`` tasks of one workload,
        or a decline that says what would work. Nothing is reserved: the requester then asks
        for each batch with an ``Rfq`` naming the quote."""
        try:
            quote = await self._bulk_quote(rfq)
        except _Decline as d:
            self.metrics.declines.labels(code=d.code).inc()
            log.info("bulk quote declined", extra={"rfq_id": rfq.rfq_id, "code": d.code, "reason": d.reason})
            return BulkAnswer(decline=DeclineMsg(rfq_id=rfq.rfq_id, code=d.code, reason=d.reason))  # type: ignore[arg-type]
        self.metrics.bulk_quotes.inc()
        log.info("bulk quote", extra={"rfq_id": rfq.rfq_id, "quote_id": quote.quote_id, "tasks": rfq.tasks,
                                      "price_per_cu": quote.price_per_cu, "capacity": quote.capacity,
                                      "expiry": quote.expiry})
        return BulkAnswer(quote=quote)

    async def _bulk_quote(self, rfq: BulkRfq) -> BulkQuote:
        self._check_parties(rfq)
        spec = self._spec_of(rfq)
        if spec.tasks:
            raise _Decline("spec", "a bulk RFQ's spec is the base spec of one task, without tasks: send "
                                   "the spec the batches share and the number of tasks in 'tasks'")
        if spec.runtime not in RUNTIMES:
            raise _Decline("spec", f"batches run on the deterministic runtimes ({', '.join(RUNTIMES)}), not "
                                   f"{spec.runtime}: ask for each container job with an ordinary RFQ")
        self._check_limits(spec)
        cfg = self.cfg
        busy = self.store.busy_lanes(cfg.lanes)
        capacity = min(cfg.lanes - busy, rfq.tasks)
        if capacity <= 0:
            raise _Decline("capacity", f"all {cfg.lanes} lanes of this provider are busy: retry in a little "
                                       "while or ask another provider")
        # priced as if the lanes offered were busy already: the quote holds while they fill
        per_cu = await self._price_per_cu(None, Fraction(busy + capacity, cfg.lanes))
        if per_cu > rfq.max_price_per_cu:  # below 2**96 (the message's bound), so the price fits
            raise _Decline("price", f"this provider asks {per_cu} per CU for a run of {capacity} lane(s); raise "
                                    f"max_price_per_cu to at least {per_cu} or ask another provider")
        now = await self.chain.now()
        quote = BulkQuote(rfq_id=rfq.rfq_id, quote_id=new_id(), provider=self.chain.address, price_per_cu=per_cu,
                          capacity=capacity, max_tasks_per_deal=cfg.max_tasks_per_deal,
                          expiry=now + cfg.bulk_quote_ttl_s)
        signature = self.chain.market.sign_text(bulk_quote_message(quote))  # type: ignore[attr-defined]
        self._keep(quote.quote_id, LiveQuote(rfq.requester.lower(), spec.workload, per_cu, quote.expiry), now)
        return quote.model_copy(update={"signature": "0x" + bytes(signature).hex()})

    def _keep(self, quote_id: str, quote: LiveQuote, now: int) -> None:
        """Remember a quote; expired ones (and the oldest, past ``MAX_LIVE_QUOTES``) are forgotten."""
        self._prune(now)
        while len(self.live_quotes) >= MAX_LIVE_QUOTES:
            self.live_quotes.pop(next(iter(self.live_quotes)))
        self.live_quotes[quote_id] = quote

    def _prune(self, now: int) -> None:
        for quote_id in [q for q, live in self.live_quotes.items() if live.expiry < now]:
            del self.live_quotes[quote_id]

    async def live_quote(self, quote_id: str, requester: str, workload: str) -> LiveQuote | None:
        """The live bulk quote ``quote_id`` if it was given to ``requester`` for ``workload`` and
        has not expired; None otherwise (an RFQ naming it is then priced as usual)."""
        quote = self.live_quotes.get(quote_id)
        if quote is None:
            return None
        now = await self.chain.now()
        self._prune(now)
        if quote.expiry < now or quote.requester != requester.lower() or quote.workload != workload:
            return None
        return quote

    def _container_quote(self, rfq: Rfq | None, spec: JobSpec) -> Quote:
        """The resource-second price bound of a container job (``pricing.container_price``)."""
        p = self.cfg.pricing
        price = container_price(spec, ResourceRates.of(p), self.utilization(), p.utilization_markup)
        collateral = max(rfq.min_collateral if rfq else 0, math.floor(price * p.collateral_factor))
        if rfq is not None and price > rfq.max_price:
            raise _Decline("price", f"this provider asks {price} for the reservation (vCPU-s at "
                                    f"{p.price_per_vcpu_s}, GiB-s at {p.price_per_gib_s}, GPU-s at "
                                    f"{p.price_per_gpu_s}, over the whole wall clock); raise max_price to at "
                                    "least that or lower the limits")
        if price >= _MAX_AMOUNT or collateral >= _MAX_AMOUNT:
            raise _Decline("price", "the price or collateral does not fit the contract's 96-bit amounts: "
                                    "lower the limits or min_collateral")
        return Quote(0, 0, price, collateral)

    async def _reserve_and_sign(self, rfq: Rfq, spec: JobSpec, quote: Quote) -> BidMsg:
        now, _ = await asyncio.gather(self.chain.now(), self._check_escrow(rfq, quote))  # two reads at once
        async with self._lock:
            lane = self.store.reserve_lane(self.cfg.lanes)
            if lane is None:
                raise _Decline("capacity", f"all {self.cfg.lanes} lanes of this provider are busy: "
                                           "retry in a little while or ask another provider")
            idx, nonce = lane
            try:
                await self._check_stake(quote)
                rec = self._record(rfq, spec, quote, idx, nonce, now)
                self.store.insert(rec)
            except BaseException:
                self.store.release_lane(idx)
                raise
            self.holds.start(rec.deal_id, self.cfg.bid_hold_s)
        return BidMsg(rfq_id=rfq.rfq_id, terms=rec.terms_msg, signature=rec.bid_sig,
                      price_per_cu=quote.price_per_cu, deal_id=rec.deal_id)

    async def _check_stake(self, quote: Quote) -> None:
        """Decline a deal the free stake (less what unopened deals reserve) or the bond rule cannot carry."""
        free = await self.chain.read(self.chain.market.free_stake) - self.store.reserved_collateral()
        if free < quote.collateral:
            raise _Decline("collateral", f"this provider has {max(free, 0)} free stake, less than the "
                                         f"{quote.collateral} collateral asked: lower min_collateral or "
                                         "ask another provider")
        reserve = self.cfg.audit_reserve
        if free - quote.collateral < reserve:
            raise _Decline("collateral", f"this provider keeps {reserve} of its {free} free stake for audit duty "
                                         f"(audit_reserve) and the {quote.collateral} collateral asked would cut "
                                         "into it: lower min_collateral or ask another provider")
        await self._check_bond(quote)
        await self._check_exposure(quote)

    async def _check_exposure(self, quote: Quote) -> None:
        """Decline a deal that would take the miss penalties of this provider's deals that can still
        miss (signed, accepted, running or executed, not yet committed) over ``max_miss_exposure``."""
        bps = await self._miss_penalty_bps()
        held = (self.store.at_risk_collateral() + quote.collateral) * bps // 10_000
        if held > self.cfg.max_miss_exposure:
            raise _Decline("bond", f"this deal would put {held} of this provider's stake at risk of miss penalties "
                                   f"({bps / 100:g} % of the collateral of its deals not yet committed), over its cap "
                                   f"of {self.cfg.max_miss_exposure}: retry when its deals settle, lower "
                                   "min_collateral, or ask another provider")

    async def retake(self, rec: DealRecord, acceptance_sig: str) -> DealRecord | None:
        """Bid ``rec``, released at the end of its hold, accepted after all: ``accepted`` on its lane
        again if the lane is still free, no newer bid was signed on it and the stake still carries
        the deal (as at bidding); None otherwise::

            rec = await bidder.retake(store.get("0xabc…"), "0x…")
        """
        terms = rec.terms_obj
        async with self._lock:  # against bids reserving the lane or promising the stake meanwhile
            try:
                await self._check_stake(Quote(rec.price_per_cu, 0, terms.price, terms.collateral))
            except _Decline as d:
                log.info("late acceptance refused", extra={"deal_id": rec.deal_id, "reason": d.reason})
                return None
            return self.store.retake(rec.deal_id, acceptance_sig)

    async def _check_escrow(self, rfq: Rfq, quote: Quote) -> None:
        """Decline a requester whose escrow cannot pay this bid (price plus audit fee): a key with
        nothing deposited cannot hold this provider's lanes with RFQs (docs/SPEC.md §19)."""
        have = await self.chain.read(self.chain.market.balance_of, rfq.requester)
        need = quote.price + rfq.audit_fee
        if have < need:
            raise _Decline("escrow", f"your escrow balance {have} does not cover this bid's price {quote.price} "
                                     f"plus the audit fee {rfq.audit_fee}: deposit at least {need - have} more "
                                     "(`mercato deposit`)")

    def know_parameters(self, params: dict[str, Any]) -> None:
        """The market's parameters, read once (the agent does at start): the bond rule's part."""
        names = ("audit_floor_bps", "collusion_bps", "bond_lambda_bps")
        self._bond = BondParams(*(int(params[n]) for n in names)) if all(n in params for n in names) else False
        self._miss_bps = int(params.get("miss_penalty_bps", 10_000))  # unknown: the worst, all of it

    async def _miss_penalty_bps(self) -> int:
        """The share of a missed deal's collateral the requester reclaims (read once)."""
        if self._miss_bps is None:
            self.know_parameters(dict(await self.chain.read(self.chain.market.parameters)))  # type: ignore[attr-defined]
        return self._miss_bps if self._miss_bps is not None else 10_000

    async def _bond_params(self) -> BondParams | None:
        """The market's bond-rule parameters (read once); None on a market without the rule."""
        if self._bond is None:
            self.know_parameters(dict(await self.chain.read(self.chain.market.parameters)))  # type: ignore[attr-defined]
        return self._bond or None

    async def _check_bond(self, quote: Quote) -> None:
        """Decline a deal the stake cannot carry under the bond rule (docs/SPEC.md §14.6): the
        contract would refuse to open it (``deals: bond too small``). Bids not yet opened count
        as in flight, since any of them may open."""
        params = await self._bond_params()
        if params is None:
            return
        market = self.chain.market
        info, (value, _, largest) = await asyncio.gather(self.chain.read(market.provider_info),
                                                         self.chain.read(market.in_flight))  # type: ignore[attr-defined]
        pending_value, _, pending_largest = self.store.reserved_value()
        # the rule counts deals on value (class 4): N_eff = max(1, V // m), m the largest price in flight
        v = value + pending_value + quote.price
        largest = next_largest_price(largest, value, max(pending_largest, quote.price))
        n = deals_on_value(v, largest)
        if not bond_ok(info.stake, n, v, params):
            raise _Decline("bond", f"this provider's stake of {info.stake} cannot carry {n} deals worth {v} in "
                                   f"flight (the bond rule needs {min_stake(n, v, params)}): retry when its "
                                   "deals settle, lower max_price, or ask another provider")

    def _record(self, rfq: Rfq, spec: JobSpec, quote: Quote, lane: int, nonce: int, now: int) -> DealRecord:
        deadline = now + rfq.deadline_s
        terms = Terms(
            requester=rfq.requester, provider=self.chain.address, lane=lane, nonce=nonce,
            jobs_root=job_leaf(bytes.fromhex(rfq.spec_hash.removeprefix("sha256:")), quote.price, quote.collateral),
            jobs=1, price=quote.price, collateral=quote.collateral, deadline=deadline,
            expiry=min(now + rfq.accept_window_s, deadline),
            seed_hash=bytes.fromhex(rfq.seed_hash.removeprefix("0x")), audit_bps=rfq.audit_bps,
            audit_fee=rfq.audit_fee,
        )
        signature = self.chain.market.sign_bid(terms)
        return DealRecord(
            deal_id="0x" + terms.deal_id.hex(), rfq_id=rfq.rfq_id, lane=lane, nonce=nonce,
            terms=TermsMsg.of(terms).model_dump_json(), bid_sig="0x" + signature.hex(),
            spec=spec_json(spec), state="bid", price_per_cu=quote.price_per_cu,
        )


def spec_json(spec: JobSpec) -> str:
    """The spec as stored (canonical JSON)."""
    return json.dumps(spec.to_json(), sort_keys=True, separators=(",", ":"))
