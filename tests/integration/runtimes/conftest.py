"""Real-wasmtime fixtures shared by the whole session: one module cache, so the Python
interpreter is compiled at most once (and reused across sessions from the user cache)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mercato.cli.exec import cache_dir_from_env
from mercato.domain.jobs import JobSpec, Limits, Receipt
from mercato.runtimes import BlobStore, Workspace
from mercato.runtimes.python import PythonRuntime
from mercato.runtimes.wasm import WasmRuntime

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    path = cache_dir_from_env()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> BlobStore:
    return BlobStore(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="session")
def wasm_runtime(blobs: BlobStore, cache_dir: Path) -> WasmRuntime:
    return WasmRuntime(blobs, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def python_runtime(blobs: BlobStore, cache_dir: Path) -> PythonRuntime:
    rt = PythonRuntime(blobs, cache_dir=cache_dir, progress=lambda line: print(line, flush=True))
    rt.load()  # the one-time compile happens here, visibly
    return rt


@pytest.fixture
def run_job(blobs: BlobStore, tmp_path: Path, wasm_runtime: WasmRuntime) -> Callable[..., Receipt]:
    """run_job(workload_bytes, *args, runtime=..., inputs={name: bytes}, **limits) -> Receipt."""
    counter = iter(range(1_000_000))

    def run(
        workload: bytes,
        *args: str,
        rt: object | None = None,
        inputs: dict[str, bytes] | None = None,
        seed: bytes = bytes(32),
        **limits: object,
    ) -> Receipt:
        runtime = rt or wasm_runtime
        ref = blobs.put(workload)
        pairs = tuple(sorted((n, blobs.put(d)) for n, d in (inputs or {}).items()))
        spec = JobSpec(
            runtime=runtime.name,  # type: ignore[attr-defined]
            workload=ref,
            args=tuple(args),
            inputs=pairs,
            limits=Limits(**limits),  # type: ignore[arg-type]
            seed=seed,
        )
        ws_parent = tmp_path / f"ws{next(counter)}"
        ws_parent.mkdir()
        return runtime.run(spec, Workspace.create(ws_parent))  # type: ignore[attr-defined]

    return run
