"""Batch specs run task by task (runtimes.batch.run_spec), on the real wasm runtime: the
layout, the per-task seeds, failures recorded per task, and one deterministic result root."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from mercato.domain.batch import Task, split_outputs, task_seed
from mercato.domain.jobs import JobSpec, Limits, Outcome, Receipt
from mercato.errors import SpecError, WorkloadError
from mercato.runtimes import BlobStore, FakeRuntime, Workspace, content_hash, run_spec
from mercato.runtimes._receipt import collect_outputs
from mercato.runtimes.wasm import WasmRuntime
from mercato.verification.result_root import result_root, sha256_hex

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MONTECARLO = (EXAMPLES / "wasm" / "montecarlo.wasm").read_bytes()  # argv: samples seed; writes /output/pi.txt
# prints 32 bytes of random_get: what a task draws from its seed
ENTROPY = wasmtime.wat2wasm("""(module
  (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $r (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 100) (i32.const 0))
    (i32.store (i32.const 104) (i32.const 32))
    (drop (call $w (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))))""")


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def wasm(blobs: BlobStore) -> WasmRuntime:
    return WasmRuntime(blobs)


def _spec(blobs: BlobStore, workload: bytes, *tasks: tuple[str, ...], fuel: int = 10**8,
          seed: bytes = b"\x42" * 32) -> JobSpec:
    base = JobSpec(runtime="wasm", workload=blobs.put(workload), limits=Limits(fuel=fuel), seed=seed)
    return base.with_tasks(Task(args=a) for a in tasks)


def _run(runtime: object, spec: JobSpec, tmp_path: Path) -> tuple[Receipt, Workspace]:
    ws = Workspace.create(tmp_path)
    return run_spec(runtime, spec, ws), ws  # type: ignore[arg-type]


def _files(ws: Workspace, receipt: Receipt) -> dict[str, bytes]:
    return {o.path: (ws.output_dir / o.path).read_bytes() for o in receipt.outputs}


def test_a_plain_spec_runs_as_the_runtime_runs_it(wasm: WasmRuntime, blobs: BlobStore, tmp_path: Path) -> None:
    spec = JobSpec(runtime="wasm", workload=blobs.put(MONTECARLO), args=("1000", "7"), limits=Limits(fuel=10**8))
    got, _ = _run(wasm, spec, tmp_path)
    direct = wasm.run(spec, Workspace.create(tmp_path))
    assert (got.result_root, got.fuel_used, got.stdout) == (direct.result_root, direct.fuel_used, direct.stdout)
    assert [o.path for o in got.outputs] == ["pi.txt"]


def test_each_task_is_laid_out_and_the_receipt_is_one_ok_job(wasm: WasmRuntime, blobs: BlobStore,
                                                             tmp_path: Path) -> None:
    spec = _spec(blobs, MONTECARLO, ("1000", "1"), ("2000", "2"))
    receipt, ws = _run(wasm, spec, tmp_path)
    assert (receipt.outcome, receipt.exit_code, receipt.stdout, receipt.stderr) == (Outcome.OK, 0, b"", b"")
    assert [o.path for o in receipt.outputs] == [f"tasks/0000{i}/{name}" for i in (0, 1)
                                                 for name in ("exit", "fuel", "out/pi.txt", "stderr", "stdout")]
    tasks = split_outputs(_files(ws, receipt), 2)
    assert receipt.fuel_used == sum(t.fuel_used for t in tasks)
    assert receipt.message == "2 tasks: 2 ok"
    assert list(ws.tmp_dir.iterdir()) == []  # every task's sandbox is gone
    for i, task in enumerate(tasks):  # exactly what the task gives run alone as a plain spec
        alone = wasm.run(spec.task(i), Workspace.create(tmp_path))
        assert task.ok and (task.outcome, task.exit_code) == (alone.outcome.value, alone.exit_code)
        assert (task.fuel_used, task.stdout, task.stderr) == (alone.fuel_used, alone.stdout, alone.stderr)
        assert {p: sha256_hex(b) for p, b in task.outputs.items()} == {o.path: o.sha256 for o in alone.outputs}
    assert tasks[0].stdout.startswith(b"samples=1000 ") and tasks[1].stdout.startswith(b"samples=2000 ")


def test_the_root_is_the_result_root_of_the_files_written(wasm: WasmRuntime, blobs: BlobStore,
                                                          tmp_path: Path) -> None:
    receipt, ws = _run(wasm, _spec(blobs, MONTECARLO, ("500", "1"), ("500", "2"), ("500", "3")), tmp_path)
    listed, too_large = collect_outputs(ws.output_dir, 1 << 30)  # as a runtime lists any job's outputs
    assert not too_large and listed == receipt.outputs
    assert receipt.result_root == result_root(outputs=[(o.path, o.sha256) for o in listed], stdout=b"", stderr=b"",
                                              outcome="ok", exit_code=0)


def test_two_runs_give_the_same_files_and_root(wasm: WasmRuntime, blobs: BlobStore, tmp_path: Path) -> None:
    spec = _spec(blobs, MONTECARLO, ("3000", "1"), ("10000000", "2"), ("3000", "3"))
    a, ws_a = _run(wasm, spec, tmp_path)
    b, ws_b = _run(wasm, spec, tmp_path)
    assert (a.result_root, a.fuel_used, a.outputs) == (b.result_root, b.fuel_used, b.outputs)
    assert _files(ws_a, a) == _files(ws_b, b)
    other, _ = _run(wasm, _spec(blobs, MONTECARLO, ("3000", "1"), ("3000", "3")), tmp_path)
    assert other.result_root != a.result_root


def test_each_task_draws_from_its_own_seed(wasm: WasmRuntime, blobs: BlobStore, tmp_path: Path) -> None:
    spec = _spec(blobs, ENTROPY, (), (), ())  # three identical tasks
    receipt, ws = _run(wasm, spec, tmp_path)
    draws = [t.stdout for t in split_outputs(_files(ws, receipt), 3)]
    assert all(len(d) == 32 for d in draws) and len(set(draws)) == 3
    assert [spec.task(i).seed for i in range(3)] == [task_seed(spec.seed, i) for i in range(3)]
    plain = wasm.run(JobSpec(runtime="wasm", workload=spec.workload, seed=task_seed(spec.seed, 1)),
                     Workspace.create(tmp_path))
    assert plain.stdout == draws[1]  # task 1 is the plain job with seed sha256(seed || u32be(1))
    reseeded, ws2 = _run(wasm, _spec(blobs, ENTROPY, (), seed=b"\x43" * 32), tmp_path)
    assert split_outputs(_files(ws2, reseeded), 1)[0].stdout != draws[0]


def test_a_failed_task_is_recorded_and_the_others_still_run(wasm: WasmRuntime, blobs: BlobStore,
                                                            tmp_path: Path) -> None:
    fuel = 10**7
    spec = _spec(blobs, MONTECARLO, ("1000", "1"), ("100000000", "2"), ("1000", "3"), fuel=fuel)
    receipt, ws = _run(wasm, spec, tmp_path)
    tasks = split_outputs(_files(ws, receipt), 3)
    assert [(t.outcome, t.exit_code) for t in tasks] == [("ok", 0), ("fuel_exhausted", None), ("ok", 0)]
    assert (ws.output_dir / "tasks/00001/exit").read_bytes() == b"fuel_exhausted:-"
    assert tasks[1].fuel_used == fuel and tasks[1].outputs == {} and tasks[2].outputs  # the last one ran
    assert receipt.outcome is Outcome.OK and receipt.fuel_used == sum(t.fuel_used for t in tasks)
    assert receipt.message == "3 tasks: 2 ok, 1 fuel_exhausted"


def test_tasks_get_their_args_and_inputs(tmp_path: Path) -> None:
    base = JobSpec(runtime="wasm", workload=content_hash(b"w"), args=("run",),
                   inputs=(("common", content_hash(b"c")),))
    spec = base.with_tasks([Task(args=("a",), inputs=(("x", content_hash(b"x")),)), Task(args=("b",))])
    fake = FakeRuntime(outputs={"r/out.txt": b"r"})
    receipt, ws = _run(fake, spec, tmp_path)
    assert fake.calls == [spec.task(0), spec.task(1)]
    assert [c.args for c in fake.calls] == [("run", "a"), ("run", "b")]
    assert fake.calls[0].inputs == (("common", content_hash(b"c")), ("x", content_hash(b"x")))
    assert (ws.output_dir / "tasks/00001/out/r/out.txt").read_bytes() == b"r"
    assert [t.outputs for t in split_outputs(_files(ws, receipt), 2)] == [{"r/out.txt": b"r"}] * 2


def test_a_workload_that_cannot_run_is_an_error_not_a_result(wasm: WasmRuntime, blobs: BlobStore,
                                                             tmp_path: Path) -> None:
    spec = _spec(blobs, b"not a wasm module", ("1",), ("2",))
    ws = Workspace.create(tmp_path)
    with pytest.raises(WorkloadError):
        run_spec(wasm, spec, ws)
    assert list(ws.tmp_dir.iterdir()) == []


def test_a_runtime_refuses_a_batch_it_would_run_as_one_job(wasm: WasmRuntime, blobs: BlobStore,
                                                            tmp_path: Path) -> None:
    """Only ``run_spec`` runs a batch: a runtime handed one directly refuses it rather than
    silently running the base spec and dropping the tasks."""
    spec = _spec(blobs, MONTECARLO, ("10", "1"), ("10", "2"))
    with pytest.raises(WorkloadError, match="run_spec"):
        wasm.run(spec, Workspace.create(tmp_path))


def test_a_task_draws_the_seed_of_its_run_index_whichever_batch_carries_it(
        wasm: WasmRuntime, blobs: BlobStore, tmp_path: Path) -> None:
    """Task k of a run split over batches: with ``index=k`` it gets ``task_seed(seed, k)`` in any
    position of any batch, so a re-run elsewhere draws the same stream; indices may not repeat."""
    base = JobSpec(runtime="wasm", workload=blobs.put(ENTROPY), limits=Limits(fuel=10**8), seed=b"\x42" * 32)
    alone = base.with_tasks([Task(index=5)])
    second = base.with_tasks([Task(index=9), Task(index=5)])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, wa = _run(wasm, alone, tmp_path / "a")
    b, wb = _run(wasm, second, tmp_path / "b")
    assert split_outputs(_files(wa, a), 1)[0].stdout == split_outputs(_files(wb, b), 2)[1].stdout
    assert second.task(1).seed == task_seed(base.seed, 5) and second.task(0).seed == task_seed(base.seed, 9)
    with pytest.raises(SpecError, match="repeats seed index"):
        base.with_tasks([Task(index=1), Task()])  # position 1 is index 1 too
    assert JobSpec.from_json(second.to_json()) == second and "index" not in alone.with_tasks([Task()]).to_json()["tasks"][0]
