"""The one deterministic wasmtime engine per process, its epoch ticker and the module cache.

Every setting that could make two hosts disagree is pinned here: fuel metering, NaN
canonicalization, threads and relaxed SIMD off, a fixed 8 MiB wasm stack. Compiled modules
are cached by content hash in memory and, as wasmtime's serialized native code, on disk under
a cache folder the caller passes in (the CLI picks ``~/.cache/mercato`` or ``$MERCATO_CACHE``).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import wasmtime as wt
from wasmtime import _ffi as wt_ffi

from mercato.errors import RuntimeUnavailable, WorkloadError

__all__ = ["ENGINE_FINGERPRINT", "TICK_S", "ModuleCache", "engine", "epoch_ticker"]

WASM_STACK = 8 << 20  # bytes of native stack wasm frames may use; part of the determinism
THREAD_STACK = WASM_STACK + (4 << 20)  # guest threads also hold the host callbacks below it
TICK_S = 0.005  # epoch tick: the wall-clock cap's resolution
# Everything in the engine config, so a cache written under another config is never loaded.
_CONFIG = (
    ("consume_fuel", True),
    ("epoch_interruption", True),
    ("cranelift_nan_canonicalization", True),
    ("wasm_threads", False),
    ("wasm_relaxed_simd", False),
    ("wasm_relaxed_simd_deterministic", True),
    ("cranelift_opt_level", "speed"),
    ("max_wasm_stack", WASM_STACK),
)
ENGINE_FINGERPRINT = hashlib.sha256(repr(_CONFIG).encode()).hexdigest()[:16]

_lock = threading.Lock()
_engine: wt.Engine | None = None


def engine() -> wt.Engine:
    """The process's deterministic engine (made on first use)."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = _make_engine()
        return _engine


def _make_engine() -> wt.Engine:
    from mercato.runtimes import _threads

    _threads.install()  # lanes run sandboxes side by side in threads of this process
    cfg = wt.Config()
    # wasmtime-py builds with async support: its stack must hold the wasm stack, set it first.
    setter = getattr(wt_ffi.dll, "wasmtime_config_async_stack_size_set", None)
    if setter is None:
        raise RuntimeUnavailable("this wasmtime build cannot set its async stack size; install wasmtime 49")
    setter.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    setter(ctypes.cast(cfg.ptr(), ctypes.c_void_p), WASM_STACK)
    for name, value in _CONFIG:
        setattr(cfg, name, value)
    return wt.Engine(cfg)


class _EpochTicker:
    """While any job runs, one thread advances the engine's epoch every ``TICK_S`` seconds.

    A store's wall-clock cap is then ``ceil(cap / TICK_S)`` ticks past the epoch at its start;
    it catches up when the thread oversleeps, so the cap holds to within a tick or two.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _EpochTicker:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mercato-epoch", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1

    def _run(self) -> None:
        eng = engine()
        while True:
            with self._cond:
                while self._active == 0:
                    self._cond.wait()
            start, done = time.monotonic(), 0
            while True:
                with self._cond:
                    if self._active == 0:
                        break
                due = int((time.monotonic() - start) / TICK_S)
                for _ in range(due - done):
                    eng.increment_epoch()
                done = due
                time.sleep(TICK_S / 2)


epoch_ticker = _EpochTicker()


def _version_tag() -> str:
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:  # noqa: BLE001 - any metadata trouble only weakens the cache key
        return "unknown"


_MODULES: dict[str, wt.Module] = {}
_MODULES_LOCK = threading.Lock()
_COMPILING: dict[str, threading.Lock] = {}


class ModuleCache:
    """Compiled modules by content hash: in memory, then ``<cache_dir>/modules/*.cwasm``.

    ``ModuleCache(Path("~/.cache/mercato").expanduser()).get(digest, load_bytes)``

    The disk cache holds native code that wasmtime runs as found, so its folder is made 0700
    and files are written whole under a temporary name, then renamed into place. Processes
    sharing a cache folder compile a module once: the first holds ``<module>.lock`` (an
    advisory ``flock``, released by the kernel if it dies) while it compiles, and the others
    wait for it and load what it stored (the interpreter is a minute or two of both cores).
    """

    def __init__(self, cache_dir: Path | None, progress: Callable[[str], None] | None = None) -> None:
        self._dir = None if cache_dir is None else Path(cache_dir) / "modules"
        self._progress = progress
        # the engine is per process, so compiled modules are shared by every cache object
        self._mem = _MODULES
        self._lock = _MODULES_LOCK
        self._compiling = _COMPILING
        self.hits = {"memory": 0, "disk": 0, "compiled": 0}

    def path_for(self, digest: str) -> Path | None:
        """Where the serialized module for ``digest`` lives on disk (None without a cache)."""
        if self._dir is None:
            return None
        hexpart = digest.removeprefix("sha256:")
        return self._dir / f"{hexpart}-wasmtime{_version_tag()}-{ENGINE_FINGERPRINT}.cwasm"

    def get(self, digest: str, load_bytes: Callable[[], bytes], label: str = "module") -> wt.Module:
        """The compiled module for ``digest``; ``load_bytes`` is called only on a full miss."""
        with self._lock:
            mod = self._mem.get(digest)
            guard = self._compiling.setdefault(digest, threading.Lock())
        if mod is not None:
            self.hits["memory"] += 1
            return mod
        with guard:  # one thread compiles, the others wait for it
            with self._lock:
                mod = self._mem.get(digest)
            if mod is None:
                mod = self._load_or_compile(digest, load_bytes, label)
                with self._lock:
                    self._mem[digest] = mod
            return mod

    def _load_or_compile(self, digest: str, load_bytes: Callable[[], bytes], label: str) -> wt.Module:
        path = self.path_for(digest)
        if path is None:
            return self._compile(digest, load_bytes, label, None)
        with _file_lock(path.with_name(path.name + ".lock")):
            return self._compile(digest, load_bytes, label, path)

    def _compile(self, digest: str, load_bytes: Callable[[], bytes], label: str, path: Path | None) -> wt.Module:
        if path is not None and path.is_file():
            try:
                mod = wt.Module.deserialize_file(engine(), str(path))
                self.hits["disk"] += 1
                return mod
            except wt.WasmtimeError:
                path.unlink(missing_ok=True)  # stale or foreign: compiled again below
        data = load_bytes()
        if hashlib.sha256(data).hexdigest() != digest.removeprefix("sha256:"):
            raise WorkloadError(f"{label} does not match its content hash {digest}; fetch it again")
        big = len(data) > (8 << 20)
        if big and self._progress is not None:
            self._progress(f"compiling {label} ({len(data) >> 20} MiB) once for this machine; this takes a minute or two…")
        start = time.perf_counter()
        try:
            mod = wt.Module(engine(), data)
        except wt.WasmtimeError as e:
            raise WorkloadError(f"{label} is not a valid WebAssembly module: {_first_line(e)}") from None
        self.hits["compiled"] += 1
        if big and self._progress is not None:
            self._progress(f"compiled {label} in {time.perf_counter() - start:.0f} s; cached for next time")
        if path is not None:
            _store(mod, path)
        return mod


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` across processes; without a writable cache folder
    (or ``flock``), no lock: the worst case is compiling twice."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _store(mod: wt.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".cwasm-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(mod.serialize())
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)  # a cache that cannot be written only costs time


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
