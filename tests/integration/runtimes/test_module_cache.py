"""The on-disk module cache shared by processes: a module is compiled once per cache folder,
whoever asks first; the others wait for it and load what it stored."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import wasmtime as wt

from mercato.runtimes._engine import ModuleCache, engine

WASM = Path(__file__).resolve().parents[3] / "examples" / "wasm" / "montecarlo.wasm"

CHILD = """
import json, sys
from pathlib import Path
from mercato.runtimes._engine import ModuleCache
cache = ModuleCache(Path(sys.argv[1]))
print("asking", flush=True)
cache.get(sys.argv[2], Path(sys.argv[3]).read_bytes)
print(json.dumps(cache.hits))
"""


def test_a_second_process_waits_for_the_compiling_one_and_loads_its_module(tmp_path: Path) -> None:
    data = WASM.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    cache = ModuleCache(tmp_path)
    path = cache.path_for(digest)
    assert path is not None
    path.parent.mkdir(parents=True)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as if this process were compiling it
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), digest, str(WASM)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "asking"
        time.sleep(1.0)  # compiling this module takes a fraction of that
        assert child.poll() is None, "the second process did not wait for the lock"
        path.write_bytes(wt.Module(engine(), data).serialize())  # what the compiling process stores
    finally:
        os.close(lock)  # releases the lock
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.strip().endswith('{"memory": 0, "disk": 1, "compiled": 0}')  # loaded, not compiled again
