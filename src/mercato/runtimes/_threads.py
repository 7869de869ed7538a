"""wasmtime-py made safe for sandboxes that run side by side in threads of one process.

    from mercato.runtimes import _threads
    _threads.install()          # idempotent; _engine.engine() calls it

wasmtime-py (49) keeps two process-wide pieces of state that its upstream does not guard:

- the ``Slab`` tables of host callbacks (``_func.FUNCTIONS``, ``_wasi.CUSTOM_OUTPUTS``): a
  free-list whose ``allocate``/``deallocate`` interleave badly when two threads define
  functions or drop stores at once (a slot then holds another entry's free-list link, and
  ``Linker.define_func`` fails with ``TypeError: list indices must be integers``, or a run
  calls another run's host function);
- ``_func.LAST_EXCEPTION``, where a host function's exception waits for the trap that follows
  it: a second thread's trap could raise the first thread's exception.

``install`` puts a lock around the slab's two mutating methods and replaces the host-call
trampoline with one that keeps the pending exception per thread (a host call always runs on
the thread that entered wasm, so the trap that follows it is raised on the same thread).
Everything else a run touches (engine, module, store, linker, instance) is either thread-safe
in wasmtime itself or owned by one run.
"""

from __future__ import annotations

import threading
from ctypes import c_void_p, cast
from typing import Any

from wasmtime import Trap, Val
from wasmtime import _func as wt_func
from wasmtime import _linker as wt_linker
from wasmtime import _slab as wt_slab
from wasmtime import _ffi as wt_ffi

__all__ = ["install"]

_installed = False
_install_lock = threading.Lock()
_pending = threading.local()  # .exc: the host exception this thread's next trap re-raises


def install() -> None:
    """Make wasmtime-py's global callback state safe to use from several threads (once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _lock_slabs()
        wt_func.trampoline = _trampoline
        wt_linker.trampoline = _trampoline  # imported by name there
        wt_func.maybe_raise_last_exn = _raise_pending
        _installed = True


def _lock_slabs() -> None:
    lock = threading.Lock()
    allocate, deallocate = wt_slab.Slab.allocate, wt_slab.Slab.deallocate

    def locked_allocate(self: Any, val: Any) -> int:
        with lock:
            return allocate(self, val)

    def locked_deallocate(self: Any, idx: int) -> None:
        with lock:
            deallocate(self, idx)

    wt_slab.Slab.allocate = locked_allocate  # type: ignore[method-assign]
    wt_slab.Slab.deallocate = locked_deallocate  # type: ignore[method-assign]


@wt_ffi.wasmtime_func_callback_t
def _trampoline(idx, caller, params, nparams, results, nresults):  # type: ignore[no-untyped-def]
    """wasmtime-py's host-call trampoline, with the pending exception kept per thread."""
    caller = wt_func.Caller(caller)
    try:
        func, result_tys, access_caller = wt_func.FUNCTIONS.get(idx or 0)
        args = [caller] if access_caller else []
        args += [Val._from_raw(caller, params[i], owned=False).value for i in range(nparams)]
        out = func(*args)
        if nresults == 0:
            if out is not None:
                raise wt_func.WasmtimeError("callback produced results when it shouldn't")
        elif nresults == 1:
            results[0] = Val._convert_to_raw(caller, result_tys[0], out)
        else:
            if len(out) != nresults:
                raise wt_func.WasmtimeError("callback produced wrong number of results")
            for i, value in enumerate(out):
                results[i] = Val._convert_to_raw(caller, result_tys[i], value)
        return 0
    except BaseException as e:  # noqa: BLE001 - becomes a trap, re-raised on this thread
        _pending.exc = e
        return cast(Trap("python exception")._consume(), c_void_p).value
    finally:
        caller._invalidate()


def _raise_pending() -> None:
    exc = getattr(_pending, "exc", None)
    if exc is not None:
        _pending.exc = None
        raise exc
