"""Python-in-WASM overhead: examples/python/numeric.py in the python runtime vs native CPython.

    python bench/python_overhead.py [--runs 3] [--n 200]

Native needs numpy and scipy: this interpreter's if it has them, else the system `python3`'s;
with neither, native is skipped with a message and the ratio is null. The last line is ONE
JSON object with ``python_wasm_vs_native_ratio``. No timing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mercato.domain.jobs import JobSpec, Limits
from mercato.runtimes import BlobStore, Workspace
from mercato.runtimes.python import PythonRuntime

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "python" / "numeric.py"


def _native_python() -> str | None:
    for exe in (sys.executable, shutil.which("python3")):
        if exe and subprocess.run([exe, "-c", "import numpy, scipy"], capture_output=True).returncode == 0:
            return exe
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=200)
    opts = parser.parse_args()
    cache = Path(os.environ.get("MERCATO_CACHE") or Path.home() / ".cache" / "mercato")  # bench = edge
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        blobs = BlobStore(tmp / "blobs")
        rt = PythonRuntime(blobs, cache_dir=cache, progress=lambda line: print(line, file=sys.stderr))
        spec = JobSpec(runtime="python", workload=blobs.put(SCRIPT.read_bytes()), args=(str(opts.n),), limits=Limits(fuel=10**13))
        rt.run(spec, Workspace.create(tmp))  # compile / warm the cache
        wasm = []
        for _ in range(opts.runs):
            r = rt.run(spec, Workspace.create(tmp))
            assert r.outcome.value == "ok", r.stderr
            wasm.append(r.timings.wall_ms / 1000)
        exe = _native_python()
        native = None
        if exe is None:
            print("native numpy/scipy not found (pip install numpy scipy to compare); skipping native", file=sys.stderr)
        else:
            (tmp / "out").mkdir()
            local = tmp / "numeric_native.py"
            local.write_text(SCRIPT.read_text().replace("/output/", f"{tmp / 'out'}/"))
            times = []
            for _ in range(opts.runs):
                start = time.perf_counter()
                subprocess.run([exe, str(local), str(opts.n)], check=True, capture_output=True)
                times.append(time.perf_counter() - start)
            native = statistics.median(times)
    w = statistics.median(wasm)
    print(f"numeric.py n={opts.n}: wasm {w:.3f} s, native {native if native is None else round(native, 3)} s", file=sys.stderr)
    print(json.dumps({
        "python_wasm_vs_native_ratio": None if native is None else round(w / native, 3),
        "wasm_s": round(w, 4),
        "native_s": None if native is None else round(native, 4),
        "fuel_used": r.fuel_used,
        "runs": opts.runs,
        "n": opts.n,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
