"""WASM sandbox overhead: each C example natively (gcc -O2) vs in the wasm runtime.

    python bench/sandbox_overhead.py [--runs 5]

Prints one line per example, then ONE JSON object as the last line with
``wasm_vs_native_ratio`` (the worst CPU-bound example) and ``warm_start_ms`` (module-cache
hit to first instruction: instantiation and the call into ``_start`` of an empty module,
median). Needs the native builds from ``bash examples/build.sh``; no timing asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

from mercato.domain.jobs import JobSpec, Limits
from mercato.runtimes import BlobStore, Workspace
from mercato.runtimes import _engine, _sandbox
from mercato.runtimes.wasm import WasmRuntime

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
DATA = bytes(range(256)) * 4096
CASES = {  # name: (args, inputs) sized so each native run takes ~0.3-1 s
    "montecarlo": (["60000000", "7"], {}),
    "matmul": (["800"], {}),
    "hashchain": (["/input/data.bin", "1500000"], {"data.bin": DATA}),
}


def _native(name: str, args: list[str], inputs: dict[str, bytes], tmp: Path) -> float:
    binary = EX / "build" / name
    if not binary.exists():
        subprocess.run(["bash", str(EX / "build.sh")], check=True, capture_output=True)
    argv = [str(binary), *[a.replace("/input/", f"{tmp}/in/") for a in args]]
    if name == "hashchain":
        argv.append(str(tmp / "chain.txt"))
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def _wasm(rt: WasmRuntime, blobs: BlobStore, name: str, args: list[str], inputs: dict[str, bytes], tmp: Path) -> float:
    ref = blobs.put((EX / "wasm" / f"{name}.wasm").read_bytes())
    pairs = tuple(sorted((n, blobs.put(d)) for n, d in inputs.items()))
    spec = JobSpec(runtime="wasm", workload=ref, args=tuple(args), inputs=pairs, limits=Limits(fuel=10**13))
    ws = Workspace.create(tmp)
    receipt = rt.run(spec, ws)
    ws.remove()
    assert receipt.outcome.value == "ok", receipt.stderr
    return receipt.timings.run_ms / 1000


def _warm_start_ms(runs: int) -> float:
    empty = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start")))')
    module = wasmtime.Module(_engine.engine(), empty)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _sandbox.execute(module, argv=["x"], env=[], preopens=[], seed=bytes(32), fuel=10**6,
                         memory_bytes=1 << 24, wall_clock_s=10, stream_bytes=1024)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        (tmp / "in").mkdir()
        (tmp / "in" / "data.bin").write_bytes(DATA)
        blobs = BlobStore(tmp / "blobs")
        rt = WasmRuntime(blobs, cache_dir=tmp / "cache")
        ratios = {}
        for name, (args, inputs) in CASES.items():
            _wasm(rt, blobs, name, args, inputs, tmp)  # compile + warm
            native = statistics.median(_native(name, args, inputs, tmp) for _ in range(opts.runs))
            wasm = statistics.median(_wasm(rt, blobs, name, args, inputs, tmp) for _ in range(opts.runs))
            ratios[name] = {"native_s": round(native, 4), "wasm_s": round(wasm, 4), "ratio": round(wasm / native, 3)}
            print(f"{name}: native {native:.3f} s, wasm {wasm:.3f} s, ratio {wasm / native:.2f}", file=sys.stderr)
        warm = _warm_start_ms(max(opts.runs, 20))
    worst = max(ratios, key=lambda n: ratios[n]["ratio"])
    print(json.dumps({
        "wasm_vs_native_ratio": ratios[worst]["ratio"],
        "worst_example": worst,
        "warm_start_ms": round(warm, 3),
        "examples": ratios,
        "runs": opts.runs,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
