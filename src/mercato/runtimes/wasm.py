"""The ``wasm`` runtime: any WASI preview1 module, run deterministically with fuel metering.

    runtime = WasmRuntime(BlobStore(blob_dir), cache_dir=cache)
    receipt = runtime.run(spec, Workspace.create())

The guest sees ``/input`` (read-only, the spec's inputs staged in sorted order with fixed
times) and ``/output`` (writable); argv is ``["main.wasm", *spec.args]`` and the env is
exactly ``spec.env``. Modules are compiled once per machine (see ``ModuleCache``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import wasmtime as wt

from mercato.domain.jobs import JobSpec, Receipt
from mercato.errors import WorkloadError
from mercato.runtimes import _engine, _sandbox
from mercato.runtimes._receipt import build_receipt
from mercato.runtimes.base import Workspace
from mercato.runtimes.blobs import BlobStore

__all__ = ["DEFAULT_MAX_MODULE_BYTES", "WasmRuntime", "stage_inputs"]

DEFAULT_MAX_MODULE_BYTES = 64 << 20


def stage_inputs(spec: JobSpec, blobs: BlobStore, workspace: Workspace) -> None:
    """Copy each input into the workspace in sorted name order (hash-checked on the way)."""
    for name, ref in sorted(spec.inputs):
        workspace.stage_input(name, blobs.get(ref))
    workspace.seal_inputs()


WASM_MAGIC = b"\x00asm"


def _wasm_binary(data: bytes) -> bytes:
    """Only binary modules are workloads (wasmtime would also parse WAT text)."""
    if not data.startswith(WASM_MAGIC):
        raise WorkloadError("the workload is not a WebAssembly binary (no \\0asm header); build it with --target=wasm32-wasi")
    return data


class WasmRuntime:
    """Runs ``runtime="wasm"`` specs; ``progress`` receives one-line notes on slow steps."""

    name = "wasm"

    def __init__(
        self,
        blobs: BlobStore,
        *,
        cache_dir: Path | None = None,
        max_module_bytes: int = DEFAULT_MAX_MODULE_BYTES,
        progress: Callable[[str], None] | None = None,
        module_cache: _engine.ModuleCache | None = None,
    ) -> None:
        self.blobs = blobs
        self.max_module_bytes = max_module_bytes
        self.modules = module_cache or _engine.ModuleCache(cache_dir, progress)

    def load(self, ref: str) -> wt.Module:
        """The compiled, import-checked module for a workload hash (``WorkloadError`` if unfit)."""
        size = self.blobs.size(ref)
        if size > self.max_module_bytes:
            raise WorkloadError(
                f"the module is {size} bytes, over the cap of {self.max_module_bytes}; strip it (wasm-opt -O) or split the job"
            )
        module = self.modules.get(ref, lambda: _wasm_binary(self.blobs.get(ref)), label="the workload module")
        _sandbox.check_imports(module)
        return module

    def run(self, spec: JobSpec, workspace: Workspace) -> Receipt:
        """Execute ``spec`` (``runtime`` must be ``"wasm"``)."""
        if spec.runtime != self.name:
            raise WorkloadError(f"the wasm runtime cannot run a {spec.runtime!r} job")
        if spec.tasks:
            raise WorkloadError("a batch spec runs task by task: use mercato.runtimes.run_spec")
        start = time.perf_counter()
        module = self.load(spec.workload)
        compile_ms = (time.perf_counter() - start) * 1000
        stage_inputs(spec, self.blobs, workspace)
        raw = _sandbox.execute(
            module,
            argv=["main.wasm", *spec.args],
            env=list(spec.env),
            preopens=[
                _sandbox.Preopen(workspace.input_dir, "/input", False),
                _sandbox.Preopen(workspace.output_dir, "/output", True),
            ],
            seed=spec.seed,
            fuel=spec.limits.fuel,
            memory_bytes=spec.limits.memory_bytes,
            wall_clock_s=spec.limits.wall_clock_s,
            stream_bytes=spec.limits.stdout_bytes,
        )
        wall_ms = (time.perf_counter() - start) * 1000
        return build_receipt(raw, spec.limits, workspace.output_dir, compile_ms, wall_ms)
