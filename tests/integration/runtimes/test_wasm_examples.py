"""The C examples: correct, and bit-for-bit the same result and fuel in one process and across
processes (through the CLI, the provider's code path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mercato.domain.jobs import Outcome

from .conftest import EXAMPLES

DATA = bytes(range(256)) * 64
CASES = {
    "montecarlo": (["200000", "7"], {}),
    "matmul": (["60"], {}),
    "hashchain": (["/input/data.bin", "500"], {"data.bin": DATA}),
}


def _cli(workload: Path, args: list[str], inputs: dict[str, bytes], tmp: Path, cache: Path) -> dict:
    cmd = [sys.executable, "-c", "from mercato.cli import main; main()", "exec", str(workload), *args, "--json"]
    for name, data in inputs.items():
        p = tmp / name
        p.write_bytes(data)
        cmd += ["--input", str(p)]
    env = {**os.environ, "MERCATO_CACHE": str(cache)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_is_deterministic_in_process_and_across_processes(name, run_job, tmp_path, cache_dir):
    args, inputs = CASES[name]
    wasm = (EXAMPLES / "wasm" / f"{name}.wasm").read_bytes()
    first = run_job(wasm, *args, inputs=inputs)
    second = run_job(wasm, *args, inputs=inputs)
    assert first.outcome is Outcome.OK, first.stderr
    assert first.outputs, "every example writes a file under /output"
    assert (first.result_root, first.fuel_used) == (second.result_root, second.fuel_used)
    other = _cli(EXAMPLES / "wasm" / f"{name}.wasm", args, inputs, tmp_path, cache_dir)
    assert (other["result_root"], other["fuel_used"]) == (first.result_root, first.fuel_used)


def test_montecarlo_estimates_pi(run_job):
    r = run_job((EXAMPLES / "wasm" / "montecarlo.wasm").read_bytes(), "200000", "7")
    pi = float(r.stdout.decode().split("pi=")[1])
    assert abs(pi - 3.14159) < 0.02


def test_hashchain_matches_hashlib(run_job):
    import hashlib

    h = hashlib.sha256(DATA).digest()
    for _ in range(500):
        h = hashlib.sha256(h).digest()
    r = run_job((EXAMPLES / "wasm" / "hashchain.wasm").read_bytes(), "/input/data.bin", "500", inputs={"data.bin": DATA})
    assert r.outputs[0].path == "chain.txt"
    assert f"head={h.hex()}" in r.stdout.decode()


def test_seed_changes_nothing_for_a_seed_free_program_but_args_do(run_job):
    wasm = (EXAMPLES / "wasm" / "montecarlo.wasm").read_bytes()
    a = run_job(wasm, "1000", "1", seed=b"\x01" * 32)
    b = run_job(wasm, "1000", "1", seed=b"\x02" * 32)
    c = run_job(wasm, "1000", "2")
    assert a.result_root == b.result_root
    assert a.result_root != c.result_root
