"""requester.mapper.Scheduler with a scripted batch runner: streaming, failover, budget, stragglers.

No HTTP and no chain: each fake provider is an async function from a ``BatchOrder`` to a
``BatchResult`` (or an exception), so slow, failing and lying providers are one line each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mercato.domain.batch import TaskOutput
from mercato.errors import (
    BudgetTooLow,
    NoBids,
    ProviderDeclined,
    ProviderFailed,
    ProviderMissedDeadline,
    ResultMismatch,
    RpcUnavailable,
)
from mercato.matching import Reputation
from mercato.requester.events import (
    BatchCancelled,
    BatchDispatched,
    BatchDone,
    BatchFailed,
    MapFinished,
    MapSummary,
    ProviderExcluded,
    Spend,
    TaskResult,
    TasksQueued,
)
from mercato.requester.mapper import BatchOrder, BatchResult, Costs, MapRun, ProviderQuote, Scheduler

COSTS = Costs(cu_per_task=1)  # a task costs price_per_cu, plus the same again as its audit fee
Behaviour = Callable[[BatchOrder], Awaitable[BatchResult]]


def quote(name: str, price: int = 10, capacity: int = 2, per_deal: int = 4, completed: int = 0) -> ProviderQuote:
    return ProviderQuote(name, f"http://{name}.test", f"q-{name}", price, capacity, per_deal, time.time() + 3600,
                         Reputation(completed=completed))


def outputs(order: BatchOrder) -> tuple[TaskOutput, ...]:
    return tuple(TaskOutput(j, "ok", 0, 7, f"task {i}\n".encode(), b"", {"r.txt": str(i).encode()})
                 for j, i in enumerate(order.tasks))


def ok(delay: float | Callable[[BatchOrder], float] = 0.0) -> Behaviour:
    async def run(order: BatchOrder) -> BatchResult:
        await asyncio.sleep(delay(order) if callable(delay) else delay)
        return BatchResult(f"0xdeal{order.attempt}", order.max_price, outputs(order))
    return run


def raises(make: Callable[[BatchOrder], Exception], *, unless: Callable[[BatchOrder], bool] = lambda o: False,
           delay: float = 0.0) -> Behaviour:
    good = ok()

    async def run(order: BatchOrder) -> BatchResult:
        await asyncio.sleep(delay)
        if unless(order):
            return await good(order)
        raise make(order)
    return run


class Fleet:
    """Fake providers by name; records every order."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.orders: list[BatchOrder] = []

    async def __call__(self, order: BatchOrder) -> BatchResult:
        self.orders.append(order)
        return await self.behaviours[order.provider](order)

    def by(self, name: str) -> list[BatchOrder]:
        return [o for o in self.orders if o.provider == name]


def scheduler(tasks: int, quotes: list[ProviderQuote], fleet: Fleet, **options: object) -> Scheduler:
    events: list[object] = []
    options.setdefault("budget", 10**9)
    options.setdefault("tick", 0.01)
    options.setdefault("decline_backoff", 0.01)
    sched = Scheduler(tasks, quotes, fleet, costs=COSTS, emit=events.append, **options)  # type: ignore[arg-type]
    sched.events = events  # type: ignore[attr-defined]
    return sched


def drive(sched: Scheduler) -> tuple[list[TaskResult], MapSummary]:
    async def go() -> list[TaskResult]:
        return [r async for r in sched.stream()]

    results = asyncio.run(go())
    assert sched.summary is not None
    return results, sched.summary


def events_of(sched: Scheduler, kind: type) -> list:
    return [e for e in sched.events if isinstance(e, kind)]  # type: ignore[attr-defined]


# streaming ------------------------------------------------------------------------------
def _slow_first(order: BatchOrder) -> float:
    return 0.2 if 0 in order.tasks else 0.01


def test_every_task_is_done_and_streamed_as_batches_complete() -> None:
    fleet = Fleet(a=ok(_slow_first))
    sched = scheduler(8, [quote("a", capacity=4, per_deal=2)], fleet, tasks_per_deal=2, speculate_after=None)
    results, summary = drive(sched)
    indices = [r.index for r in results]
    assert sorted(indices) == list(range(8)) and indices != sorted(indices)  # the slow first batch came last
    assert indices[-2:] == [0, 1]
    assert [o.tasks for o in fleet.orders] == [(0, 1), (2, 3), (4, 5), (6, 7)]  # four batches, all at once
    assert all(r.stdout == f"task {r.index}\n".encode() and r.outputs == {"r.txt": str(r.index).encode()}
               and r.provider == "a" and r.ok for r in results)
    assert summary.complete and summary.not_run == () and summary.failed == {} and summary.stopped is None
    assert summary.spent == 8 * 10 and summary.committed == 2 * 8 * 10  # prices + audit fees held
    assert summary.providers["a"].tasks == 8 and summary.providers["a"].batches == 4
    kinds = [type(e) for e in sched.events]  # type: ignore[attr-defined]
    assert kinds[0] is TasksQueued and kinds[-1] is MapFinished
    assert len(events_of(sched, BatchDispatched)) == 4 and len(events_of(sched, BatchDone)) == 4
    assert events_of(sched, Spend)[-1] == Spend(80, 160, 0, 10**9)


def test_ordered_streams_in_input_order() -> None:
    fleet = Fleet(a=ok(_slow_first))
    results, summary = drive(scheduler(8, [quote("a", capacity=4, per_deal=2)], fleet, tasks_per_deal=2,
                                       ordered=True, speculate_after=None))
    assert [r.index for r in results] == list(range(8)) and summary.complete


def test_names_label_the_results() -> None:
    results, _ = drive(scheduler(3, [quote("a")], Fleet(a=ok()), names=["x", "y", "z"], ordered=True))
    assert [(r.index, r.name) for r in results] == [(0, "x"), (1, "y"), (2, "z")]


def test_without_a_batch_size_the_tasks_spread_over_the_free_lanes() -> None:
    fleet = Fleet(a=ok())
    drive(scheduler(10, [quote("a", capacity=4, per_deal=32)], fleet))
    assert sorted(len(o.tasks) for o in fleet.orders) == [2, 2, 3, 3]


def test_equal_prices_split_by_capacity_and_the_cheapest_is_filled_first() -> None:
    fleet = Fleet(a=ok(0.05), b=ok(0.05), dear=ok(0.05))
    drive(scheduler(12, [quote("a", capacity=2, per_deal=8), quote("b", capacity=1, per_deal=8),
                         quote("dear", price=50, capacity=8)], fleet, speculate_after=None))
    assert sum(len(o.tasks) for o in fleet.by("a")) == 8 and sum(len(o.tasks) for o in fleet.by("b")) == 4
    assert fleet.by("dear") == []


# failover -------------------------------------------------------------------------------
def test_a_failing_provider_is_excluded_and_its_batches_finish_elsewhere() -> None:
    fleet = Fleet(bad=raises(lambda o: ProviderFailed("vanished", provider="bad")), good=ok())
    sched = scheduler(6, [quote("bad", price=5, capacity=3, per_deal=2), quote("good", price=8)], fleet)
    results, summary = drive(sched)
    assert summary.complete and {r.provider for r in results} == {"good"}
    assert [e.provider for e in events_of(sched, ProviderExcluded)] == ["bad"]
    assert summary.providers["bad"].failures >= 1 and "vanished" in (summary.providers["bad"].excluded or "")
    assert summary.providers["good"].tasks == 6
    assert {e.kind for e in events_of(sched, BatchFailed)} == {"failed"}
    requeued = [e for e in events_of(sched, TasksQueued) if e.requeued]
    assert sorted(i for e in requeued for i in e.tasks) == list(range(6))
    assert len({o.provider for o in fleet.orders if o.tasks == fleet.orders[0].tasks}) >= 1
    # after the exclusion, no batch went back to it
    first_good = next(i for i, o in enumerate(fleet.orders) if o.provider == "good")
    assert all(o.provider == "good" for o in fleet.orders[first_good:])


def test_a_wrong_result_excludes_the_provider_and_its_money_stays_held() -> None:
    fleet = Fleet(liar=raises(lambda o: ResultMismatch("seal differs", provider="liar", what="seal")), good=ok())
    sched = scheduler(2, [quote("liar", price=5, capacity=1), quote("good", price=8)], fleet)
    results, summary = drive(sched)
    assert summary.complete and {r.provider for r in results} == {"good"}
    assert "mismatch" in (summary.providers["liar"].excluded or "")
    assert events_of(sched, BatchFailed)[0].kind == "mismatch"
    # good's 2 tasks: price 16 + fee 16; the challenged deal's max cost (2 x 5, twice) stays held
    assert summary.spent == 16 and summary.committed == 32 + 20


def test_a_missed_deadline_refunds_its_reservation() -> None:
    missed = raises(lambda o: ProviderMissedDeadline("reclaimed", provider="slow", refund=o.max_price))
    fleet = Fleet(slow=missed, good=ok())
    need_at_good = COSTS.cost(4, 8)  # exactly enough for every task at the dearer provider
    sched = scheduler(4, [quote("slow", price=5, capacity=1, per_deal=4), quote("good", price=8, per_deal=4)],
                      fleet, budget=need_at_good)
    results, summary = drive(sched)
    assert summary.complete and {r.provider for r in results} == {"good"}  # fits only if the refund came back
    assert summary.committed == need_at_good and events_of(sched, BatchFailed)[0].kind == "missed"
    spends = events_of(sched, Spend)
    assert any(s.reserved == COSTS.cost(4, 5) for s in spends)  # reserved while in flight, then released
    assert "missed" in (summary.providers["slow"].excluded or "")


def test_a_decline_rests_the_provider_without_excluding_it() -> None:
    calls = {"n": 0}

    async def busy_once(order: BatchOrder) -> BatchResult:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ProviderDeclined("no free lane", provider="a", code="capacity")
        return await ok()(order)

    fleet = Fleet(a=busy_once)
    sched = scheduler(2, [quote("a", capacity=2, per_deal=1)], fleet)
    results, summary = drive(sched)
    assert summary.complete and events_of(sched, ProviderExcluded) == []
    assert summary.providers["a"].declines == 1 and summary.providers["a"].failures == 0
    assert events_of(sched, BatchFailed)[0].kind == "declined"


def test_a_provider_whose_lanes_are_all_busy_is_waited_for_never_benched() -> None:
    """One provider, lanes held while its deals settle: "capacity" declines, many more than
    max_declines in a row, only make the run wait for it (the README's map on one agent)."""
    calls = {"n": 0}

    async def busy_often(order: BatchOrder) -> BatchResult:
        calls["n"] += 1
        if calls["n"] % 6:  # five busy answers before each batch it takes
            raise ProviderDeclined("all 4 lanes of this provider are busy", provider="a", code="capacity")
        return await ok()(order)

    sched = scheduler(4, [quote("a", capacity=4, per_deal=1)], Fleet(a=busy_often), max_declines=3,
                      speculate_after=None)
    results, summary = drive(sched)
    assert summary.complete and sorted(r.index for r in results) == [0, 1, 2, 3]
    assert events_of(sched, ProviderExcluded) == [] and summary.providers["a"].excluded is None
    assert summary.providers["a"].declines >= 4 * 3


def test_declining_again_and_again_benches_the_provider() -> None:
    fleet = Fleet(no=raises(lambda o: ProviderDeclined("bond", provider="no", code="bond")))
    sched = scheduler(2, [quote("no", capacity=1)], fleet, max_declines=3)
    results, summary = drive(sched)
    assert results == [] and summary.not_run == (0, 1) and len(fleet.orders) == 3
    assert "declined 3 batches in a row" in (summary.providers["no"].excluded or "")
    assert summary.providers["no"].failures == 0 and summary.failed == {}  # declines cost no attempts
    assert (summary.stopped or "").startswith("no provider left") and summary.committed == 0


def test_a_task_is_given_up_after_max_attempts_and_ordered_output_skips_it() -> None:
    flaky = raises(lambda o: RpcUnavailable("node down"), unless=lambda o: 0 not in o.tasks)  # no one's fault
    sched = scheduler(4, [quote("a", capacity=4, per_deal=1)], Fleet(a=flaky), ordered=True, max_attempts=2)
    results, summary = drive(sched)
    assert [r.index for r in results] == [1, 2, 3]
    assert list(summary.failed) == [0] and "node down" in summary.failed[0]
    assert summary.not_run == () and summary.stopped is None and not summary.complete
    assert events_of(sched, ProviderExcluded) == []  # an RPC failure blames no provider


def test_no_provider_left_stops_and_reports_the_rest_as_not_run() -> None:
    fleet = Fleet(bad=raises(lambda o: ProviderFailed("gone", provider="bad")))
    results, summary = drive(scheduler(3, [quote("bad")], fleet))
    assert results == [] and summary.not_run == (0, 1, 2)
    assert (summary.stopped or "").startswith("no provider left")


def test_fresh_quotes_bring_a_new_provider_when_none_is_left() -> None:
    fleet = Fleet(bad=raises(lambda o: ProviderFailed("gone", provider="bad")), new=ok())
    asked: list[tuple[int, frozenset[str]]] = []

    async def requote(pending: int, skip: frozenset[str]) -> list[ProviderQuote]:
        asked.append((pending, skip))
        return [quote("bad"), quote("new")]  # the failed one is not taken back

    results, summary = drive(scheduler(3, [quote("bad", capacity=3)], fleet, requote=requote))
    assert summary.complete and {r.provider for r in results} == {"new"}
    assert asked == [(3, frozenset({"bad"}))]


def test_expired_quotes_are_renewed_mid_run() -> None:
    now = [1000.0]
    done = ok()

    async def slow_clock(order: BatchOrder) -> BatchResult:
        now[0] += 500  # each batch outlives the quote it was bought at
        return await done(order)

    asked: list[int] = []

    async def requote(pending: int, skip: frozenset[str]) -> list[ProviderQuote]:
        asked.append(pending)
        return [dataclasses.replace(quote("a", capacity=1, per_deal=1), expiry=now[0] + 100)]

    first = dataclasses.replace(quote("a", capacity=1, per_deal=1), expiry=1100.0)
    results, summary = drive(scheduler(3, [first], Fleet(a=slow_clock), requote=requote, clock=lambda: now[0]))
    assert summary.complete and asked == [2, 1]


# money ----------------------------------------------------------------------------------
def test_budget_too_low_up_front() -> None:
    with pytest.raises(BudgetTooLow) as caught:
        scheduler(10, [quote("a", price=10), quote("b", price=12)], Fleet(), budget=199)
    assert caught.value.needed == 200 and caught.value.budget == 199
    assert "0.0002 mUSD" in str(caught.value) and "raise the budget" in str(caught.value)


def test_no_quotes_is_no_bids() -> None:
    with pytest.raises(NoBids):
        scheduler(1, [], Fleet())


def test_running_out_of_budget_stops_cleanly_and_keeps_what_finished() -> None:
    liar = raises(lambda o: ResultMismatch("bad root", provider="cheap"), unless=lambda o: 0 in o.tasks)
    fleet = Fleet(cheap=liar, dear=ok())
    sched = scheduler(6, [quote("cheap", price=10, capacity=3, per_deal=2), quote("dear", price=11, capacity=3)],
                      fleet, budget=130, tasks_per_deal=2)
    results, summary = drive(sched)  # no exception
    assert [r.index for r in results] == [0, 1]
    assert summary.done == (0, 1) and summary.not_run == (2, 3, 4, 5) and summary.failed == {}
    assert (summary.stopped or "").startswith("budget") and "4 task(s) not run" in (summary.stopped or "")
    assert summary.committed == 120 <= summary.budget  # 40 for the good batch + 2 x 40 held in challenged deals
    assert fleet.by("dear") == []  # 11 a task (+ fee) no longer fits
    assert max(s.committed + s.reserved for s in events_of(sched, Spend)) <= 130


def test_a_dearer_provider_gets_no_batch_that_would_strand_the_rest() -> None:
    # cheap has 1 lane of 1 task; dear has room, but the budget covers all tasks only at the cheap price
    fleet = Fleet(cheap=ok(0.01), dear=ok())
    sched = scheduler(4, [quote("cheap", price=10, capacity=1, per_deal=1), quote("dear", price=30, capacity=4)],
                      fleet, budget=COSTS.cost(4, 10) + COSTS.cost(1, 30) - COSTS.cost(1, 10))
    _, summary = drive(sched)
    assert summary.complete and len(fleet.by("dear")) == 1 and summary.committed <= summary.budget


# stragglers -----------------------------------------------------------------------------
def test_a_straggler_gets_a_duplicate_and_the_first_verified_copy_wins() -> None:
    fleet = Fleet(a=ok(lambda o: 5.0 if 3 in o.tasks else 0.01), b=ok(0.01))
    sched = scheduler(4, [quote("a", capacity=4, per_deal=1), quote("b", price=20, capacity=1)], fleet,
                      speculate_after=3.0)
    t0 = time.monotonic()
    results, summary = drive(sched)
    assert time.monotonic() - t0 < 1.0  # it did not wait for the straggler
    assert summary.complete and {r.index: r.provider for r in results}[3] == "b"
    (dup,) = [e for e in events_of(sched, BatchDispatched) if e.speculative]
    assert dup.provider == "b" and dup.tasks == (3,)
    (cancelled,) = events_of(sched, BatchCancelled)
    assert cancelled.provider == "a" and cancelled.batch == dup.batch
    assert events_of(sched, ProviderExcluded) == []
    # the abandoned copy stays held (its provider may still open the deal), the winner at its price
    assert summary.committed == 3 * COSTS.cost(1, 10) + COSTS.cost(1, 10) + COSTS.cost(1, 20)


def test_no_duplicate_without_the_budget_for_it() -> None:
    fleet = Fleet(a=ok(lambda o: 0.3 if 1 in o.tasks else 0.01), b=ok())
    sched = scheduler(2, [quote("a", capacity=2, per_deal=1), quote("b", price=20, capacity=1)], fleet,
                      budget=COSTS.cost(2, 10))
    results, summary = drive(sched)
    assert summary.complete and all(r.provider == "a" for r in results) and fleet.by("b") == []


# the caller's side ------------------------------------------------------------------------
def test_map_run_writes_each_task_and_keeps_the_summary(tmp_path: Path) -> None:
    sched = scheduler(2, [quote("a")], Fleet(a=ok()), names=["first", "second"])

    async def setup() -> Scheduler:
        return sched

    async def go() -> MapRun:
        run = MapRun(setup, out_dir=tmp_path / "out")
        assert run.summary is None
        assert len(await run.collect()) == 2
        return run

    run = asyncio.run(go())
    assert run.summary is not None and run.summary.complete
    folder = tmp_path / "out" / "second"
    assert (folder / "stdout").read_bytes() == b"task 1\n" and (folder / "outputs" / "r.txt").read_bytes() == b"1"
    meta = json.loads((folder / "result.json").read_text())
    assert meta["index"] == 1 and meta["outcome"] == "ok" and meta["provider"] == "a"


def test_leaving_the_loop_early_stops_the_run() -> None:
    fleet = Fleet(a=ok(lambda o: 0.0 if 0 in o.tasks else 5.0))
    sched = scheduler(3, [quote("a", capacity=3, per_deal=1)], fleet, speculate_after=None)

    async def go() -> None:
        stream = sched.stream()
        first = await stream.__anext__()
        assert first.index == 0
        await stream.aclose()  # type: ignore[attr-defined]

    t0 = time.monotonic()
    asyncio.run(go())
    assert time.monotonic() - t0 < 1.0
    assert sched.summary is not None and sched.summary.not_run == (1, 2)
    assert sched.summary.stopped == "stopped by the caller"
    assert len(events_of(sched, BatchCancelled)) == 2
