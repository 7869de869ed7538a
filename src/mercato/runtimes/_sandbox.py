"""One deterministic execution of a compiled WASI preview1 module.

What the guest can reach: the argv and sorted env it is given, the preopened folders it is
given (nothing else of the host), stdout/stderr captured up to a cap, no stdin, no network.
What would differ between hosts is replaced by host functions shadowing wasmtime's own:

- ``random_get``: a SHA-256 counter-mode stream keyed by the job seed;
- ``clock_time_get``: a virtual clock, ``base + fuel consumed + time slept`` in nanoseconds
  (1 fuel ~ 1 ns), with ``REALTIME_BASE_NS`` (2024-01-01T00:00:00Z) as the wall-clock base;
- ``clock_res_get``: 1 ns for every clock;
- ``poll_oneoff``: never blocks; a clock wait advances the virtual clock instead, and fd
  subscriptions are reported ready at once;
- ``fd_filestat_get``, ``path_filestat_get``, ``fd_readdir`` and the ``*_set_times`` calls:
  inode numbers, host timestamps, folder sizes and listing order are rewritten into values
  that depend on the job alone (see ``_fsview``).

Inputs are staged in sorted order with fixed times.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
import threading
import time
from ctypes import byref, c_uint64
from dataclasses import dataclass
from pathlib import Path

import wasmtime as wt
from wasmtime import _bindings as wt_bindings
from wasmtime import _ffi as wt_ffi

from mercato.errors import WorkloadError
from mercato.runtimes import _engine, _fsview

__all__ = ["Preopen", "RawResult", "WASI_PREVIEW1", "check_imports", "execute"]

WASI = "wasi_snapshot_preview1"
WASI_PREVIEW1 = frozenset(
    """args_get args_sizes_get environ_get environ_sizes_get clock_res_get clock_time_get
    fd_advise fd_allocate fd_close fd_datasync fd_fdstat_get fd_fdstat_set_flags
    fd_fdstat_set_rights fd_filestat_get fd_filestat_set_size fd_filestat_set_times fd_pread
    fd_prestat_get fd_prestat_dir_name fd_pwrite fd_read fd_readdir fd_renumber fd_seek fd_sync
    fd_tell fd_write path_create_directory path_filestat_get path_filestat_set_times path_link
    path_open path_readlink path_remove_directory path_rename path_symlink path_unlink_file
    poll_oneoff proc_exit proc_raise sched_yield random_get sock_accept sock_recv sock_send
    sock_shutdown""".split()
)
REALTIME_BASE_NS = 1_704_067_200 * 10**9
UNMETERED = 2**63 - 1  # instantiation's budget; the job's cap is set once the instance exists
EFAULT, EINVAL = 21, 28  # WASI errno values (ESUCCESS lives with the memory helpers in _fsview)
_SUB = struct.Struct("<QB7xIxxxxQQH6x")  # userdata, tag, clock id | fd, timeout, precision, flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_ABSTIME = 1
_I32, _I64 = wt.ValType.i32(), wt.ValType.i64()


@dataclass(frozen=True, slots=True)
class Preopen:
    """A host folder the guest sees at ``guest`` (read-only unless ``writable``)."""

    host: Path
    guest: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class RawResult:
    """What came out of the engine, before it is judged into an ``Outcome``."""

    exit_code: int | None
    trap: str | None  # "fuel", "interrupt", "output", or another trap's first line
    fuel_used: int
    stdout: bytes
    stderr: bytes
    stream_overflow: bool
    memory_bytes: int  # the guest's linear memory at the end
    run_ms: float


def check_imports(module: wt.Module, extra: frozenset[tuple[str, str]] = frozenset()) -> None:
    """Raise ``WorkloadError`` naming the first import that is neither WASI preview1 nor in ``extra``."""
    for imp in module.imports:
        if (imp.module, imp.name) in extra:
            continue
        if imp.module != WASI or imp.name not in WASI_PREVIEW1 or not isinstance(imp.type, wt.FuncType):
            raise WorkloadError(
                f"the module imports {imp.module}.{imp.name}, which the sandbox does not provide; "
                "build it for wasm32-wasi (WASI preview1) with no other imports"
            )


class _Stream:
    """A bounded capture of stdout or stderr; overflow stops the guest at once."""

    def __init__(self, cap: int, on_overflow: callable) -> None:  # type: ignore[valid-type]
        self.cap, self.data, self.overflow = cap, bytearray(), False
        self._on_overflow = on_overflow

    def write(self, chunk: bytes) -> int:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.data += chunk[: max(room, 0)]
            if not self.overflow:
                self.overflow = True
                self._on_overflow()
        else:
            self.data += chunk
        return len(chunk)


class _Run:
    """One execution's deterministic state, read by the shadowing host functions."""

    def __init__(self, seed: bytes, fuel: int) -> None:
        self.seed, self.fuel = seed, fuel
        self.counter, self.pool = 0, b""
        self.metered = False
        self.slept_ns = 0
        self.stop_fuel: int | None = None  # set when an output cap stopped the guest
        self.store: wt.Store | None = None
        self.deadline = 0.0
        self.wall_expired = False

    def consumed(self, context: object) -> int:
        if not self.metered:
            return 0
        left = c_uint64(0)
        wt_ffi.wasmtime_context_get_fuel(context, byref(left))
        return self.fuel - left.value

    def random(self, n: int) -> bytes:
        while len(self.pool) < n:
            block = hashlib.sha256(b"mercato/random_get\x00" + self.seed + self.counter.to_bytes(8, "big"))
            self.pool += block.digest()
            self.counter += 1
        out, self.pool = self.pool[:n], self.pool[n:]
        return out

    def now(self, clock_id: int, context: object) -> int | None:
        if clock_id not in (0, 1, 2, 3):
            return None
        elapsed = self.consumed(context) + (self.slept_ns if clock_id < 2 else 0)
        return (REALTIME_BASE_NS if clock_id == 0 else 0) + elapsed




def _define_shims(linker: wt.Linker, run: _Run) -> None:
    def random_get(caller: wt.Caller, buf: int, n: int) -> int:
        return _fsview.write_guest(caller, buf & 0xFFFFFFFF, run.random(n & 0xFFFFFFFF))

    def clock_time_get(caller: wt.Caller, clock_id: int, _precision: int, out: int) -> int:
        now = run.now(clock_id, caller._context())
        return EINVAL if now is None else _fsview.write_guest(caller, out & 0xFFFFFFFF, now.to_bytes(8, "little"))

    def clock_res_get(caller: wt.Caller, clock_id: int, out: int) -> int:
        if clock_id not in (0, 1, 2, 3):
            return EINVAL
        return _fsview.write_guest(caller, out & 0xFFFFFFFF, (1).to_bytes(8, "little"))

    def poll_oneoff(caller: wt.Caller, in_ptr: int, out_ptr: int, n: int, nevents_ptr: int) -> int:
        return _poll(caller, run, in_ptr & 0xFFFFFFFF, out_ptr & 0xFFFFFFFF, n & 0xFFFFFFFF, nevents_ptr & 0xFFFFFFFF)

    linker.allow_shadowing = True
    linker.define_func(WASI, "random_get", wt.FuncType([_I32, _I32], [_I32]), random_get, True)
    linker.define_func(WASI, "clock_time_get", wt.FuncType([_I32, _I64, _I32], [_I32]), clock_time_get, True)
    linker.define_func(WASI, "clock_res_get", wt.FuncType([_I32, _I32], [_I32]), clock_res_get, True)
    linker.define_func(WASI, "poll_oneoff", wt.FuncType([_I32] * 4, [_I32]), poll_oneoff, True)


def _poll(caller: wt.Caller, run: _Run, in_ptr: int, out_ptr: int, n: int, nevents_ptr: int) -> int:
    """Answer at once: fd subscriptions are ready; otherwise the earliest clock fires and the
    virtual clock advances by its wait."""
    if n == 0 or n > 4096:
        return EINVAL
    raw = _fsview.read_guest(caller, in_ptr, n * _SUB.size)
    if raw is None:
        return EFAULT
    subs = [_SUB.unpack_from(raw, i * _SUB.size) for i in range(n)]
    fds = [s for s in subs if s[1] in (1, 2)]
    events: list[bytes] = []
    if fds:
        events = [_EVENT.pack(s[0], 0, s[1], 0, 0) for s in fds]
    else:
        waits = []
        for userdata, tag, clock_id, timeout, _prec, flags in subs:
            if tag != 0:
                return EINVAL
            now = run.now(clock_id, caller._context())
            if now is None:
                return EINVAL
            waits.append((max(0, timeout - now) if flags & _ABSTIME else timeout, userdata))
        shortest = min(w for w, _ in waits)
        run.slept_ns += shortest
        events = [_EVENT.pack(u, 0, 0, 0, 0) for w, u in waits if w <= shortest]
    status = _fsview.write_guest(caller, out_ptr, b"".join(events))
    return status or _fsview.write_guest(caller, nevents_ptr, len(events).to_bytes(4, "little"))


def execute(
    module: wt.Module,
    *,
    argv: list[str],
    env: list[tuple[str, str]],
    preopens: list[Preopen],
    seed: bytes,
    fuel: int,
    memory_bytes: int,
    wall_clock_s: float,
    stream_bytes: int,
    entry: str = "_start",
    extra_funcs: tuple[tuple[str, str, wt.FuncType, object], ...] = (),
) -> RawResult:
    """Instantiate ``module`` in a fresh store and run ``entry`` under the given caps."""
    eng = _engine.engine()
    store = wt.Store(eng)
    run = _Run(seed, fuel)
    run.store = store

    def stop_now() -> None:  # an output cap was hit (on wasmtime's writer thread)
        run.stop_fuel = 0  # the epoch callback stops the guest within a tick

    out, err = _Stream(stream_bytes, stop_now), _Stream(stream_bytes, stop_now)
    wasi = wt.WasiConfig()
    wasi.argv = argv
    wasi.env = sorted(env)
    wasi.stdout_custom = out.write
    wasi.stderr_custom = err.write
    for p in preopens:
        wasi.preopen_dir(str(p.host), p.guest, p.writable)
    store.set_wasi(wasi)
    store.set_limits(memory_size=memory_bytes)
    linker = wt.Linker(eng)
    linker.define_wasi()
    _define_shims(linker, run)
    view = _fsview.FileView(lambda caller: run.now(0, caller._context()) or 0)
    _fsview.define(linker, view)
    for mod_name, name, ty, fn in extra_funcs:
        linker.define_func(mod_name, name, ty, fn)
    outcome: dict[str, object] = {}
    run.deadline = time.monotonic() + wall_clock_s
    callback = _watch(store, run)  # kept alive until the guest is done

    def guest() -> None:
        try:
            store.set_fuel(UNMETERED)
            view.attach(store)
            instance = linker.instantiate(store, module)
            store.set_fuel(fuel)
            run.metered = True
            exports = instance.exports(store)
            if entry != "_start" and "_initialize" in exports:
                exports["_initialize"](store)
            result = exports[entry](store)
            outcome["exit"] = result if isinstance(result, int) else 0
        except wt.ExitTrap as e:
            outcome["exit"] = e.code
        except wt.Trap as e:
            outcome["trap"] = e
        except wt.WasmtimeError as e:
            outcome["error"] = e
        except KeyError:
            outcome["error"] = WorkloadError(f"the module exports no {entry!r} function")
        outcome["memory"] = _memory_size(store, locals().get("instance"))

    start = time.perf_counter()
    with _engine.epoch_ticker:
        store.set_epoch_deadline(1)
        _on_big_stack(guest)
    del callback
    run_ms = (time.perf_counter() - start) * 1000
    return _raw(outcome, run, store, out, err, run_ms)


def _raw(outcome: dict[str, object], run: _Run, store: wt.Store, out: _Stream, err: _Stream, run_ms: float) -> RawResult:
    trap: str | None = None
    used = run.fuel - store.get_fuel() if run.metered else 0
    if run.stop_fuel is not None:
        trap, used = "output", run.stop_fuel
    elif run.wall_expired:
        trap = "interrupt"
    elif "trap" in outcome:
        e = outcome["trap"]
        code = getattr(e, "trap_code", None)
        if code == wt.TrapCode.OUT_OF_FUEL:
            trap, used = "fuel", run.fuel
        elif code == wt.TrapCode.INTERRUPT:
            trap = "interrupt"
        else:
            trap = _first_line(e)
    elif "error" in outcome:
        e = outcome["error"]
        if isinstance(e, WorkloadError):
            raise e
        trap = _first_line(e)
    return RawResult(
        exit_code=outcome.get("exit"),  # type: ignore[arg-type]
        trap=trap,
        fuel_used=used,
        stdout=bytes(out.data),
        stderr=bytes(err.data),
        stream_overflow=out.overflow or err.overflow,
        memory_bytes=int(outcome.get("memory", 0)),  # type: ignore[call-overload]
        run_ms=run_ms,
    )


_EPOCH_CALLBACK = wt_bindings._wasmtime_store_epoch_deadline_callback.argtypes[1]
_EPOCH_FINALIZER = wt_bindings._wasmtime_store_epoch_deadline_callback.argtypes[3]


def _watch(store: wt.Store, run: _Run) -> object:
    """Every epoch tick, on the guest's thread: stop it once the wall clock passed its cap or
    an output cap was hit; otherwise continue for one more tick. Returns the C callback, which
    the caller keeps alive for as long as the store runs."""

    def on_epoch(_context: object, _data: object, delta: object, _kind: object) -> int:
        try:
            if run.stop_fuel is None:
                if time.monotonic() < run.deadline:
                    delta[0] = 1  # type: ignore[index]
                    return 0
                run.wall_expired = True
            error = ctypes.cast(wt_ffi.wasmtime_error_new(b"stopped by mercato"), ctypes.c_void_p)
            return error.value or 0
        except BaseException:  # noqa: BLE001 - never unwind into wasmtime
            delta[0] = 1  # type: ignore[index]
            return 0

    callback = _EPOCH_CALLBACK(on_epoch)
    wt_ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, _EPOCH_FINALIZER())
    return callback


def _memory_size(store: wt.Store, instance: wt.Instance | None) -> int:
    if instance is None:
        return 0
    mem = instance.exports(store).get("memory")
    return mem.data_len(store) if isinstance(mem, wt.Memory) else 0


def _first_line(e: object) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _on_big_stack(fn: callable) -> None:  # type: ignore[valid-type]
    """Run ``fn`` on a fresh thread whose native stack holds the fixed wasm stack."""
    box: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the calling thread
            box.append(e)

    with _stack_lock:
        old = threading.stack_size(_engine.THREAD_STACK)
        try:
            t = threading.Thread(target=target, name="mercato-guest")
            t.start()
        finally:
            threading.stack_size(old)
    t.join()
    if box:
        raise box[0]


_stack_lock = threading.Lock()
