"""Job specs, limits and execution receipts for the deterministic runtimes (pure, no I/O).

    >>> spec = JobSpec(runtime="wasm", workload="sha256:" + "ab" * 32, limits=Limits())
    >>> spec.spec_hash().startswith("sha256:")
    True

A receipt is what a provider (or an auditor) reports after running a spec. Everything in it
except ``timings`` is a pure function of the spec and its blobs, so two honest executions
produce the same ``result_root`` and ``fuel_used``.

Compute units: 1 CU = 10**9 fuel. ``fuel_used`` is the exact count; ``cu_used`` is that
count rounded *up* to whole CUs (a job that ran at all costs at least 1 CU), which is what
bids are priced in.

``runtime="container"`` specs are the exception: an OCI image (``workload`` is its image ID,
the digest of its config) run by podman or docker with the reservation in ``JobSpec.container``.
They are not deterministic: their receipts say ``deterministic=False`` and bill
``resource_seconds`` (vCPU-, GiB- and GPU-seconds) instead of fuel.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from mercato.errors import SpecError
from mercato.domain.batch import MAX_TASKS, Task, check_tasks, task_seed

__all__ = [
    "FUEL_PER_CU",
    "CONTAINER_RUNTIME",
    "ContainerSpec",
    "Limits",
    "JobSpec",
    "Outcome",
    "OutputFile",
    "Timings",
    "Receipt",
    "ResourceSeconds",
    "cu_from_fuel",
    "seed_from_text",
    "is_content_hash",
]

FUEL_PER_CU = 10**9
RuntimeName = Literal["wasm", "python"]
RUNTIMES: tuple[str, ...] = ("wasm", "python")  # the deterministic runtimes
CONTAINER_RUNTIME = "container"
SPEC_RUNTIMES: tuple[str, ...] = (*RUNTIMES, CONTAINER_RUNTIME)  # every runtime a spec may name
NETWORK_MODES: tuple[str, ...] = ("none", "bridge")
SEED_BYTES = 32
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_INPUT_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# a registry reference pinned by manifest digest: "registry/repo@sha256:<64 hex>" (no tag)
_IMAGE_REF_RE = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,254}@sha256:[0-9a-f]{64}$")
_GPU_MODEL_RE = re.compile(r"^[A-Za-z0-9 ._-]{0,64}$")


def cu_from_fuel(fuel: int) -> int:
    """Whole compute units for ``fuel``, rounded up: ``cu_from_fuel(1) == 1``, ``cu_from_fuel(0) == 0``."""
    return -(-fuel // FUEL_PER_CU)


def seed_from_text(text: str | None) -> bytes:
    """32 seed bytes from user text: ``None`` gives zeros, 64 hex characters are taken as they
    are, any other text is hashed with SHA-256 (``mercato exec --seed`` and job.toml agree)."""
    if text is None:
        return bytes(SEED_BYTES)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    return raw if len(raw) == SEED_BYTES else hashlib.sha256(text.encode()).digest()


def is_content_hash(value: object) -> bool:
    """``is_content_hash("sha256:" + "00" * 32)`` is True: a lowercase hex SHA-256 with its prefix."""
    return isinstance(value, str) and bool(_HASH_RE.match(value))


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource caps for one execution; exceeding any is a deterministic outcome, not an error.

    ``Limits(fuel=10**10)`` caps the work at 10 CU and keeps every other default.
    """

    fuel: int = 50 * FUEL_PER_CU
    memory_bytes: int = 1 << 30
    wall_clock_s: float = 300.0
    output_bytes: int = 64 << 20  # all files under /output together
    stdout_bytes: int = 1 << 20  # each of stdout and stderr

    def __post_init__(self) -> None:
        for name in ("fuel", "memory_bytes", "output_bytes", "stdout_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise SpecError(f"limits.{name} must be a positive integer, got {value!r}", field=f"limits.{name}")
        wall = self.wall_clock_s
        if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not math.isfinite(wall) or wall <= 0:
            raise SpecError(
                f"limits.wall_clock_s must be a positive number of seconds, got {wall!r}",
                field="limits.wall_clock_s",
            )

    def to_json(self) -> dict[str, object]:
        """The canonical JSON form (used by ``JobSpec.spec_hash``)."""
        return {
            "fuel": self.fuel,
            "memory_bytes": self.memory_bytes,
            # milliseconds as an integer keeps the hash free of float formatting
            "wall_clock_ms": int(round(self.wall_clock_s * 1000)),
            "output_bytes": self.output_bytes,
            "stdout_bytes": self.stdout_bytes,
        }


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What a ``runtime="container"`` job reserves and how its image reaches the provider.

    ``ContainerSpec(cpu_millis=2000, gpus=1, gpu_model="H100", image_archive=ref)`` asks for
    two vCPUs and one H100, the image shipped as a ``podman save`` archive stored under ``ref``.

    - ``cpu_millis``: vCPUs x 1000 (``--cpus``); ``pids``: the process cap (``--pids-limit``);
    - ``tmp_bytes``: the size of the writable ``/tmp`` tmpfs (counted against the memory cap);
    - ``gpus``: NVIDIA GPUs wanted, each with at least ``gpu_memory_mb`` MiB and, when
      ``gpu_model`` is set, a name containing it (case-insensitive, e.g. ``"H100"``);
    - ``network``: ``"none"`` (the default) or ``"bridge"`` (outbound, where a provider allows it);
    - ``image_archive``: content hash of an image archive to load, or ``""``;
    - ``image_ref``: where to pull the image from, pinned by manifest digest
      (``"registry/repo@sha256:<hex>"``), or ``""``.

    Memory, wall clock, output and stream caps stay in ``Limits``; ``Limits.fuel`` is unused.
    """

    cpu_millis: int = 1000
    pids: int = 256
    tmp_bytes: int = 64 << 20
    gpus: int = 0
    gpu_memory_mb: int = 0
    gpu_model: str = ""
    network: str = "none"
    image_archive: str = ""
    image_ref: str = ""

    def __post_init__(self) -> None:
        for name in ("cpu_millis", "pids", "tmp_bytes"):
            _check_int(getattr(self, name), f"container.{name}", minimum=1)
        for name in ("gpus", "gpu_memory_mb"):
            _check_int(getattr(self, name), f"container.{name}", minimum=0)
        if not isinstance(self.gpu_model, str) or not _GPU_MODEL_RE.match(self.gpu_model):
            raise SpecError("container.gpu_model must be up to 64 letters, digits, spaces, '.', '_' or '-'",
                            field="container.gpu_model")
        if self.network not in NETWORK_MODES:
            raise SpecError(f"container.network must be one of {', '.join(NETWORK_MODES)}, got {self.network!r}",
                            field="container.network")
        if self.image_archive != "" and not is_content_hash(self.image_archive):
            raise SpecError("container.image_archive must be a content hash 'sha256:<64 hex>' or empty",
                            field="container.image_archive")
        if self.image_ref != "" and not (isinstance(self.image_ref, str) and _IMAGE_REF_RE.match(self.image_ref)):
            raise SpecError("container.image_ref must be pinned by digest: 'registry/repo@sha256:<64 hex>'",
                            field="container.image_ref")

    def to_json(self) -> dict[str, object]:
        """The canonical JSON form (part of ``JobSpec.spec_hash`` for container jobs)."""
        return {
            "cpu_millis": self.cpu_millis,
            "pids": self.pids,
            "tmp_bytes": self.tmp_bytes,
            "gpus": self.gpus,
            "gpu_memory_mb": self.gpu_memory_mb,
            "gpu_model": self.gpu_model,
            "network": self.network,
            "image_archive": self.image_archive,
            "image_ref": self.image_ref,
        }

    @classmethod
    def from_json(cls, data: object) -> ContainerSpec:
        """The inverse of :meth:`to_json`; missing keys take their defaults."""
        if not isinstance(data, dict):
            raise SpecError("container must be an object", field="container")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"container has unknown fields {sorted(unknown)}", field="container")
        return cls(**data)


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(f"{name} must be an integer of at least {minimum}, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything that determines an execution's result.

    ``inputs`` are ``(name, content hash)`` pairs, sorted by name; the workload sees each at
    ``/input/<name>``. ``seed`` (32 bytes) drives the sandbox's random and clock streams.

    ``container`` is set exactly when ``runtime == "container"``; ``workload`` is then the
    image ID (``sha256:`` of the image config) and ``args``, when given, replace its command.
    """

    runtime: str
    workload: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()
    limits: Limits = field(default_factory=Limits)
    seed: bytes = bytes(SEED_BYTES)
    container: ContainerSpec | None = None
    tasks: tuple[Task, ...] = ()  # a batch (domain.batch): limits apply to each task

    def __post_init__(self) -> None:
        if self.runtime not in SPEC_RUNTIMES:
            raise SpecError(f"runtime must be one of {', '.join(SPEC_RUNTIMES)}, got {self.runtime!r}", field="runtime")
        _check_container(self.runtime, self.container)
        if not is_content_hash(self.workload):
            raise SpecError(
                f"workload must be a content hash 'sha256:<64 hex>', got {self.workload!r}", field="workload"
            )
        _check_args(self.args)
        _check_env(self.env)
        _check_inputs(self.inputs)
        if not isinstance(self.limits, Limits):
            raise SpecError("limits must be a Limits instance", field="limits")
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_BYTES:
            raise SpecError(f"seed must be exactly {SEED_BYTES} bytes", field="seed")
        if not isinstance(self.tasks, tuple):
            raise SpecError("tasks must be a tuple of Task", field="tasks")
        check_tasks(self.tasks, self.inputs, self.runtime)

    # batches (domain.batch) -------------------------------------------------------------------
    @property
    def task_count(self) -> int:
        """How many executions the spec asks for: its tasks, or 1 for a plain job."""
        return len(self.tasks) or 1

    @property
    def total_fuel(self) -> int:
        """The fuel cap of the whole job: ``limits.fuel`` per task."""
        return self.limits.fuel * self.task_count

    def cu_cap(self) -> int:
        """Compute units a bid prices: whole CUs at each task's fuel cap, times the tasks."""
        return cu_from_fuel(self.limits.fuel) * self.task_count

    def task(self, index: int) -> JobSpec:
        """Task ``index`` of a batch as a plain spec (base args + its args, base + its inputs, its seed)."""
        t = self.tasks[index]
        return replace(self, args=self.args + t.args, inputs=tuple(sorted(self.inputs + t.inputs)),
                       seed=task_seed(self.seed, t.seed_index(index)), tasks=())

    def with_tasks(self, tasks: Iterable[Task]) -> JobSpec:
        """This spec as the base of a batch of ``tasks``."""
        return replace(self, tasks=tuple(tasks))

    def to_json(self) -> dict[str, object]:
        """The canonical JSON form: only strings, integers, lists and objects."""
        return {
            "runtime": self.runtime,
            "workload": self.workload,
            "args": list(self.args),
            "env": [list(kv) for kv in self.env],
            "inputs": [list(kv) for kv in self.inputs],
            "limits": self.limits.to_json(),
            "seed": self.seed.hex(),
            # only container specs carry the key, so wasm and python hashes are unchanged
            **({"container": self.container.to_json()} if self.container is not None else {}),
            # only batches carry the key, so a plain job's hash is unchanged
            **({"tasks": [t.to_json() for t in self.tasks]} if self.tasks else {}),
        }

    def blob_refs(self) -> tuple[str, ...]:
        """Every content-addressed blob the job needs: the workload (or image archive) and inputs."""
        if self.container is not None:
            head = (self.container.image_archive,) if self.container.image_archive else ()
        else:
            head = (self.workload,)
        refs = (*head, *(ref for _, ref in self.inputs), *(ref for t in self.tasks for _, ref in t.inputs))
        return tuple(dict.fromkeys(refs)) if self.tasks else refs

    @classmethod
    def from_json(cls, data: object) -> JobSpec:
        """The inverse of :meth:`to_json`; malformed data raises ``SpecError`` naming the field."""
        if not isinstance(data, dict):
            raise SpecError("a job spec must be a JSON object", field="spec")
        try:
            limits = data.get("limits", {})
            if not isinstance(limits, dict):
                raise SpecError("limits must be an object", field="limits")
            defaults = Limits()
            seed = data.get("seed", "00" * SEED_BYTES)
            try:
                seed_bytes = bytes.fromhex(seed) if isinstance(seed, str) else b""
            except ValueError:
                seed_bytes = b""
            return cls(
                runtime=data.get("runtime"),  # type: ignore[arg-type]
                workload=data.get("workload"),  # type: ignore[arg-type]
                args=tuple(data.get("args", ())),
                env=tuple(tuple(kv) for kv in data.get("env", ())),  # type: ignore[misc]
                inputs=tuple(tuple(kv) for kv in data.get("inputs", ())),  # type: ignore[misc]
                limits=Limits(
                    fuel=limits.get("fuel", defaults.fuel),
                    memory_bytes=limits.get("memory_bytes", defaults.memory_bytes),
                    wall_clock_s=limits.get("wall_clock_ms", int(defaults.wall_clock_s * 1000)) / 1000,
                    output_bytes=limits.get("output_bytes", defaults.output_bytes),
                    stdout_bytes=limits.get("stdout_bytes", defaults.stdout_bytes),
                ),
                seed=seed_bytes,
                container=ContainerSpec.from_json(data["container"]) if "container" in data else None,
                tasks=_tasks_from_json(data.get("tasks", [])),
            )
        except TypeError as exc:
            raise SpecError(f"malformed job spec: {exc}", field="spec") from None

    def spec_hash(self) -> str:
        """``"sha256:<hex>"`` over the canonical JSON (sorted keys, no spaces, UTF-8)."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _tasks_from_json(data: object) -> tuple[Task, ...]:
    if not isinstance(data, list):
        raise SpecError("tasks must be a list", field="tasks")
    if len(data) > MAX_TASKS:
        raise SpecError(f"a batch holds at most {MAX_TASKS} tasks, got {len(data)}", field="tasks")
    return tuple(Task.from_json(t) for t in data)


def _check_container(runtime: str, container: object) -> None:
    if runtime == CONTAINER_RUNTIME and container is None:
        raise SpecError(
            "runtime 'container' needs a container section (cpus, GPUs, image source): "
            "JobSpec(..., container=ContainerSpec())",
            field="runtime",
        )
    if runtime != CONTAINER_RUNTIME and container is not None:
        raise SpecError(f"a {runtime!r} job cannot carry a container section", field="container")
    if container is not None and not isinstance(container, ContainerSpec):
        raise SpecError("container must be a ContainerSpec instance", field="container")


def _check_args(args: object) -> None:
    if not isinstance(args, tuple) or not all(isinstance(a, str) for a in args):
        raise SpecError("args must be a tuple of strings", field="args")
    if any("\x00" in a for a in args):
        raise SpecError("args may not contain NUL characters", field="args")


def _check_env(env: object) -> None:
    if not isinstance(env, tuple) or not all(
        isinstance(kv, tuple) and len(kv) == 2 and all(isinstance(s, str) for s in kv) for kv in env
    ):
        raise SpecError("env must be a tuple of (name, value) string pairs", field="env")
    names = [k for k, _ in env]
    if names != sorted(names) or len(set(names)) != len(names):
        raise SpecError("env must be sorted by name with no duplicates", field="env")
    for k, v in env:
        if not k or "=" in k or "\x00" in k or "\x00" in v:
            raise SpecError(f"env name {k!r} is invalid (empty, or contains '=' or NUL)", field="env")


def _check_inputs(inputs: object) -> None:
    if not isinstance(inputs, tuple) or not all(
        isinstance(kv, tuple) and len(kv) == 2 and all(isinstance(s, str) for s in kv) for kv in inputs
    ):
        raise SpecError("inputs must be a tuple of (name, content hash) pairs", field="inputs")
    names = [n for n, _ in inputs]
    if names != sorted(names) or len(set(names)) != len(names):
        raise SpecError("inputs must be sorted by name with no duplicates", field="inputs")
    for name, digest in inputs:
        if not _INPUT_NAME_RE.match(name) or name in (".", ".."):
            raise SpecError(
                f"input name {name!r} must be 1-128 characters of letters, digits, '.', '_' or '-'",
                field="inputs",
            )
        if not is_content_hash(digest):
            raise SpecError(f"input {name!r} needs a content hash 'sha256:<64 hex>', got {digest!r}", field="inputs")


class Outcome(enum.Enum):
    """How an execution ended. Every value is deterministic for a given spec."""

    OK = "ok"
    EXIT_NONZERO = "exit_nonzero"
    FUEL_EXHAUSTED = "fuel_exhausted"
    MEMORY_EXCEEDED = "memory_exceeded"
    WALL_CLOCK_EXCEEDED = "wall_clock_exceeded"  # the one outcome that depends on the host's speed
    OUTPUT_TOO_LARGE = "output_too_large"
    TRAP = "trap"


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file the workload left under /output: its relative path, SHA-256 hex and size."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Timings:
    """Host timings in milliseconds; informative only, never part of the result root."""

    compile_ms: float = 0.0
    run_ms: float = 0.0
    wall_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ResourceSeconds:
    """What a container job held, integrated over its run time: the basis of its bill.

    ``vcpu_s`` is reserved vCPUs x seconds, ``gib_s`` reserved memory in GiB x seconds,
    ``gpu_s`` GPUs x seconds; ``cpu_time_s`` is the CPU time actually used where the engine
    could measure it (informative).
    """

    vcpu_s: float = 0.0
    gib_s: float = 0.0
    gpu_s: float = 0.0
    cpu_time_s: float | None = None

    def to_json(self) -> dict[str, object]:
        """Rounded to milliseconds; ``cpu_time_s`` only when measured."""
        out: dict[str, object] = {"vcpu_s": round(self.vcpu_s, 3), "gib_s": round(self.gib_s, 3),
                                  "gpu_s": round(self.gpu_s, 3)}
        if self.cpu_time_s is not None:
            out["cpu_time_s"] = round(self.cpu_time_s, 3)
        return out


@dataclass(frozen=True, slots=True)
class Receipt:
    """The result of one execution, as reported by a provider and checked by an auditor.

    ``deterministic`` is False for container runs: two honest providers may disagree, so
    they are checked by redundancy, never by a single re-execution. ``resource_seconds`` is
    set by runtimes that bill by reservation x time instead of fuel.
    """

    outcome: Outcome
    exit_code: int | None
    fuel_used: int
    stdout: bytes
    stderr: bytes
    outputs: tuple[OutputFile, ...]
    result_root: str
    timings: Timings = field(default_factory=Timings)
    message: str = ""
    deterministic: bool = True
    resource_seconds: ResourceSeconds | None = None

    @property
    def cu_used(self) -> int:
        """Compute units charged: ``fuel_used`` rounded up to whole CUs."""
        return cu_from_fuel(self.fuel_used)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; stdout/stderr are decoded as UTF-8 with replacement characters."""
        return {
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "fuel_used": self.fuel_used,
            "cu_used": self.cu_used,
            "result_root": self.result_root,
            "stdout": self.stdout.decode("utf-8", "replace"),
            "stderr": self.stderr.decode("utf-8", "replace"),
            "outputs": [{"path": o.path, "sha256": o.sha256, "size": o.size} for o in self.outputs],
            "timings": {
                "compile_ms": round(self.timings.compile_ms, 3),
                "run_ms": round(self.timings.run_ms, 3),
                "wall_ms": round(self.timings.wall_ms, 3),
            },
            "message": self.message,
            # only non-deterministic runs carry these keys, so existing receipts read the same
            **({"deterministic": False} if not self.deterministic else {}),
            **({"resource_seconds": self.resource_seconds.to_json()} if self.resource_seconds is not None else {}),
        }
