"""``Market.map``: many tasks of one job on many providers — batch deals, failover, a budget.

    >>> run = market.map(load_job_toml("job.toml"), [Path("in/a.bin"), Path("in/b.bin")],
    ...                  max_price_per_cu=20_000, budget=50_000_000, ordered=True)   # doctest: +SKIP
    >>> async for task in run:                                                         # doctest: +SKIP
    ...     print(task.index, task.name, task.stdout)
    >>> run.summary.not_run, run.summary.spent                                         # doctest: +SKIP

One run, step by step (``Market`` supplies the bulk quotes and a function that buys one batch;
:class:`Scheduler` does the rest, and takes both as arguments so it can be tested without HTTP):

1. Every input becomes a ``domain.batch.Task`` (args appended, its own inputs, its own seed) and
   the whole run is checked before anything is sent (:func:`prepare_tasks`).
2. A bulk RFQ (``POST /v1/rfq/bulk``) asks every qualifying provider at once for a unit price,
   a capacity (tasks at once: free lanes) and a batch cap (:func:`collect_quotes`). The budget
   must cover every task at the cheapest quote, or ``BudgetTooLow`` before any deal.
3. Each time lanes are free, ``matching.allocate`` splits the queued tasks over the providers
   with free lanes (cheapest filled first, an even split by capacity among equal prices,
   reputation breaking ties) and each share is cut into batch deals, one per free lane. A batch
   is bought with the ordinary single-deal machinery, from that provider only, at its quote.
   Each batch's max cost (max price plus audit fee) is reserved against the budget first; a
   batch may go to a dearer provider only if the rest still fits in the budget at the cheapest.
4. A verified batch is split into one result per task (``domain.batch.split_outputs``) and
   streamed: as they come, or in input order with ``ordered``.
5. A batch that fails (provider gone, deadline missed, a result that does not verify) goes back
   to the queue for another provider and the provider gets no more batches; a mere decline
   (capacity, bond) only rests the provider a moment. A task in ``max_attempts`` failed batches
   is given up. Several batches run at once, so a slow one never holds up the others, and when
   nothing is left to queue a batch running far longer than the median is duplicated on an idle
   provider (if the budget allows): the first verified copy wins, the other is abandoned.
6. When the budget runs out (failed deals can eat it) no new batch starts, the batches in
   flight finish, and the summary says what was done, given up and never run. Nothing raises
   once the first batch is out: a run ends with its :class:`~mercato.requester.events.MapSummary`.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from mercato.domain.batch import MAX_TASKS, Task, TaskOutput, check_tasks
from mercato.domain.wire import BulkAnswer, BulkQuote, BulkRfq, bulk_quote_message
from mercato.errors import (
    BalanceTooLow,
    BudgetTooLow,
    ChainError,
    ContractRevert,
    InsufficientBalance,
    MercatoError,
    NoBids,
    ProviderDeclined,
    ProviderMissedDeadline,
    RequesterUnfunded,
    ResultMismatch,
    SpecError,
)
from mercato.matching import Bidder, ProviderFacts, Reputation, ReputationLike, allocate, score_reputation
from mercato.requester import _verify
from mercato.requester.events import (
    BatchCancelled,
    BatchDispatched,
    BatchDone,
    BatchFailed,
    Event,
    MapFinished,
    MapSummary,
    ProviderExcluded,
    ProviderTally,
    Spend,
    TaskResult,
    TasksQueued,
)
from mercato.requester.money import format_musd
from mercato.requester.request import DEFAULT_INPUT_NAME, JobRequest
from mercato.runtimes.blobs import content_hash

__all__ = [
    "DEFAULT_TASKS_PER_DEAL",
    "BatchOrder",
    "BatchResult",
    "BatchRunner",
    "Costs",
    "MapInput",
    "MapRun",
    "MapTask",
    "PreparedTasks",
    "ProviderQuote",
    "QuoteRound",
    "Requote",
    "Scheduler",
    "budget_too_low",
    "collect_quotes",
    "no_quotes_error",
    "prepare_tasks",
    "write_task",
]

log = logging.getLogger("mercato.requester")

DEFAULT_TASKS_PER_DEAL = 32  # a batch's size when the caller names none (and the quote allows it)
BUSY_REST_MAX_S = 4.0  # longest rest after "all lanes busy": a lane frees when one of its deals settles


# the tasks ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MapTask:
    """One task of a run, spelled out: ``args`` appended to the job's, ``inputs`` (name under
    /input -> bytes or a local file) added to the job's, and a ``name`` for its output folder."""

    args: tuple[str, ...] = ()
    inputs: Mapping[str, bytes | Path] = field(default_factory=dict)
    name: str = ""


# One item of ``Market.map``'s inputs: a MapTask; bytes or a Path (mounted as the input name,
# "task.in" by default); a list or tuple of strings (args); or a ready domain Task whose inputs'
# blobs the base job already holds.
MapInput = MapTask | Task | bytes | os.PathLike[str] | Sequence[str]


@dataclass(frozen=True, slots=True)
class PreparedTasks:
    """The run's tasks, their names, and the local files and bytes behind their inputs' hashes."""

    tasks: tuple[Task, ...]
    names: tuple[str, ...]
    files: dict[str, Path] = field(default_factory=dict)  # content hash -> local path
    blobs: dict[str, bytes] = field(default_factory=dict)  # content hash -> bytes

    def __len__(self) -> int:
        return len(self.tasks)


def prepare_tasks(inputs: Iterable[MapInput], *, base: JobRequest,
                  input_name: str = DEFAULT_INPUT_NAME) -> PreparedTasks:
    """Every input as a ``Task`` of ``base``'s spec, checked (``SpecError`` naming the task) before
    anything is sent: a valid input name, no clash with the base inputs, a deterministic runtime."""
    if base.spec.tasks:
        raise SpecError("the job is a batch already: give map the base job, and the tasks as inputs", field="tasks")
    if base.spec.runtime not in ("wasm", "python"):
        raise SpecError(f"map buys batch deals, which run on the deterministic runtimes (wasm, python), not "
                        f"{base.spec.runtime!r}: run such jobs one by one with Market.run", field="runtime")
    tasks: list[Task] = []
    wanted: list[tuple[str, bool, Path | None]] = []  # (name, given explicitly, source file)
    files: dict[str, Path] = {}
    blobs: dict[str, bytes] = {}
    known = {h for h, _ in base.files} | set(base.blobs)
    for i, item in enumerate(inputs):
        args: tuple[str, ...] = ()
        ins: Mapping[str, bytes | Path] = {}
        name, source = "", None
        if isinstance(item, Task):
            missing = [h for _, h in item.inputs if h not in known]
            if missing:
                raise SpecError(f"task {i}'s inputs {missing} are not among the job's files or blobs: pass "
                                "MapTask(inputs={name: bytes or Path}) instead", field="inputs")
            tasks.append(item)
            wanted.append((str(i), False, None))
            continue
        if isinstance(item, MapTask):
            args, ins, name = tuple(item.args), item.inputs, item.name
        elif isinstance(item, (bytes, bytearray)):
            ins = {input_name: bytes(item)}
        elif isinstance(item, str):
            raise SpecError(f"task {i} is the text {item[:40]!r}: pass Path(...) for an input file, or a list "
                            "of strings for arguments", field="inputs")
        elif isinstance(item, os.PathLike):
            source = Path(item)
            ins = {input_name: source}
        elif isinstance(item, Sequence) and all(isinstance(a, str) for a in item):
            args = tuple(item)
        else:
            raise SpecError(f"task {i} is a {type(item).__name__}: pass bytes, a Path, a list of argument "
                            "strings or a MapTask", field="inputs")
        pairs = []
        for input_, value in sorted(ins.items()):
            data = bytes(value) if isinstance(value, (bytes, bytearray)) else _read(Path(value), i)
            ref = content_hash(data)
            if isinstance(value, (bytes, bytearray)):
                blobs[ref] = data
            else:
                files[ref] = Path(value)
            pairs.append((input_, ref))
        tasks.append(Task(args, tuple(pairs)))
        wanted.append((name or (source.stem if source else str(i)), bool(name), source))
    if not tasks:
        raise SpecError("no tasks: give map at least one input", field="inputs")
    for i, task in enumerate(tasks):  # the batch rules on each task: args, input names, no clash
        try:
            check_tasks((task,), base.spec.inputs, base.spec.runtime)
        except SpecError as exc:
            raise SpecError(f"task {i}: {str(exc).replace('tasks[0] ', 'it ')}", field=exc.field) from None
    return PreparedTasks(tuple(tasks), _names(wanted), files, blobs)


def _read(path: Path, index: int) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read task {index}'s input file {path}: {exc.strerror}", field="inputs") from None


def _names(wanted: list[tuple[str, bool, Path | None]]) -> tuple[str, ...]:
    """Folder names for the tasks' outputs: given names (unique, path-safe), else the input
    file's stem (its full name where two stems collide), else the index."""
    for name, given, _ in wanted:
        if given and (name in (".", "..") or "/" in name or "\\" in name or len(name) > 200):
            raise SpecError(f"task name {name!r} cannot be a folder name: no slashes, '.' or '..'", field="inputs")
    given = [n for n, g, _ in wanted if g]
    if len(set(given)) != len(given):
        raise SpecError("two tasks have the same name: task names must be unique", field="inputs")
    names = [n for n, _, _ in wanted]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    names = [src.name if counts[n] > 1 and src is not None and not g else n for (n, g, src), n in zip(wanted, names)]
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return tuple(f"{n}.{i}" if seen[n] > 1 and not wanted[i][1] else n for i, n in enumerate(names))


# quotes and money -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProviderQuote:
    """A provider's bulk quote as the scheduler uses it (``expiry`` in unix seconds)."""

    provider: str
    endpoint: str
    quote_id: str
    price_per_cu: int
    capacity: int
    max_tasks_per_deal: int
    expiry: float
    reputation: ReputationLike = field(default_factory=Reputation)

    @property
    def score(self) -> Fraction:
        return score_reputation(self.reputation)


@dataclass(frozen=True, slots=True)
class Costs:
    """What a batch of ``tasks`` tasks may cost at a unit price: its max price (the price per CU
    times the batch's CU cap) plus its audit fee (``audit_fee_per_task`` per task, or by default
    the batch's max price: one re-execution at the price cap), both escrowed while it settles."""

    cu_per_task: int
    audit_fee_per_task: int | None = None

    def max_price(self, tasks: int, price_per_cu: int) -> int:
        return price_per_cu * self.cu_per_task * tasks

    def audit_fee(self, tasks: int, price_per_cu: int) -> int:
        if self.audit_fee_per_task is not None:
            return self.audit_fee_per_task * tasks
        return self.max_price(tasks, price_per_cu)

    def cost(self, tasks: int, price_per_cu: int) -> int:
        """The most ``tasks`` tasks can take from the budget at ``price_per_cu`` (linear in tasks)."""
        return self.max_price(tasks, price_per_cu) + self.audit_fee(tasks, price_per_cu)


def budget_too_low(budget: int, tasks: int, cheapest: int, costs: Costs) -> BudgetTooLow:
    """The up-front ``BudgetTooLow`` of a run of ``tasks`` tasks whose cheapest quote is ``cheapest``."""
    need = costs.cost(tasks, cheapest)
    return BudgetTooLow(
        f"your budget {format_musd(budget)} mUSD cannot cover the {tasks} task{'s' if tasks != 1 else ''} even at "
        f"the cheapest quote ({format_musd(cheapest)} mUSD per CU, {costs.cu_per_task} CU a task): that needs "
        f"{format_musd(need)} mUSD, each batch's max price plus its audit fee, held until it settles — raise the "
        f"budget to at least {format_musd(need)} mUSD, or run fewer tasks", budget=budget, needed=need)


# one batch ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BatchOrder:
    """What the batch runner is asked to buy: ``tasks`` (indices into the run) from the quote's
    provider, for at most ``max_price`` plus ``audit_fee``. ``attempt`` is unique to this try;
    a speculative duplicate shares its ``batch`` with the original."""

    batch: int
    attempt: int
    tasks: tuple[int, ...]
    quote: ProviderQuote
    max_price: int
    audit_fee: int
    speculative: bool = False

    @property
    def provider(self) -> str:
        return self.quote.provider


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A verified batch: its deal, its price and one output per task, in the order's order
    (``seeds``: the seed each task ran with, for replaying it; may be empty)."""

    deal_id: str
    price: int
    outputs: tuple[TaskOutput, ...]
    seeds: tuple[bytes, ...] = ()


BatchRunner = Callable[[BatchOrder], Awaitable[BatchResult]]
# fresh quotes for ``pending`` tasks, leaving out the providers named (lowercase): used when none is left
Requote = Callable[[int, frozenset[str]], Awaitable[Sequence[ProviderQuote]]]
EmitFn = Callable[[Event], None]


def _classify(exc: BaseException) -> str:
    """A failed batch's kind (see ``events.BatchFailed``)."""
    if isinstance(exc, ProviderDeclined):
        return "declined"
    if isinstance(exc, (BalanceTooLow, BudgetTooLow, SpecError, RequesterUnfunded, InsufficientBalance)):
        return "fatal"
    if isinstance(exc, ProviderMissedDeadline):
        return "missed"
    if isinstance(exc, ResultMismatch):
        return "mismatch"
    if isinstance(exc, ChainError) and not isinstance(exc, ContractRevert):
        return "error"
    return "failed"


# the scheduler --------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class _Seat:
    """One quoting provider during the run."""

    quote: ProviderQuote
    capacity: int
    in_flight: int = 0
    declines: int = 0  # in a row (but for capacity: see busy_declines)
    busy_declines: int = 0  # "all lanes busy" in a row: sets the rest, never benches
    rest_until: float = 0.0  # monotonic: no batch before (after a decline)
    excluded: str | None = None  # for good: it failed
    benched: str | None = None  # until a fresh quote: it declined too often
    tasks: int = 0
    batches: int = 0
    spent: int = 0
    failures: int = 0
    declined: int = 0

    @property
    def key(self) -> str:
        return self.quote.provider.lower()


@dataclass(slots=True, eq=False)
class _Flight:
    """One try of one batch at one provider."""

    order: BatchOrder
    seat: _Seat
    cost: int
    started: float
    task: asyncio.Future[BatchResult]


_END = object()


class Scheduler:
    """Runs ``tasks`` tasks over ``quotes`` with ``run_batch``; see the module docstring.

    ``budget`` caps what the run holds at once and for good (base units). ``tasks_per_deal``
    fixes the batch size (else up to ``DEFAULT_TASKS_PER_DEAL``, spread over the free lanes);
    ``speculate_after`` (a multiple of the median batch time; None: never) arms the straggler
    duplicates; ``requote`` fetches fresh quotes when no provider is usable (quotes expired, or
    all failed or benched; at most ``max_requotes`` times in a row without progress). ``tick``
    is how often it looks for stragglers; ``decline_backoff`` the rest after a decline
    (doubling), ``max_declines`` the declines in a row that bench a provider until fresh quotes;
    ``quote_margin_s`` how close to its expiry a quote is still used.

    ``BudgetTooLow`` (or ``NoBids`` without quotes) from the constructor; afterwards nothing
    raises for a batch. Iterate :meth:`stream` once; ``summary`` is set when it ends.
    """

    def __init__(self, tasks: int, quotes: Sequence[ProviderQuote], run_batch: BatchRunner, *, costs: Costs,
                 budget: int, names: Sequence[str] | None = None, ordered: bool = False,
                 tasks_per_deal: int | None = None, max_attempts: int = 3, speculate_after: float | None = 3.0,
                 requote: Requote | None = None, max_requotes: int = 3, emit: EmitFn | None = None,
                 clock: Callable[[], float] = time.time, tick: float = 0.25, decline_backoff: float = 1.0,
                 max_declines: int = 3, quote_margin_s: float = 2.0) -> None:
        if tasks < 1:
            raise SpecError("a map run needs at least one task", field="inputs")
        if not quotes:
            raise NoBids("no provider quoted for the run: nothing to allocate", asked=0)
        if tasks_per_deal is not None and not 1 <= tasks_per_deal <= MAX_TASKS:
            raise SpecError(f"tasks_per_deal must be from 1 to {MAX_TASKS}, got {tasks_per_deal!r}",
                            field="tasks_per_deal")
        if max_attempts < 1:
            raise SpecError(f"max_attempts must be at least 1, got {max_attempts!r}", field="max_attempts")
        cheapest = min(q.price_per_cu for q in quotes)
        if costs.cost(tasks, cheapest) > budget:
            raise budget_too_low(budget, tasks, cheapest, costs)
        self.n, self.costs, self.budget = tasks, costs, budget
        self.names = tuple(names) if names is not None else tuple(str(i) for i in range(tasks))
        self.run_batch, self.requote, self.emit = run_batch, requote, emit
        self.ordered, self.tasks_per_deal, self.max_attempts = ordered, tasks_per_deal, max_attempts
        self.speculate_after, self.max_requotes, self.clock, self.tick = speculate_after, max_requotes, clock, tick
        self.decline_backoff, self.max_declines, self.quote_margin_s = decline_backoff, max_declines, quote_margin_s
        self.summary: MapSummary | None = None
        self._seats: dict[str, _Seat] = {}
        self._add_quotes(quotes)
        self._pending: list[int] = list(range(tasks))  # sorted: the lowest index goes first
        self._attempts = [0] * tasks
        self._done: set[int] = set()
        self._failed: dict[int, str] = {}
        self._flights: dict[asyncio.Future[BatchResult], _Flight] = {}
        self._copies: dict[int, list[_Flight]] = {}  # batch -> its live tries
        self._speculated: set[int] = set()
        self._abandoned: list[asyncio.Future[BatchResult]] = []
        self._durations: list[float] = []
        self._committed = self._reserved = self._spent = 0
        self._stopped: str | None = None
        self._requotes = self._batches = self._attempt_ids = 0
        self._queue: asyncio.Queue[object] | None = None
        self._held: dict[int, TaskResult] = {}
        self._next_out = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()

    # streaming ------------------------------------------------------------------------------
    async def stream(self) -> AsyncIterator[TaskResult]:
        """Each verified task, as it comes (or in input order when ``ordered``). Leaving the
        loop early stops the run: batches in flight are abandoned."""
        if self._loop_task is not None:
            raise RuntimeError("a map run streams once")
        self._queue = asyncio.Queue()
        self._loop_task = asyncio.ensure_future(self._run())
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    break
                yield item  # type: ignore[misc]
            await self._loop_task  # a crash of the loop itself surfaces here
        finally:
            if not self._loop_task.done():
                self._loop_task.cancel()
                await asyncio.gather(self._loop_task, return_exceptions=True)

    def _emit(self, event: Event) -> None:
        if self.emit is not None:
            self.emit(event)

    def _put(self, item: object) -> None:
        assert self._queue is not None
        self._queue.put_nowait(item)

    def _deliver(self, result: TaskResult) -> None:
        if not self.ordered:
            self._put(result)
            return
        self._held[result.index] = result
        self._flush()

    def _flush(self) -> None:
        """Ordered: hand over every held result whose predecessors are all done or given up."""
        while self._next_out < self.n:
            i = self._next_out
            if i in self._held:
                self._put(self._held.pop(i))
            elif i not in self._failed:
                return
            self._next_out += 1

    # the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        self._t0 = time.monotonic()
        self._emit(TasksQueued(tuple(range(self.n))))
        self._emit_spend()
        try:
            await self._drive()
        except asyncio.CancelledError:
            self._stop("stopped by the caller")
            raise
        except BaseException as exc:
            self._stop(f"the scheduler failed: {exc!r}")
            raise
        finally:
            await self._wind_down()

    async def _drive(self) -> None:
        while True:
            if self._stopped is None:
                if self._pending and not any(self._usable(s) for s in self._seats.values()):
                    await self._refresh()  # quotes expired, or every provider is out: ask again
                self._dispatch()
                self._speculate()
            if not self._flights:
                if not self._pending or self._stopped is not None:
                    return
                rest = self._resting()
                if rest is not None:
                    await asyncio.sleep(rest)
                    continue
                if any(self._usable(s) for s in self._seats.values()):
                    self._stop(self._out_of_budget())
                    return
                self._stop("no provider left: every one that quoted failed, declined too often or let its quote "
                           "expire, and no fresh quote came — start more providers, or raise max_price_per_cu")
                return
            done, _ = await asyncio.wait(list(self._flights), timeout=self.tick,
                                         return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                flight = self._flights.get(fut)
                if flight is not None:  # else dropped already (a copy lost in the same round)
                    self._land(flight)

    async def _wind_down(self) -> None:
        for flight in list(self._flights.values()):  # only after a stop by the caller or a crash
            self._abandon(flight, "the run was stopped")
        if self._abandoned:
            await asyncio.gather(*self._abandoned, return_exceptions=True)
        done = tuple(sorted(self._done))
        failed = dict(sorted(self._failed.items()))
        not_run = tuple(i for i in range(self.n) if i not in self._done and i not in self._failed)
        tallies = {s.quote.provider: ProviderTally(s.quote.provider, s.tasks, s.batches, s.spent, s.failures,
                                                   s.declined, s.excluded or s.benched)
                   for s in self._seats.values()}
        self.summary = MapSummary(self.n, done, failed, not_run, self._stopped, self.budget, self._spent,
                                  self._committed, sum(s.batches for s in self._seats.values()), tallies,
                                  round(time.monotonic() - self._t0, 3))
        self._emit(MapFinished(len(done), len(failed), len(not_run), self._spent, self._stopped))
        for i in sorted(self._held):  # ordered: what waited behind a task that never ran
            self._put(self._held.pop(i))
        self._put(_END)

    def _stop(self, reason: str) -> None:
        if self._stopped is None:
            self._stopped = reason

    # seats ------------------------------------------------------------------------------------
    def _add_quotes(self, quotes: Sequence[ProviderQuote]) -> int:
        fresh = 0
        for q in quotes:
            seat = self._seats.get(q.provider.lower())
            if seat is None:
                self._seats[q.provider.lower()] = _Seat(q, q.capacity)
            elif seat.excluded is None:
                seat.quote, seat.capacity, seat.benched, seat.rest_until = q, q.capacity, None, 0.0
                seat.declines = seat.busy_declines = 0
            else:
                continue
            fresh += 1
        return fresh

    def _usable(self, seat: _Seat) -> bool:
        return (seat.excluded is None and seat.benched is None
                and seat.quote.expiry - self.quote_margin_s > self.clock())

    def _ready(self, seat: _Seat, now: float) -> bool:
        return self._usable(seat) and now >= seat.rest_until and seat.in_flight < seat.capacity

    def _per_deal(self, seat: _Seat) -> int:
        return max(1, min(seat.quote.max_tasks_per_deal, self.tasks_per_deal or DEFAULT_TASKS_PER_DEAL, MAX_TASKS))

    def _resting(self) -> float | None:
        """Seconds until the first usable provider resting after a decline may be asked again."""
        now = time.monotonic()
        rests = [s.rest_until - now for s in self._seats.values() if self._usable(s) and s.rest_until > now]
        return max(0.0, min(rests)) if rests else None

    async def _refresh(self) -> bool:
        """Fresh quotes when no provider is usable (each failed one stays out); True if any came.
        At most ``max_requotes`` in a row without a verified batch in between."""
        if self.requote is None or self._requotes >= self.max_requotes:
            return False
        self._requotes += 1
        skip = frozenset(s.key for s in self._seats.values() if s.excluded is not None)
        try:
            quotes = await self.requote(len(self._pending), skip)
        except MercatoError as exc:
            log.info("no fresh bulk quotes", extra={"error": str(exc)})
            return False
        self._add_quotes([q for q in quotes if q.provider.lower() not in skip])
        return any(self._usable(s) for s in self._seats.values())

    def _exclude(self, seat: _Seat, reason: str) -> None:
        if seat.excluded is None:
            seat.excluded = reason
            self._emit(ProviderExcluded(seat.quote.provider, reason))

    # money ------------------------------------------------------------------------------------
    def _room(self) -> int:
        return self.budget - self._committed - self._reserved

    def _affordable(self, size: int, price: int, cheapest: int, undispatched: int) -> int:
        """How many of ``size`` tasks may go out at ``price``: within the budget and, at a dearer
        price than the cheapest usable quote, leaving enough for the rest of the ``undispatched``
        tasks (these included) at the cheapest: ``k·c + (undispatched − k)·c_min <= room``."""
        room, c, c_min = self._room(), self.costs.cost(1, price), self.costs.cost(1, cheapest)
        if price <= cheapest:
            k = room // c if c > 0 else size
        else:
            k = (room - undispatched * c_min) // (c - c_min)
        return max(0, min(size, k))

    def _out_of_budget(self) -> str:
        seats = [s for s in self._seats.values() if self._usable(s)]
        cheapest = min(s.quote.price_per_cu for s in seats)
        return (f"budget: {format_musd(max(0, self._room()))} mUSD of the {format_musd(self.budget)} mUSD budget is "
                f"left, less than one task may cost at the cheapest quote ({format_musd(self.costs.cost(1, cheapest))}"
                f" mUSD with its audit fee); {len(self._pending)} task(s) not run — raise the budget and run "
                "them again")

    def _emit_spend(self) -> None:
        self._emit(Spend(self._spent, self._committed, self._reserved, self.budget))

    # dispatching -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        now = time.monotonic()
        ready = [s for s in self._seats.values() if self._ready(s, now)]
        if not self._pending or not ready:
            return
        cheapest = min(s.quote.price_per_cu for s in self._seats.values() if self._usable(s))
        bidders = [Bidder(s.quote.provider, s.quote.price_per_cu, s.capacity - s.in_flight, self._per_deal(s),
                          s.quote.reputation) for s in ready]
        undispatched = len(self._pending)
        for share in allocate(len(self._pending), bidders):
            seat = self._seats[share.provider.lower()]
            for size in self._sizes(share.tasks, seat):
                k = self._affordable(size, seat.quote.price_per_cu, cheapest, undispatched)
                if k == 0:
                    break
                undispatched -= k
                tasks, self._pending = tuple(self._pending[:k]), self._pending[k:]
                self._launch(tasks, seat)

    def _sizes(self, n: int, seat: _Seat) -> list[int]:
        """``n`` tasks for ``seat`` as batch sizes: fixed ``tasks_per_deal`` batches, or spread evenly
        over its free lanes (at most its per-deal cap each)."""
        per, lanes = self._per_deal(seat), seat.capacity - seat.in_flight
        if self.tasks_per_deal is not None:
            sizes = [per] * (n // per) + ([n % per] if n % per else [])
            return sizes[:lanes]
        count = max(min(lanes, n), -(-n // per))  # the allocation never gives more than lanes × per
        q, r = divmod(n, count)
        return [q + 1] * r + [q] * (count - r)

    def _launch(self, tasks: tuple[int, ...], seat: _Seat, batch: int | None = None) -> None:
        speculative = batch is not None
        if batch is None:
            self._batches += 1
            batch = self._batches
        self._attempt_ids += 1
        price, k = seat.quote.price_per_cu, len(tasks)
        order = BatchOrder(batch, self._attempt_ids, tasks, seat.quote, self.costs.max_price(k, price),
                           self.costs.audit_fee(k, price), speculative)
        cost = order.max_price + order.audit_fee
        fut = asyncio.ensure_future(self.run_batch(order))
        flight = _Flight(order, seat, cost, time.monotonic(), fut)
        self._flights[fut] = flight
        self._copies.setdefault(batch, []).append(flight)
        seat.in_flight += 1
        self._reserved += cost
        self._emit(BatchDispatched(batch, seat.quote.provider, tasks, price, cost, speculative))
        self._emit_spend()

    def _speculate(self) -> None:
        """Nothing left to queue: duplicate a batch running ``speculate_after`` times the median
        batch time on an idle provider, once per batch, if the budget allows."""
        if self.speculate_after is None or self._pending or not self._durations:
            return
        limit = self.speculate_after * statistics.median(self._durations)
        now = time.monotonic()
        for flight in sorted(self._flights.values(), key=lambda f: f.started):
            batch = flight.order.batch
            if batch in self._speculated or now - flight.started <= limit:
                continue
            k = len(flight.order.tasks)
            idle = sorted((s for s in self._seats.values() if self._ready(s, now) and s is not flight.seat
                           and self._per_deal(s) >= k),
                          key=lambda s: (s.quote.price_per_cu, -s.quote.score, s.key))
            for seat in idle:
                if self.costs.cost(k, seat.quote.price_per_cu) <= self._room():
                    self._speculated.add(batch)
                    self._launch(flight.order.tasks, seat, batch=batch)
                    break

    # landing -----------------------------------------------------------------------------------
    def _detach(self, flight: _Flight) -> None:
        self._flights.pop(flight.task, None)
        copies = self._copies.get(flight.order.batch, [])
        if flight in copies:
            copies.remove(flight)
        flight.seat.in_flight -= 1
        self._reserved -= flight.cost

    def _land(self, flight: _Flight) -> None:
        self._detach(flight)
        fut = flight.task
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError("the batch was cancelled")
        if exc is None:
            self._verified(flight, fut.result())
        else:
            self._failed_batch(flight, exc)
        self._emit_spend()

    def _verified(self, flight: _Flight, res: BatchResult) -> None:
        order, seat = flight.order, flight.seat
        if len(res.outputs) != len(order.tasks):
            self._committed += flight.cost  # it was paid, but it is not a result for these tasks
            self._failed_batch(flight, ResultMismatch(
                f"batch {order.batch} came back with {len(res.outputs)} task results for {len(order.tasks)} tasks",
                provider=order.provider, deal_id=res.deal_id, what="batch layout"), charged=True)
            return
        self._committed += res.price + order.audit_fee
        self._spent += res.price
        seconds = time.monotonic() - flight.started
        self._durations.append(seconds)
        seat.tasks, seat.batches, seat.spent = seat.tasks + len(order.tasks), seat.batches + 1, seat.spent + res.price
        seat.declines, seat.busy_declines = 0, 0
        seat.capacity = min(seat.quote.capacity, seat.capacity + 1)
        self._requotes = 0  # progress: fresh quotes may be asked for again
        self._emit(BatchDone(order.batch, order.provider, order.tasks, res.deal_id, res.price, round(seconds, 3)))
        seeds = res.seeds if len(res.seeds) == len(order.tasks) else (b"",) * len(order.tasks)
        for index, out, seed in zip(order.tasks, res.outputs, seeds, strict=True):
            if index in self._done:
                continue
            self._done.add(index)
            self._failed.pop(index, None)
            self._deliver(TaskResult(index, self.names[index], out.outcome, out.exit_code, out.fuel_used, out.stdout,
                                     out.stderr, dict(out.outputs), order.provider, res.deal_id, order.batch,
                                     seed.hex()))
        for other in list(self._copies.get(order.batch, [])):
            self._abandon(other, "another copy of the batch was verified first")

    def _abandon(self, flight: _Flight, reason: str) -> None:
        """Stop watching a try: it stays charged against the budget (its provider may still open
        and commit the deal with the acceptance), or at its price if it finished meanwhile."""
        self._detach(flight)
        fut = flight.task
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            price = fut.result().price
            self._committed += price + flight.order.audit_fee
            self._spent += price
            flight.seat.spent += price
        else:
            fut.cancel()
            self._committed += flight.cost
            self._abandoned.append(fut)
        self._emit(BatchCancelled(flight.order.batch, flight.order.provider, flight.order.tasks, reason))

    def _failed_batch(self, flight: _Flight, exc: BaseException, *, charged: bool = False) -> None:
        order, seat = flight.order, flight.seat
        kind = _classify(exc)
        text = str(exc) or type(exc).__name__
        if kind == "failed" and not isinstance(exc, MercatoError | httpx.HTTPError | asyncio.CancelledError):
            log.warning("a batch failed unexpectedly", exc_info=exc, extra={"provider": order.provider})
        if kind == "mismatch" and not charged:
            self._committed += flight.cost  # escrowed in the challenged deal until an audit settles it
        self._emit(BatchFailed(order.batch, order.provider, order.tasks, kind, text))
        if kind == "declined":
            code = getattr(exc, "code", "")
            seat.declined += 1
            if code in ("capacity", "bond"):
                seat.capacity = max(1, seat.in_flight)
            if code == "capacity":
                # busy, not unwilling: its lanes free as its deals settle. Rest (up to
                # BUSY_REST_MAX_S) and ask again while its quote holds; never benched for it.
                seat.busy_declines += 1
                rest = min(self.decline_backoff * 2 ** (seat.busy_declines - 1), BUSY_REST_MAX_S)
                seat.rest_until = time.monotonic() + rest
            else:
                seat.declines += 1
                seat.rest_until = time.monotonic() + self.decline_backoff * 2 ** (seat.declines - 1)
            if seat.declines >= self.max_declines and seat.benched is None:
                seat.benched = f"declined {seat.declines} batches in a row (last: {text})"
                self._emit(ProviderExcluded(order.provider, seat.benched))
        elif kind in ("failed", "missed", "mismatch"):
            seat.failures += 1
            self._exclude(seat, f"{kind}: {text}")
        elif kind == "fatal":
            self._stop(text)
        if self._copies.get(order.batch):
            return  # another copy of the batch still runs: it covers these tasks
        self._requeue(order.tasks, counts=kind not in ("declined", "fatal"), error=text)

    def _requeue(self, tasks: tuple[int, ...], *, counts: bool, error: str) -> None:
        back = []
        for i in tasks:
            if i in self._done or i in self._failed:
                continue
            if counts:
                self._attempts[i] += 1
            if counts and self._attempts[i] >= self.max_attempts:
                self._failed[i] = error
            else:
                back.append(i)
                bisect.insort(self._pending, i)
        if back:
            self._emit(TasksQueued(tuple(back), requeued=True))
        if self.ordered:
            self._flush()


# the stream the caller holds --------------------------------------------------------------
class MapRun:
    """One ``Market.map`` run: ``async for task in run`` yields each verified
    :class:`~mercato.requester.events.TaskResult`; ``run.summary`` says how it ended.

    Nothing is sent until it is iterated (or :meth:`collect`-ed). What can go wrong before the
    first batch raises from the first step (``BudgetTooLow``, ``BalanceTooLow``, ``NoBids``,
    ``SpecError``); after that nothing raises for a batch. With ``out_dir`` each task is written
    to ``out_dir/<name>/`` as it arrives (see :func:`write_task`). Leaving the loop early (or
    :meth:`aclose`) stops the run.
    """

    def __init__(self, setup: Callable[[], Awaitable[Scheduler]], *, out_dir: Path | None = None) -> None:
        self._setup = setup
        self.out_dir = out_dir
        self._scheduler: Scheduler | None = None
        self._it: AsyncIterator[TaskResult] | None = None

    @property
    def summary(self) -> MapSummary | None:
        """How the run ended (None until it has)."""
        return self._scheduler.summary if self._scheduler is not None else None

    def __aiter__(self) -> MapRun:
        return self

    async def __anext__(self) -> TaskResult:
        if self._it is None:
            self._it = self._iterate()
        return await self._it.__anext__()

    async def _iterate(self) -> AsyncIterator[TaskResult]:
        self._scheduler = await self._setup()
        stream = self._scheduler.stream()
        try:
            async for result in stream:
                if self.out_dir is not None:
                    write_task(self.out_dir, result)
                yield result
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Stop the run (batches in flight are abandoned) and close the stream."""
        if self._it is not None:
            await self._it.aclose()  # type: ignore[attr-defined]

    async def collect(self) -> list[TaskResult]:
        """Every verified task, in the order they were streamed; then see ``summary``."""
        return [result async for result in self]


def write_task(out_dir: Path, result: TaskResult) -> Path:
    """Write one task under ``out_dir/<name>/``: ``stdout``, ``stderr``, ``result.json`` (outcome,
    exit code, fuel, provider, deal) and its /output files under ``outputs/``. The folder."""
    folder = out_dir / result.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stdout").write_bytes(result.stdout)
    (folder / "stderr").write_bytes(result.stderr)
    _verify.write_outputs(folder / "outputs", result.outputs)
    meta = {"index": result.index, "name": result.name, "outcome": result.outcome, "exit_code": result.exit_code,
            "fuel_used": result.fuel_used, "provider": result.provider, "deal_id": result.deal_id,
            "batch": result.batch, "seed": result.seed, "outputs": sorted(result.outputs)}
    (folder / "result.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return folder


# the bulk round ---------------------------------------------------------------------------
@dataclass(slots=True)
class QuoteRound:
    """What one bulk RFQ gave: usable quotes and why each other provider gave none."""

    asked: int
    quotes: list[ProviderQuote] = field(default_factory=list)
    causes: dict[str, str] = field(default_factory=dict)  # address -> reason
    window_ms: float = 0.0


async def _post_bulk(http: httpx.AsyncClient, endpoint: str, rfq: BulkRfq) -> BulkAnswer:
    resp = await http.post(endpoint.rstrip("/") + "/v1/rfq/bulk", json=rfq.model_dump(mode="json"))
    resp.raise_for_status()
    return BulkAnswer.model_validate(resp.json())


async def collect_quotes(http: httpx.AsyncClient, targets: Sequence[ProviderFacts], rfq: BulkRfq, window: float,
                         *, now: float) -> QuoteRound:
    """Send ``rfq`` to every target at once and judge the answers that arrive within ``window``
    seconds (``now``: unix time, for the quotes' expiry). Reputation is the targets' as given."""
    t0 = time.monotonic()
    rnd = QuoteRound(asked=len(targets))
    tasks = {asyncio.create_task(_post_bulk(http, f.endpoint, rfq)): f for f in targets}
    done, pending = await asyncio.wait(tasks, timeout=window) if tasks else (set(), set())
    for task in pending:
        task.cancel()
        rnd.causes[tasks[task].address] = f"did not answer in {window * 1000:.0f} ms"
    for task in done:
        facts = tasks[task]
        exc = task.exception()
        if exc is not None:
            text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:120]
            rnd.causes[facts.address] = f"unreachable at {facts.endpoint} or no bulk quotes there ({text})"
            continue
        answer: BulkAnswer = task.result()
        if answer.decline is not None:
            rnd.causes[facts.address] = f"{answer.decline.code}: {answer.decline.reason}"
        elif answer.quote is None:
            rnd.causes[facts.address] = "answered with neither a quote nor a decline"
        else:
            reason = _check_quote(answer.quote, facts, rfq, now)
            if reason is None:
                q = answer.quote
                rnd.quotes.append(ProviderQuote(facts.address, facts.endpoint, q.quote_id, q.price_per_cu, q.capacity,
                                                q.max_tasks_per_deal, float(q.expiry), facts.reputation))
            else:
                rnd.causes[facts.address] = reason
    rnd.window_ms = round((time.monotonic() - t0) * 1000, 3)
    return rnd


def _check_quote(q: BulkQuote, facts: ProviderFacts, rfq: BulkRfq, now: float) -> str | None:
    """Why quote ``q`` from ``facts``' provider is unusable, or None."""
    if q.rfq_id != rfq.rfq_id:
        return "quoted for another RFQ"
    if q.provider.lower() != facts.address.lower():
        return f"sent a quote in another provider's name ({q.provider})"
    try:
        signer = Account.recover_message(encode_defunct(text=bulk_quote_message(q)),
                                         signature=bytes.fromhex(q.signature.removeprefix("0x")))
    except Exception:  # malformed signature bytes: the quote is unusable, whatever the cause
        return "bad quote signature (cannot recover a signer)"
    if signer.lower() != facts.address.lower():
        return f"bad quote signature (recovers to {signer}, not the provider)"
    if q.price_per_cu > rfq.max_price_per_cu:
        return f"price_per_cu {q.price_per_cu} over your max_price_per_cu {rfq.max_price_per_cu}"
    if q.expiry <= now:
        return "its quote had expired on arrival"
    return None


def no_quotes_error(rnd: QuoteRound, max_price_per_cu: int) -> NoBids:
    """``NoBids`` for a bulk RFQ that got no usable quote, naming each provider's reason."""
    reasons = "; ".join(f"{who[:10]}…: {why}" for who, why in sorted(rnd.causes.items())[:5])
    more = "; …" if len(rnd.causes) > 5 else ""
    return NoBids(f"no bulk quote: {rnd.asked} provider{'s' if rnd.asked != 1 else ''} asked (your max_price_per_cu "
                  f"{format_musd(max_price_per_cu)} mUSD){': ' + reasons + more if reasons else ''} — raise "
                  "max_price_per_cu, or check the providers are up and answer POST /v1/rfq/bulk",
                  asked=rnd.asked, causes=rnd.causes)

