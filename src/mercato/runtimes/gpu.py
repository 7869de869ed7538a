"""NVIDIA GPUs on this machine: detection, matching a job's request, and engine flags.

    gpus = detect_gpus()                 # [] without nvidia-smi / NVML: never an exception
    pool = GpuPool(gpus)
    with pool.lease(count=1, min_memory_mb=40_000, model="H100") as held:
        flags = gpu_flags(held, cdi=has_cdi_spec())

Detection asks ``nvidia-smi`` for ``index,name,memory.total,uuid,driver_version`` as CSV
(memory in MiB) and, where it is missing or fails, NVML through ``pynvml`` when that package
happens to be installed (it is not a dependency). A job asking for GPUs the machine lacks is
declined with ``GpuUnavailable``, whose message says which requirement failed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mercato.errors import GpuUnavailable

__all__ = [
    "CDI_DIRS",
    "CDI_GPU_KIND",
    "NVIDIA_SMI_ARGS",
    "Gpu",
    "GpuPool",
    "detect_gpus",
    "gpu_flags",
    "has_cdi_spec",
    "parse_nvidia_smi",
    "select_gpus",
]

NVIDIA_SMI_ARGS = (
    "--query-gpu=index,name,memory.total,uuid,driver_version",
    "--format=csv,noheader,nounits",
)
CDI_GPU_KIND = "nvidia.com/gpu"
CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
DETECT_TIMEOUT_S = 15.0

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True, slots=True)
class Gpu:
    """One NVIDIA GPU: ``Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "GPU-…", "550.54.15")``."""

    index: int
    name: str
    memory_mb: int  # MiB, as nvidia-smi reports memory.total
    uuid: str
    driver_version: str

    def matches(self, *, min_memory_mb: int = 0, model: str = "") -> bool:
        """Whether this GPU has at least ``min_memory_mb`` MiB and ``model`` in its name."""
        return self.memory_mb >= min_memory_mb and model.casefold() in self.name.casefold()


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """The GPUs in ``nvidia-smi --query-gpu=… --format=csv,noheader,nounits`` output.

    Lines that do not have the five fields with an integer index and memory are skipped,
    so a garbled line costs that GPU, never the whole inventory.
    """
    gpus = [gpu for line in text.splitlines() if (gpu := _parse_line(line)) is not None]
    return sorted(gpus, key=lambda g: g.index)


def _parse_line(line: str) -> Gpu | None:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 5 or not fields[1] or not fields[3].startswith("GPU-"):
        return None
    try:
        index, memory_mb = int(fields[0]), int(float(fields[2]))
    except ValueError:
        return None
    if index < 0 or memory_mb <= 0:
        return None
    return Gpu(index=index, name=fields[1], memory_mb=memory_mb, uuid=fields[3], driver_version=fields[4])


def detect_gpus(
    *,
    nvidia_smi: str | None = None,
    run: Runner = subprocess.run,
    use_nvml: bool = True,
    timeout_s: float = DETECT_TIMEOUT_S,
) -> list[Gpu]:
    """This machine's NVIDIA GPUs, or ``[]`` when there are none or nothing can tell.

    ``nvidia_smi`` is the binary to ask (found on PATH when None); ``run`` stands in for
    ``subprocess.run`` in tests. NVML is tried only when nvidia-smi gave nothing.
    """
    gpus = _from_nvidia_smi(nvidia_smi or shutil.which("nvidia-smi"), run, timeout_s)
    if not gpus and use_nvml:
        gpus = _from_nvml()
    return gpus


def _from_nvidia_smi(binary: str | None, run: Runner, timeout_s: float) -> list[Gpu]:
    if binary is None:
        return []
    try:
        proc = run([binary, *NVIDIA_SMI_ARGS], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []  # e.g. "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
    return parse_nvidia_smi(proc.stdout or "")


def _from_nvml() -> list[Gpu]:
    try:
        import pynvml  # type: ignore[import-not-found]  # optional: used only when already installed
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - any NVML failure means "no GPU we can use"
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory_mb = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) >> 20
            gpus.append(Gpu(index, _text(pynvml.nvmlDeviceGetName(handle)), memory_mb,
                            _text(pynvml.nvmlDeviceGetUUID(handle)), driver))
        return gpus
    except Exception:  # noqa: BLE001
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def has_cdi_spec(kind: str = CDI_GPU_KIND, dirs: Sequence[Path] = CDI_DIRS) -> bool:
    """Whether a CDI spec for ``kind`` exists (``nvidia-ctk cdi generate`` writes one)."""
    for folder in dirs:
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        except OSError:
            continue
        for path in files:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if _kind_line(kind).search(text) or (path.suffix == ".json" and _json_kind(text) == kind):
                return True
    return False


def _json_kind(text: str) -> object:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get("kind") if isinstance(data, dict) else None


def _kind_line(kind: str) -> re.Pattern[str]:
    """A spec's top-level ``kind`` in YAML (bare, single- or double-quoted value) or JSON."""
    return re.compile(r"""^\s*["']?kind["']?\s*:\s*(["']?)""" + re.escape(kind) + r"""\1\s*,?\s*$""", re.MULTILINE)


def gpu_flags(gpus: Sequence[Gpu], *, cdi: bool) -> list[str]:
    """The engine arguments that hand ``gpus`` to a container (none for no GPUs).

    With a CDI spec: ``--device nvidia.com/gpu=<index>`` each (podman, or docker with CDI
    on); otherwise docker's ``--gpus '"device=<i>,<j>"'`` (the quotes keep the comma list whole).
    """
    if not gpus:
        return []
    if cdi:
        return [arg for g in gpus for arg in ("--device", f"{CDI_GPU_KIND}={g.index}")]
    return ["--gpus", '"device=' + ",".join(str(g.index) for g in gpus) + '"']


def select_gpus(
    gpus: Sequence[Gpu],
    count: int,
    *,
    min_memory_mb: int = 0,
    model: str = "",
    busy: frozenset[int] = frozenset(),
) -> tuple[Gpu, ...]:
    """``count`` GPUs that match and are not ``busy``, lowest index first; ``GpuUnavailable``
    names the requirement that failed."""
    if count <= 0:
        return ()
    if not gpus:
        raise GpuUnavailable(
            f"the job needs {count} GPU(s) and this machine has none (no nvidia-smi or NVML answered)",
            requested=count, available=0,
        )
    fit = [g for g in sorted(gpus, key=lambda g: g.index) if g.matches(min_memory_mb=min_memory_mb, model=model)]
    if len(fit) < count:
        have = ", ".join(sorted({f"{g.name} ({g.memory_mb} MiB)" for g in gpus}))
        want = " ".join(filter(None, [f"model containing {model!r}" if model else "",
                                      f"at least {min_memory_mb} MiB" if min_memory_mb else ""]))
        raise GpuUnavailable(
            f"the job needs {count} GPU(s){' with ' + want if want else ''}; this machine has {len(fit)} such: {have}",
            requested=count, available=len(fit),
        )
    free = [g for g in fit if g.index not in busy]
    if len(free) < count:
        raise GpuUnavailable(
            f"the job needs {count} GPU(s); {len(fit)} match but only {len(free)} are free now",
            requested=count, available=len(fit),
        )
    return tuple(free[:count])


class GpuPool:
    """The machine's GPUs, leased to one job at a time each (thread-safe)."""

    def __init__(self, gpus: Sequence[Gpu]) -> None:
        self.gpus: tuple[Gpu, ...] = tuple(gpus)
        self._lock = threading.Lock()
        self._busy: set[int] = set()

    def check(self, count: int, *, min_memory_mb: int = 0, model: str = "") -> None:
        """``GpuUnavailable`` unless the machine could ever serve this request (busy ones count)."""
        select_gpus(self.gpus, count, min_memory_mb=min_memory_mb, model=model)

    @contextmanager
    def lease(self, count: int, *, min_memory_mb: int = 0, model: str = "") -> Iterator[tuple[Gpu, ...]]:
        """Hold ``count`` matching free GPUs for the ``with`` block."""
        with self._lock:
            held = select_gpus(self.gpus, count, min_memory_mb=min_memory_mb, model=model,
                               busy=frozenset(self._busy))
            self._busy.update(g.index for g in held)
        try:
            yield held
        finally:
            with self._lock:
                self._busy.difference_update(g.index for g in held)
