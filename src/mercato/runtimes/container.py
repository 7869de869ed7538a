"""The ``container`` runtime: an OCI image run by podman (or docker) under hard limits.

    runtime = ContainerRuntime(BlobStore(blob_dir), state_dir=data_dir / "containers")
    runtime.cleanup_stale()                    # once at provider start: what a crash left
    runtime.admit(spec)                        # GpuUnavailable / WorkloadError before bidding
    receipt = runtime.run(spec, Workspace.create())

The image is named by its image ID (``spec.workload``, the sha256 of its config, which pins
every layer's content). It comes from the local store, from an image archive shipped as a
content-addressed blob (``spec.container.image_archive``, a ``podman save`` tar: its config
must hash to the declared ID before it is loaded, and the loaded image must carry that ID),
or from a registry by manifest digest (``spec.container.image_ref``), checked the same way.

Each run: ``/input`` is a read-only bind of the staged inputs, ``/output`` a writable bind
(hashed afterwards exactly like the other runtimes), ``/tmp`` a small tmpfs, the root file
system read-only, no network, all capabilities dropped, ``--cpus``/``--memory`` (no swap)/
``--pids-limit`` from the spec, a fixed hostname. The container is created, started attached
and removed with its anonymous volumes on every way out (success, failure, timeout,
exception); its name starts ``mercato-<namespace>-`` and it carries the labels
``mercato.namespace`` and ``mercato.job`` so ``cleanup_stale`` finds what a killed provider
left behind. The wall clock, stdout/stderr and the output folder are watched while it runs;
passing a cap kills it. Running out of memory is read from the kernel, not guessed: the
engine's ``State.OOMKilled`` and, on cgroup v1 (where conmon's own OOM watch can miss), an
eventfd on the container's ``memory.oom_control`` armed between ``init`` and ``start``.
(conmon 2.1 on cgroup v1 writes its OOM report as a file named ``oom`` in its working
directory, where podman 4 never reads it: engine calls for a run therefore work in a private
folder under ``state_dir/runs``, and such a file there counts as the engine's OOM report.)

Containers are not deterministic: receipts say ``deterministic=False`` and carry
``resource_seconds`` (reserved vCPUs, GiB and GPUs x run seconds), the basis of the bill.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import select
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from mercato.domain.jobs import (
    CONTAINER_RUNTIME,
    ContainerSpec,
    JobSpec,
    Limits,
    Outcome,
    Receipt,
    ResourceSeconds,
    Timings,
)
from mercato.errors import ConfigError, EngineError, GpuUnavailable, ImageRejected, RuntimeUnavailable, WorkloadError
from mercato.runtimes._receipt import collect_outputs
from mercato.runtimes.base import Workspace
from mercato.runtimes.blobs import BlobStore
from mercato.runtimes.gpu import Gpu, GpuPool, detect_gpus, gpu_flags, has_cdi_spec
from mercato.verification.result_root import result_root

__all__ = [
    "CONTAINER_PREFIX",
    "INPUT_PATH",
    "LABEL_JOB",
    "LABEL_NAMESPACE",
    "OUTPUT_PATH",
    "ContainerRuntime",
    "ContainerSettings",
    "Engine",
    "RunPlan",
    "archive_image_id",
    "create_argv",
    "find_engine",
]

CONTAINER_PREFIX = "mercato-"
LABEL_NAMESPACE = "mercato.namespace"
LABEL_JOB = "mercato.job"
INPUT_PATH = "/input"
OUTPUT_PATH = "/output"
TMP_PATH = "/tmp"
HOSTNAME = "mercato"
# podman's default ulimits can exceed what an unprivileged VM's runc may set; with none set,
# the container inherits the engine's own limits. Written under the runtime's state dir.
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n"
ENGINE_TIMEOUT_S = 120.0  # one engine call that is not the job itself (create, inspect, rm, load…)
KILL_GRACE_S = 10.0  # after a kill, how long the attached client may take to return
OOM_SETTLE_S = 0.5  # after removal, how long to wait for the cgroup's last notification
_NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_UNSAFE_MOUNT = re.compile(r"[,:\n]")

EngineKind = Literal["podman", "docker"]
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


# -- the engine ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Engine:
    """A container engine CLI: ``Engine("podman", "/usr/bin/podman", ("--runtime", "runc"))``.

    ``env`` is added to the process environment of every call (``CONTAINERS_CONF``).
    """

    kind: EngineKind
    binary: str
    global_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def argv(self, *args: str) -> list[str]:
        """The full command line for one engine sub-command."""
        return [self.binary, *self.global_args, *args]

    def environ(self) -> dict[str, str]:
        """The environment to run the engine in."""
        return {**os.environ, **dict(self.env)}


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """A provider's container policy (the ``[container]`` table of provider.toml, later).

    ``engine``: "auto" (podman, else a docker whose daemon answers), "podman" or "docker";
    ``oci_runtime``: podman's ``--runtime`` ("auto" = runc where installed, "" = podman's
    default); ``containers_conf``: "mercato" (write our own, see ``CONTAINERS_CONF``), "" (the
    system's) or a path; ``namespace`` keeps two providers on one host out of each other's
    containers; ``gpu_mode``: "auto" (CDI when a spec exists), "cdi" or "gpus"; ``engine_args``
    go before every engine sub-command (``--root``, ``--storage-driver`` …).
    """

    engine: Literal["auto", "podman", "docker"] = "auto"
    oci_runtime: str = "auto"
    containers_conf: str = "mercato"
    namespace: str = "default"
    allow_network: bool = False
    allow_pull: bool = True
    max_cpu_millis: int = 0  # 0: this machine's CPU count x 1000
    max_pids: int = 4096
    max_image_bytes: int = 4 << 30
    gpu_mode: Literal["auto", "cdi", "gpus"] = "auto"
    poll_s: float = 0.1  # how often the output folder and the clock are looked at
    engine_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAMESPACE_RE.match(self.namespace):
            raise ConfigError(f"container namespace {self.namespace!r} must be 1-32 of a-z, 0-9 and '-'")


def find_engine(settings: ContainerSettings = ContainerSettings(), *, state_dir: Path) -> Engine:
    """The engine to use under ``settings``; ``RuntimeUnavailable`` (with the fix) if none."""
    if settings.engine in ("auto", "podman"):
        podman = shutil.which("podman")
        if podman is not None:
            return _podman(podman, settings, state_dir)
        if settings.engine == "podman":
            raise RuntimeUnavailable("podman is not installed: apt-get install podman runc")
    docker = shutil.which("docker")
    if docker is not None and _docker_answers(docker):
        return Engine("docker", docker, tuple(settings.engine_args))
    raise RuntimeUnavailable(
        "no container engine here: install podman (apt-get install podman runc) or start a docker daemon"
    )


def _podman(binary: str, settings: ContainerSettings, state_dir: Path) -> Engine:
    runtime = settings.oci_runtime
    if runtime == "auto":
        runtime = "runc" if shutil.which("runc") else ""
    env: tuple[tuple[str, str], ...] = ()
    if settings.containers_conf == "mercato":
        conf = state_dir / "containers.conf"
        state_dir.mkdir(parents=True, exist_ok=True)
        if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
            conf.write_text(CONTAINERS_CONF)
        env = (("CONTAINERS_CONF", str(conf)),)
    elif settings.containers_conf:
        env = (("CONTAINERS_CONF", settings.containers_conf),)
    return Engine("podman", binary, (*(("--runtime", runtime) if runtime else ()), *settings.engine_args), env)


def _docker_answers(binary: str) -> bool:
    try:
        proc = subprocess.run([binary, "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


# -- the command line ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything ``create_argv`` turns into one ``create`` command (pure data)."""

    name: str
    image: str  # the image ID, "sha256:<hex>"
    namespace: str
    job: str
    input_dir: Path
    output_dir: Path
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cpu_millis: int = 1000
    memory_bytes: int = 1 << 30
    pids: int = 256
    tmp_bytes: int = 64 << 20
    network: str = "none"
    gpus: tuple[Gpu, ...] = ()
    cdi: bool = False


def create_argv(engine: Engine, plan: RunPlan) -> list[str]:
    """The engine command that creates (not starts) the container for ``plan``."""
    for path in (plan.input_dir, plan.output_dir):
        if _UNSAFE_MOUNT.search(str(path)):
            raise WorkloadError(f"workspace path {path} holds ',', ':' or a newline; use a plain folder")
    args = [
        "create",
        "--name", plan.name,
        "--label", f"{LABEL_NAMESPACE}={plan.namespace}",
        "--label", f"{LABEL_JOB}={plan.job}",
        "--hostname", HOSTNAME,
        "--network", plan.network,
        "--cpus", f"{plan.cpu_millis / 1000:.3f}",
        "--memory", str(plan.memory_bytes),
        "--memory-swap", str(plan.memory_bytes),  # equal to --memory: no swap
        "--pids-limit", str(plan.pids),
        "--read-only",
        "--tmpfs", f"{TMP_PATH}:rw,nosuid,nodev,size={plan.tmp_bytes},mode=1777",
        "--cap-drop", "all",
        "--security-opt", "no-new-privileges",
        "--log-driver", "none",  # the streams come through the attached client, bounded
        "--volume", f"{plan.input_dir}:{INPUT_PATH}:ro",
        "--volume", f"{plan.output_dir}:{OUTPUT_PATH}:rw",
    ]
    if engine.kind == "podman":
        # nothing writable but /tmp and /output: image VOLUMEs become (memory-capped) tmpfs
        args += ["--read-only-tmpfs=false", "--image-volume", "tmpfs"]
    for key, value in plan.env:
        args += ["--env", f"{key}={value}"]
    args += gpu_flags(plan.gpus, cdi=plan.cdi)
    return engine.argv(*args, plan.image, *plan.command)


def remove_argv(engine: Engine, *names: str) -> list[str]:
    """Force-remove containers and their anonymous volumes, without a stop grace period."""
    extra = ("--time", "0") if engine.kind == "podman" else ()
    return engine.argv("rm", "--force", "--volumes", *extra, *names)


# -- image archives -----------------------------------------------------------------------------


def archive_image_id(data: bytes) -> str:
    """The image ID (``sha256:`` of the config blob) of the one image in a ``podman save`` /
    ``docker save`` tar (docker-archive) or an OCI archive; ``ImageRejected`` if it holds
    none, several, or a config whose bytes do not hash to its name."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = set(tar.getnames())
            if "manifest.json" in names:
                config = _docker_archive_config(tar)
            elif "index.json" in names:
                config = _oci_archive_config(tar)
            else:
                raise ImageRejected("the image archive has neither manifest.json nor index.json; make it with podman save")
            blob = _member_bytes(tar, config)
    except (tarfile.TarError, json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
        raise ImageRejected(f"the image archive is not a readable image tar ({type(e).__name__}); make it with podman save") from None
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _docker_archive_config(tar: tarfile.TarFile) -> str:
    manifest = json.loads(_member_bytes(tar, "manifest.json"))
    if not isinstance(manifest, list) or len(manifest) != 1:
        raise ImageRejected("the image archive must hold exactly one image; save one image per archive")
    config = manifest[0]["Config"]
    expected = config.removeprefix("blobs/sha256/").removesuffix(".json")
    _check_named_digest(tar, config, expected)
    return str(config)


def _oci_archive_config(tar: tarfile.TarFile) -> str:
    index = json.loads(_member_bytes(tar, "index.json"))
    manifests = index["manifests"]
    if len(manifests) != 1:
        raise ImageRejected("the image archive must hold exactly one image; save one image per archive")
    manifest_path = _blob_path(manifests[0]["digest"])
    _check_named_digest(tar, manifest_path, manifest_path.rsplit("/", 1)[1])
    config_path = _blob_path(json.loads(_member_bytes(tar, manifest_path))["config"]["digest"])
    return config_path


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexpart):
        raise ImageRejected(f"the image archive names a blob {digest!r} that is not a sha256 digest")
    return f"blobs/sha256/{hexpart}"


def _check_named_digest(tar: tarfile.TarFile, member: str, expected_hex: str) -> None:
    actual = hashlib.sha256(_member_bytes(tar, member)).hexdigest()
    if re.fullmatch(r"[0-9a-f]{64}", expected_hex) and actual != expected_hex:
        raise ImageRejected(f"the image archive's {member} does not hash to its name; the archive was altered")


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.getmember(name)
    if not member.isfile():
        raise ImageRejected(f"the image archive's {name} is not a regular file")
    f = tar.extractfile(member)
    if f is None:
        raise ImageRejected(f"the image archive's {name} cannot be read")
    return f.read()


# -- watching a running container ---------------------------------------------------------------


class _Stream:
    """Drains one pipe on its own thread, keeping at most ``cap`` bytes."""

    def __init__(self, pipe: IO[bytes], cap: int, on_overflow: Callable[[], None]) -> None:
        self.data = bytearray()
        self.overflow = False
        self._cap = cap
        self._on_overflow = on_overflow
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        with pipe:
            for chunk in iter(lambda: pipe.read1(1 << 16), b""):  # type: ignore[attr-defined]
                room = self._cap - len(self.data)
                self.data += chunk[: max(room, 0)]
                if len(chunk) > room and not self.overflow:
                    self.overflow = True
                    self._on_overflow()

    def join(self, timeout: float) -> bytes:
        self._thread.join(timeout)
        return bytes(self.data)


class _OomWatch:
    """Kernel OOM notifications for one container's memory cgroup (cgroup v1, as root).

    An eventfd registered on ``memory.oom_control`` fires on every OOM in the cgroup and
    once more when the cgroup is removed. A firing while the cgroup still exists is an OOM;
    so is a count of two or more (an OOM seen late, plus the removal).
    """

    def __init__(self, folder: Path, efd: int, ofd: int) -> None:
        self.folder = folder
        self.oom = False
        self._closing = False
        self._efd, self._ofd = efd, ofd
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="mercato-oom", daemon=True)
        self._thread.start()

    @classmethod
    def arm(cls, pid: int) -> _OomWatch | None:
        """A watch on the memory cgroup of process ``pid``, or None where cgroup v1 events are not available."""
        folder = _memory_cgroup_v1(pid)
        if folder is None or not hasattr(os, "eventfd"):
            return None
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC)
        except OSError:
            return None
        try:
            ofd = os.open(folder / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(efd)
            return None
        try:
            (folder / "cgroup.event_control").write_text(f"{efd} {ofd}")
        except OSError:
            os.close(efd)
            os.close(ofd)
            return None
        return cls(folder, efd, ofd)

    def _watch(self) -> None:
        try:
            while True:
                select.select([self._efd], [], [])
                count = os.eventfd_read(self._efd)
                if self._closing:
                    return
                if (self.folder / "memory.oom_control").exists():
                    self.oom = True
                    continue
                self.oom = self.oom or count >= 2
                return
        except OSError:
            return
        finally:
            self._done.set()

    def finish(self, settle_s: float = OOM_SETTLE_S) -> bool:
        """Whether an OOM happened; call once the container is removed."""
        self._done.wait(settle_s)
        oom = self.oom
        if not self._done.is_set():  # no removal notice yet: wake the thread so it ends
            self._closing = True
            os.eventfd_write(self._efd, 1)
            self._done.wait(1.0)
        if self._done.is_set():
            os.close(self._efd)
        os.close(self._ofd)
        return oom


def _memory_cgroup_v1(pid: int) -> Path | None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return folder if (folder / "cgroup.event_control").exists() else None
    return None


def _tree_bytes(root: Path, cap: int) -> int:
    """Bytes in regular files under ``root``, counting stops once past ``cap``."""
    total = 0
    stack = [root]
    while stack and total <= cap:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


@dataclass(slots=True)
class _Run:
    """What one container run produced, before it is judged."""

    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stream_overflow: bool = False
    output_overflow: bool = False
    timed_out: bool = False
    oom: bool = False
    run_s: float = 0.0


# -- the runtime --------------------------------------------------------------------------------


class ContainerRuntime:
    """Runs ``runtime="container"`` specs in podman or docker (see the module docstring).

    ``engine`` and ``gpus`` are found on first use when not given; ``run`` stands in for
    ``subprocess.run`` for the short engine calls (unit tests).
    """

    name = CONTAINER_RUNTIME

    def __init__(
        self,
        blobs: BlobStore,
        *,
        state_dir: Path | None = None,
        settings: ContainerSettings | None = None,
        engine: Engine | None = None,
        gpus: Sequence[Gpu] | None = None,
        progress: Callable[[str], None] | None = None,
        run: Runner = subprocess.run,
    ) -> None:
        self.blobs = blobs
        self.settings = settings or ContainerSettings()
        self.state_dir = Path(state_dir) if state_dir is not None else Path(tempfile.gettempdir()) / "mercato-containers"
        self._engine = engine
        self._gpus = GpuPool(gpus) if gpus is not None else None
        self._progress = progress
        self._run = run
        self._lock = threading.Lock()

    # configuration ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The container engine (found on first use; ``RuntimeUnavailable`` if none)."""
        with self._lock:
            if self._engine is None:
                self._engine = find_engine(self.settings, state_dir=self.state_dir)
            return self._engine

    @property
    def gpus(self) -> GpuPool:
        """This machine's GPUs (detected on first use)."""
        with self._lock:
            if self._gpus is None:
                self._gpus = GpuPool(detect_gpus())
            return self._gpus

    def max_cpu_millis(self) -> int:
        """The most vCPUs x 1000 one job may reserve here."""
        return self.settings.max_cpu_millis or (os.cpu_count() or 1) * 1000

    def cdi(self) -> bool:
        """Whether GPUs are handed over by CDI (``--device nvidia.com/gpu=N``)."""
        if self.settings.gpu_mode != "auto":
            return self.settings.gpu_mode == "cdi"
        return has_cdi_spec()

    # admission --------------------------------------------------------------------------------
    def admit(self, spec: JobSpec) -> ContainerSpec:
        """The spec's container section if this machine can run it, else the reason as an error:
        ``WorkloadError`` (not a container job, network or reservation over policy) or
        ``GpuUnavailable``. Cheap: touches no image and starts nothing."""
        if spec.runtime != self.name or spec.container is None:
            raise WorkloadError(f"the container runtime cannot run a {spec.runtime!r} job")
        c = spec.container
        if c.network != "none" and not self.settings.allow_network:
            raise WorkloadError(f"this provider runs containers without network; the job asks for {c.network!r}")
        if c.cpu_millis > self.max_cpu_millis():
            raise WorkloadError(f"the job reserves {c.cpu_millis / 1000:g} vCPUs; this provider allows {self.max_cpu_millis() / 1000:g}")
        if c.pids > self.settings.max_pids:
            raise WorkloadError(f"the job asks for {c.pids} processes; this provider allows {self.settings.max_pids}")
        if c.gpus:
            self.gpus.check(c.gpus, min_memory_mb=c.gpu_memory_mb, model=c.gpu_model)
            if self.engine.kind == "podman" and not self.cdi():
                raise GpuUnavailable(
                    "podman hands GPUs over by CDI and this machine has no nvidia.com/gpu CDI spec: "
                    "run nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
                    requested=c.gpus, available=len(self.gpus.gpus),
                )
        return c

    def admit_bid(self, spec: JobSpec) -> ContainerSpec:
        """``admit`` plus what a bid must know: the engine answers and the image can be had
        (shipped as an archive, pullable by digest here, or already in the local store);
        ``RuntimeUnavailable`` / ``ImageRejected`` otherwise. One engine call at most."""
        c = self.admit(spec)
        self.engine  # RuntimeUnavailable when no engine is installed or answering
        if c.image_archive:
            return c
        if c.image_ref:
            if not self.settings.allow_pull:
                raise ImageRejected(f"this provider does not pull images; ship {spec.workload} as an image archive")
            return c
        if self._image_id(spec.workload) != spec.workload:
            raise ImageRejected(f"image {spec.workload} is not on this provider and the spec ships no image "
                                "archive or registry reference: add container.image_archive (podman save)")
        return c

    # images -----------------------------------------------------------------------------------
    def ensure_image(self, spec: JobSpec) -> str:
        """The local image ID for ``spec.workload``: found, loaded from the spec's archive or
        pulled by digest, and in each case checked; ``ImageRejected`` otherwise."""
        image = spec.workload
        if self._image_id(image) == image:
            return image
        c = spec.container or ContainerSpec()
        if c.image_archive:
            return self._load_archive(image, c.image_archive)
        if c.image_ref and self.settings.allow_pull:
            return self._pull(image, c.image_ref)
        raise ImageRejected(
            f"image {image} is not on this machine and the spec gives no image archive"
            + (" (pulling is off here)" if c.image_ref else " or registry reference")
        )

    def _image_id(self, ref: str) -> str | None:
        proc = self._engine_call("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        if proc.returncode != 0:
            return None
        first = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
        return first if first.startswith("sha256:") else "sha256:" + first

    def _load_archive(self, image: str, archive_ref: str) -> str:
        size = self.blobs.size(archive_ref)
        if size > self.settings.max_image_bytes:
            raise ImageRejected(f"the image archive is {size} bytes, over this provider's cap of {self.settings.max_image_bytes}")
        data = self.blobs.get(archive_ref, max_bytes=self.settings.max_image_bytes)
        found = archive_image_id(data)
        if found != image:
            raise ImageRejected(f"the image archive holds image {found}, not the declared {image}; save the image the spec names")
        if self._progress is not None and size > (64 << 20):
            self._progress(f"loading a {size >> 20} MiB image archive…")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.state_dir, prefix=".image-", suffix=".tar") as tmp:
            tmp.write(data)
            tmp.flush()
            del data
            self._engine_call("load", "--input", tmp.name)
        return self._check_loaded(image, "the loaded archive")

    def _pull(self, image: str, ref: str) -> str:
        self._engine_call("pull", ref, timeout=max(ENGINE_TIMEOUT_S, 1800.0))
        found = self._image_id(ref)
        if found != image:
            self._engine_call("rmi", ref, check=False)
            raise ImageRejected(f"{ref} is image {found}, not the declared {image}; fix the spec's image digest")
        return image

    def _check_loaded(self, image: str, what: str) -> str:
        if self._image_id(image) != image:
            raise ImageRejected(f"{what} did not produce image {image}; the archive was altered or the engine rewrote it")
        return image

    # running ----------------------------------------------------------------------------------
    def run(self, spec: JobSpec, workspace: Workspace, *, job_id: str | None = None) -> Receipt:
        """Execute ``spec``; limits reached are outcomes in the receipt, engine failures raise.

        ``job_id`` (the provider's deal id, later) is the ``mercato.job`` label; the spec
        hash stands in when None.
        """
        c = self.admit(spec)
        start = time.perf_counter()
        image = self.ensure_image(spec)
        prepare_ms = (time.perf_counter() - start) * 1000
        _stage(spec, self.blobs, workspace)
        job = job_id or spec.spec_hash().removeprefix("sha256:")[:16]
        lease = self.gpus.lease(c.gpus, min_memory_mb=c.gpu_memory_mb, model=c.gpu_model) if c.gpus else _NoGpus()
        with lease as held:
            plan = self._plan(spec, c, workspace, image, job, held)
            result = self._execute(plan, spec.limits)
        wall_ms = (time.perf_counter() - start) * 1000
        return _receipt(result, spec.limits, c, len(held), workspace.output_dir, prepare_ms, wall_ms)

    def _plan(self, spec: JobSpec, c: ContainerSpec, ws: Workspace, image: str, job: str, held: tuple[Gpu, ...]) -> RunPlan:
        safe_job = re.sub(r"[^a-z0-9-]", "-", job.lower())[:32] or "job"
        return RunPlan(
            name=f"{CONTAINER_PREFIX}{self.settings.namespace}-{safe_job}-{secrets.token_hex(4)}",
            image=image, namespace=self.settings.namespace, job=job,
            input_dir=ws.input_dir, output_dir=ws.output_dir,
            command=spec.args, env=spec.env,
            cpu_millis=c.cpu_millis, memory_bytes=spec.limits.memory_bytes, pids=c.pids, tmp_bytes=c.tmp_bytes,
            network=c.network, gpus=held, cdi=self.cdi() if held else False,
        )

    def _execute(self, plan: RunPlan, limits: Limits) -> _Run:
        """Create, start attached, watch, and always remove the container."""
        engine = self.engine
        watch: _OomWatch | None = None
        result = _Run()
        cwd = self.state_dir / "runs" / plan.name
        cwd.mkdir(parents=True, exist_ok=True)
        try:
            self._call(create_argv(engine, plan), "create", cwd=cwd)
            if engine.kind == "podman":  # the cgroup exists from init on: arm the OOM watch
                self._engine_call("init", plan.name, cwd=cwd)
                watch = _OomWatch.arm(self._pid(plan.name))
            self._attach(engine, plan, limits, result, cwd)
            state = self._state(plan.name)
            if state.get("Status") not in ("exited", "stopped") or state.get("Error"):
                said = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [str(state.get("Error") or "")]
                raise EngineError(f"{engine.kind} could not start the container: {said[0]}", command="start",
                                  stderr=result.stderr.decode("utf-8", "replace"))
            code = state.get("ExitCode")
            result.exit_code = code if isinstance(code, int) else None
            result.oom = bool(state.get("OOMKilled"))
        finally:
            self._remove(plan.name)
            if watch is not None:
                result.oom = watch.finish() or result.oom
            result.oom = result.oom or (cwd / "oom").exists()
            shutil.rmtree(cwd, ignore_errors=True)
        return result

    def _attach(self, engine: Engine, plan: RunPlan, limits: Limits, result: _Run, cwd: Path) -> None:
        stop = threading.Event()
        proc = subprocess.Popen(engine.argv("start", "--attach", plan.name), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=engine.environ(), cwd=cwd)
        assert proc.stdout is not None and proc.stderr is not None
        out = _Stream(proc.stdout, limits.stdout_bytes, stop.set)
        err = _Stream(proc.stderr, limits.stdout_bytes, stop.set)
        t0 = time.monotonic()
        try:
            self._wait(proc, plan, limits, result, stop, t0)
        finally:
            result.run_s = time.monotonic() - t0
            if proc.poll() is None:
                self._kill(plan.name)
                try:
                    proc.wait(KILL_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            result.stdout, result.stderr = out.join(KILL_GRACE_S), err.join(KILL_GRACE_S)
            result.stream_overflow = out.overflow or err.overflow

    def _wait(self, proc: subprocess.Popen[bytes], plan: RunPlan, limits: Limits, result: _Run,
              stop: threading.Event, t0: float) -> None:
        deadline = t0 + limits.wall_clock_s
        while True:
            try:
                proc.wait(timeout=max(0.0, min(self.settings.poll_s, deadline - time.monotonic())))
                return
            except subprocess.TimeoutExpired:
                pass
            if stop.is_set():  # a stream passed its cap
                return
            if _tree_bytes(plan.output_dir, limits.output_bytes) > limits.output_bytes:
                result.output_overflow = True
                return
            if time.monotonic() >= deadline:
                result.timed_out = True
                return

    def _pid(self, name: str) -> int:
        proc = self._engine_call("inspect", "--format", "{{.State.Pid}}", name)
        try:
            return int(proc.stdout.strip())
        except ValueError:
            raise EngineError(f"the engine reported no process for {name}", command="inspect") from None

    def _state(self, name: str) -> dict[str, object]:
        proc = self._engine_call("inspect", "--format", "{{json .State}}", name)
        try:
            state = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise EngineError(f"the engine's inspect of {name} is not JSON", command="inspect") from None
        return state if isinstance(state, dict) else {}

    def _kill(self, name: str) -> None:
        self._engine_call("kill", "--signal", "KILL", name, check=False)

    def _remove(self, *names: str) -> None:
        """Best effort (it runs in ``finally``): what fails here ``cleanup_stale`` removes later."""
        try:
            self._call(remove_argv(self.engine, *names), "rm", check=False)
        except (EngineError, RuntimeUnavailable):
            pass

    def cleanup_stale(self) -> list[str]:
        """Remove every container (and its anonymous volumes) of this namespace: what a
        crashed run left behind. Call at provider start, before any job runs. Returns names."""
        proc = self._engine_call("ps", "--all", "--filter", f"label={LABEL_NAMESPACE}={self.settings.namespace}",
                                 "--format", "{{.Names}}")
        names = sorted({n.strip() for n in proc.stdout.splitlines() if n.strip().startswith(CONTAINER_PREFIX)})
        if names:
            self._call(remove_argv(self.engine, *names), "rm")
        return names

    def _engine_call(self, *args: str, check: bool = True, timeout: float = ENGINE_TIMEOUT_S,
                     cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """One engine sub-command; ``EngineError`` with its last stderr line if it fails."""
        return self._call(self.engine.argv(*args), args[0], check=check, timeout=timeout, cwd=cwd)

    def _call(self, argv: list[str], what: str, *, check: bool = True, timeout: float = ENGINE_TIMEOUT_S,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``cwd`` (the state dir when None: the engine may leave files there)."""
        engine = self.engine
        if cwd is None:
            cwd = self.state_dir
            cwd.mkdir(parents=True, exist_ok=True)
        try:
            proc = self._run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                             env=engine.environ(), cwd=cwd)
        except subprocess.TimeoutExpired:
            raise EngineError(f"{engine.kind} {what} did not answer in {timeout:.0f} s", command=what) from None
        except OSError as e:
            raise RuntimeUnavailable(f"cannot run {engine.binary}: {e.strerror}") from None
        if check and proc.returncode != 0:
            last = (proc.stderr or "").strip().splitlines()[-1:] or ["(no message)"]
            raise EngineError(f"{engine.kind} {what} failed: {last[0]}", command=what, stderr=proc.stderr or "")
        return proc


class _NoGpus:
    """The context manager ``GpuPool.lease`` would be, holding nothing."""

    def __enter__(self) -> tuple[Gpu, ...]:
        return ()

    def __exit__(self, *exc: object) -> None:
        return None


def _stage(spec: JobSpec, blobs: BlobStore, workspace: Workspace) -> None:
    """Inputs into the workspace (hash-checked, sorted, read-only); /output writable by any
    container user."""
    for name, ref in sorted(spec.inputs):
        workspace.stage_input(name, blobs.get(ref))
    workspace.seal_inputs()
    workspace.output_dir.chmod(0o777)


def _judge(run: _Run, limits: Limits) -> tuple[Outcome, int | None, str]:
    """The outcome, the exit code to report and a one-line message."""
    if run.stream_overflow:
        return Outcome.OUTPUT_TOO_LARGE, None, f"stdout or stderr passed {limits.stdout_bytes} bytes"
    if run.oom:
        return Outcome.MEMORY_EXCEEDED, None, f"the container ran out of memory (cap {limits.memory_bytes} bytes)"
    if run.timed_out:
        return Outcome.WALL_CLOCK_EXCEEDED, None, f"wall clock passed {limits.wall_clock_s} s; the container was killed"
    if run.output_overflow:
        return Outcome.OUTPUT_TOO_LARGE, None, f"files under /output passed {limits.output_bytes} bytes"
    if run.exit_code:
        return Outcome.EXIT_NONZERO, run.exit_code, f"exited with code {run.exit_code}"
    return Outcome.OK, 0 if run.exit_code is None else run.exit_code, ""


def _receipt(run: _Run, limits: Limits, c: ContainerSpec, gpus: int, output_dir: Path,
             prepare_ms: float, wall_ms: float) -> Receipt:
    """Judge ``run``, hash the outputs as every runtime does, and bill the reservation."""
    outcome, exit_code, message = _judge(run, limits)
    outputs, too_large = collect_outputs(output_dir, limits.output_bytes)
    if too_large and outcome in (Outcome.OK, Outcome.EXIT_NONZERO):
        outcome, exit_code, message = Outcome.OUTPUT_TOO_LARGE, None, f"files under /output passed {limits.output_bytes} bytes"
    if outcome is Outcome.OUTPUT_TOO_LARGE:
        outputs = ()
    root = result_root(outputs=[(o.path, o.sha256) for o in outputs], stdout=run.stdout, stderr=run.stderr,
                       outcome=outcome.value, exit_code=exit_code)
    usage = ResourceSeconds(vcpu_s=c.cpu_millis / 1000 * run.run_s, gib_s=limits.memory_bytes / (1 << 30) * run.run_s,
                            gpu_s=gpus * run.run_s)
    return Receipt(
        outcome=outcome, exit_code=exit_code, fuel_used=0, stdout=run.stdout, stderr=run.stderr,
        outputs=outputs, result_root=root,
        timings=Timings(compile_ms=prepare_ms, run_ms=run.run_s * 1000, wall_ms=wall_ms),
        message=message, deterministic=False, resource_seconds=usage,
    )
