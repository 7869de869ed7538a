"""Hostile workloads: each ends in its exact, deterministic outcome and the host is unharmed."""

from __future__ import annotations

import wasmtime
import pytest

from mercato.domain.jobs import Outcome
from mercato.errors import WorkloadError
from mercato.runtimes import BlobStore, Workspace
from mercato.runtimes.wasm import WasmRuntime

from .conftest import DATA, EXAMPLES

SPIN = "(module (memory (export \"memory\") 1) (func (export \"_start\") (loop $l (br $l))))"
MEMORY_BOMB = """(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
      (br $l))))"""
STDOUT_FLOOD = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $l (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))))"""
ENTROPY = """(module
  (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $c (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $r (i32.const 0) (i32.const 32)))
    (drop (call $c (i32.const 0) (i64.const 1) (i32.const 32)))
    (drop (call $c (i32.const 1) (i64.const 1) (i32.const 40)))
    (i32.store (i32.const 100) (i32.const 0))
    (i32.store (i32.const 104) (i32.const 48))
    (drop (call $w (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))))"""
EXIT_3 = """(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"""
TRAP = "(module (memory (export \"memory\") 1) (func (export \"_start\") unreachable))"
UNKNOWN_IMPORT = """(module (import "env" "evil" (func)) (memory (export "memory") 1)
  (func (export "_start") (call 0)))"""


def wat(text: str) -> bytes:
    return wasmtime.wat2wasm(text)


def test_infinite_loop_runs_out_of_fuel(run_job):
    r = run_job(wat(SPIN), fuel=10_000_000)
    assert r.outcome is Outcome.FUEL_EXHAUSTED
    assert r.fuel_used == 10_000_000
    assert "fuel exhausted" in r.message
    assert r.exit_code is None


def test_infinite_loop_with_huge_fuel_hits_the_wall_clock(run_job):
    r = run_job(wat(SPIN), fuel=10**15, wall_clock_s=0.3)
    assert r.outcome is Outcome.WALL_CLOCK_EXCEEDED
    assert r.timings.run_ms < 5000


def test_memory_bomb_exceeds_memory(run_job):
    r = run_job(wat(MEMORY_BOMB), memory_bytes=32 << 20)
    assert r.outcome is Outcome.MEMORY_EXCEEDED


def test_stdout_flood_is_output_too_large_and_deterministic(run_job):
    a = run_job(wat(STDOUT_FLOOD), stdout_bytes=100_000)
    b = run_job(wat(STDOUT_FLOOD), stdout_bytes=100_000)
    assert a.outcome is Outcome.OUTPUT_TOO_LARGE
    assert len(a.stdout) == 100_000
    assert (a.fuel_used, a.result_root) == (b.fuel_used, b.result_root)


def test_output_files_over_the_cap_are_output_too_large(run_job):
    r = run_job((EXAMPLES / "wasm" / "matmul.wasm").read_bytes(), "10", output_bytes=8)
    assert r.outcome is Outcome.OUTPUT_TOO_LARGE
    assert r.outputs == ()


def test_random_and_clock_come_from_the_seed_not_the_host(run_job):
    a = run_job(wat(ENTROPY), seed=b"\x07" * 32)
    b = run_job(wat(ENTROPY), seed=b"\x07" * 32)
    c = run_job(wat(ENTROPY), seed=b"\x08" * 32)
    assert a.stdout == b.stdout and len(a.stdout) == 48
    assert a.stdout[:32] != c.stdout[:32]
    realtime = int.from_bytes(a.stdout[32:40], "little")
    assert 1_704_067_200 * 10**9 <= realtime < 1_704_067_200 * 10**9 + 10**9  # the virtual epoch


def test_exit_code_is_captured(run_job):
    r = run_job(wat(EXIT_3))
    assert (r.outcome, r.exit_code) == (Outcome.EXIT_NONZERO, 3)


def test_trap_is_reported(run_job):
    r = run_job(wat(TRAP))
    assert r.outcome is Outcome.TRAP
    assert r.exit_code is None


def test_escaping_the_preopens_fails_inside_the_guest(run_job):
    r = run_job((DATA / "escape.wasm").read_bytes(), inputs={"data.txt": b"hello"})
    lines = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    assert r.outcome is Outcome.OK
    # WASI errno: 76 ENOTCAPABLE (no preopen covers the path), 63 EPERM (".." leaves a preopen
    # or a write into the read-only /input)
    assert lines["abs_etc_passwd"] == "errno=76"
    assert lines["dotdot_input"] == "errno=63"
    assert lines["dotdot_output"] == "errno=63"
    assert lines["relative_dotdot"] == "errno=76"
    assert lines["write_input"] == "errno=63"
    assert lines["read_input"] == "ok"
    assert lines["write_output"] == "ok"
    assert [o.path for o in r.outputs] == ["ok.txt"]


def test_unknown_import_is_rejected_by_name(run_job):
    with pytest.raises(WorkloadError, match="env.evil"):
        run_job(wat(UNKNOWN_IMPORT))


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"\x00asm\x01\x00\x00\x00\xff\xff\xff", id="malformed"),
        pytest.param((EXAMPLES / "wasm" / "montecarlo.wasm").read_bytes()[:5000], id="truncated"),
        pytest.param(b"(module)", id="text-not-binary"),
        pytest.param(b"", id="empty"),
    ],
)
def test_malformed_modules_are_workload_errors(run_job, blob):
    with pytest.raises(WorkloadError):
        run_job(blob)


def test_oversized_module_is_a_workload_error(tmp_path, cache_dir):
    blobs = BlobStore(tmp_path / "blobs")
    rt = WasmRuntime(blobs, cache_dir=cache_dir, max_module_bytes=1000)
    from mercato.domain.jobs import JobSpec

    ref = blobs.put((EXAMPLES / "wasm" / "montecarlo.wasm").read_bytes())
    with pytest.raises(WorkloadError, match="over the cap"):
        rt.run(JobSpec(runtime="wasm", workload=ref), Workspace.create(tmp_path))
