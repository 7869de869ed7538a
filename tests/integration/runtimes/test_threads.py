"""Sandboxes side by side: a provider's lanes run jobs in parallel threads of one process.

wasmtime-py keeps its host-function callbacks in a process-wide table that is not thread-safe
upstream; ``runtimes._threads`` makes it so. Without that, a few dozen runs in four threads
corrupt the table (``TypeError`` in ``Linker.define_func``, or a run that calls another's shim).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mercato.domain.jobs import Outcome

from .conftest import EXAMPLES

pytestmark = pytest.mark.integration


def test_four_threads_run_two_hundred_jobs_and_every_result_is_the_single_threaded_one(run_job):
    wasm = (EXAMPLES / "wasm" / "montecarlo.wasm").read_bytes()
    seeds = [str(i % 8) for i in range(200)]
    alone = {s: run_job(wasm, "2000", s) for s in sorted(set(seeds))}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def one(seed: str) -> tuple[str, object]:
        try:
            return seed, run_job(wasm, "2000", seed)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(e)
            raise

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(one, seeds))
    assert not errors, errors[:3]
    for seed, receipt in done:
        assert receipt.outcome is Outcome.OK, receipt.stderr
        assert (receipt.result_root, receipt.fuel_used) == (alone[seed].result_root, alone[seed].fuel_used)


def test_a_host_exception_in_one_thread_never_surfaces_in_another():
    """wasmtime-py hands a host function's exception to the next trap through one global; with
    threads, thread B's trap could raise thread A's exception. Each thread sees its own."""
    import wasmtime as wt

    from mercato.runtimes import _threads

    _threads.install()
    eng = wt.Engine()
    module = wt.Module(eng, '(module (import "h" "f" (func $f (param i32))) (func (export "run") (param i32) local.get 0 call $f))')
    barrier = threading.Barrier(2)
    seen: dict[int, list[str]] = {1: [], 2: []}

    def boom(n: int) -> None:
        barrier.wait(timeout=10)
        raise ValueError(f"from {n}")

    def runner(n: int) -> None:
        for _ in range(30):  # the race is a matter of scheduling: give it many chances
            store = wt.Store(eng)
            linker = wt.Linker(eng)
            linker.define_func("h", "f", wt.FuncType([wt.ValType.i32()], []), boom)
            inst = linker.instantiate(store, module)
            try:
                inst.exports(store)["run"](store, n)
            except ValueError as e:
                seen[n].append(str(e))

    threads = [threading.Thread(target=runner, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == {1: ["from 1"] * 30, 2: ["from 2"] * 30}
