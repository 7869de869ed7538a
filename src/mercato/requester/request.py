"""``JobRequest``: a ``JobSpec`` plus the local files behind its hashes and the market limits.

    >>> req = JobRequest.from_files("examples/wasm/montecarlo.wasm", args=["1000000", "7"],
    ...                             max_price=500_000)                     # doctest: +SKIP
    >>> req = load_job_toml("examples/job.toml")                           # doctest: +SKIP

``job.toml`` (paths are relative to the file; amounts are mUSD as decimal strings)::

    [job]
    workload = "wasm/montecarlo.wasm"   # .wasm -> runtime "wasm", .py -> "python"
    args = ["1000000", "7"]
    seed = "first-job"                  # 64 hex characters, or any text (hashed)
    env = { GREETING = "hi" }
    out_dir = "out"                     # optional: write the outputs here
    [inputs]                            # name under /input = local path
    "data.bin" = "data/data.bin"
    [limits]
    fuel = 5_000_000_000                # 1 CU = 10^9 fuel; bids price the cap
    memory_mib = 256
    wall_clock_s = 60
    [market]
    max_price = "0.5"
    min_collateral = "9.5"              # default: max_price x 19 (audit p = 5 %)
    deadline_s = 600
    accept_window_s = 30
    bid_window_ms = 250
    audit_bps = 500                     # audit probability, basis points (default: DEFAULT_AUDIT_BPS, 5 %,
                                        # or the market's floor where higher)
    audit_fee = "0.5"                   # paid to the auditor if audited (default: max_price)
    [map]                               # only `mercato map`: many tasks of this job
    input_name = "task.in"              # each task's input file is mounted as /input/<input_name>

A container job (``runtime = "container"``; see examples/job_container.toml) names its image
instead of a workload file, and reserves resources in a ``[container]`` table::

    [job]
    runtime = "container"
    image_archive = "img.tar"           # `podman save` output, shipped as a content-addressed input
    image = "sha256:<64 hex>"           # the image ID; optional with an archive (it is read from it,
                                        # and must match when given), required without one
    # image_ref = "registry/repo@sha256:<hex>"   # or let the provider pull it by digest
    args = ["/bin/sh", "-c", "wc -c /input/data.bin > /output/n.txt"]   # the command
    [container]
    cpus = 1.5                          # vCPUs reserved (or cpu_millis = 1500)
    pids = 256
    tmp_mib = 64                        # the writable /tmp (counts against memory_mib)
    gpus = 0                            # NVIDIA GPUs, each with >= gpu_memory_mib and gpu_model in its name
    gpu_memory_mib = 0
    gpu_model = ""
    network = "none"
    [verify]                            # containers are not deterministic (docs/SPEC.md §15)
    redundancy = 2                      # run on this many distinct providers
    compare = "exact"                   # "exact" result roots, a comparator .wasm/.py path, or "reputation-only"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mercato.domain.batch import Task, check_tasks
from mercato.domain.jobs import CONTAINER_RUNTIME, ContainerSpec, JobSpec, Limits, is_content_hash, seed_from_text
from mercato.errors import ImageRejected, SpecError
from mercato.matching import min_collateral_for
from mercato.requester.money import parse_musd
from mercato.runtimes.blobs import content_hash

__all__ = ["DEFAULT_MAX_PRICE", "DEFAULT_MAX_INPUT_BYTES", "DEFAULT_INPUT_NAME", "JobRequest", "load_job_toml",
           "load_map_toml", "seed_from_text"]

DEFAULT_MAX_PRICE = 1_000_000  # 1 mUSD
DEFAULT_MAX_INPUT_BYTES = 1 << 30  # the provider's blob cap (runtimes.blobs.DEFAULT_MAX_BLOB)
DEFAULT_INPUT_NAME = "task.in"  # Market.map: the name under /input each task's own input gets
_RUNTIME_BY_SUFFIX = {".wasm": "wasm", ".py": "python"}


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What to run (``spec``), where its blobs are (``files``: content hash -> path) and the
    market limits. Money is in token base units (1 mUSD = 10**6)."""

    spec: JobSpec
    files: tuple[tuple[str, Path], ...] = ()
    max_price: int = DEFAULT_MAX_PRICE
    min_collateral: int | None = None  # None: min_collateral_for(max_price), i.e. 19 x max_price
    deadline_s: int = 600
    accept_window_s: int = 30
    bid_window: float | None = None  # seconds; None: the Market's default
    # audit probability in basis points; None: mercato.verification.params.DEFAULT_AUDIT_BPS (5 %, the
    # "standard" of `mercato verify-params`), or the market's floor where that is higher
    audit_bps: int | None = None
    audit_fee: int | None = None  # what one audit pays; None: max_price (one re-execution at your price cap)
    out_dir: Path | None = None
    name: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict, compare=False)  # in-memory blobs by hash
    # non-deterministic jobs (docs/SPEC.md §15), used by ``requester.redundancy``: how many distinct
    # providers run it and how their results are compared ("exact", "reputation-only", or a comparator path)
    redundancy: int = 1
    compare: str = "exact"
    exclude_providers: frozenset[str] = frozenset()  # lowercase addresses never asked (redundancy)

    def __post_init__(self) -> None:
        _positive_int(self.max_price, "max_price", allow_zero=True)
        if self.min_collateral is not None:
            _positive_int(self.min_collateral, "min_collateral", allow_zero=True)
        _positive_int(self.deadline_s, "deadline_s")
        if self.audit_bps is not None and (not isinstance(self.audit_bps, int) or not 1 <= self.audit_bps <= 10_000):
            raise SpecError(f"audit_bps must be an integer from 1 to 10000 (basis points), got {self.audit_bps!r}",
                            field="audit_bps")
        if self.audit_fee is not None:
            _positive_int(self.audit_fee, "audit_fee", allow_zero=True)
        _positive_int(self.accept_window_s, "accept_window_s")
        if self.accept_window_s > self.deadline_s:
            raise SpecError(f"accept_window_s ({self.accept_window_s}) must not exceed deadline_s "
                            f"({self.deadline_s})", field="accept_window_s")
        if self.bid_window is not None and not 0 < self.bid_window <= 60:
            raise SpecError(f"bid_window must be between 0 and 60 seconds, got {self.bid_window!r}",
                            field="bid_window")
        if isinstance(self.redundancy, bool) or not isinstance(self.redundancy, int) or not 1 <= self.redundancy <= 16:
            raise SpecError(f"redundancy must be an integer from 1 to 16, got {self.redundancy!r}", field="redundancy")
        needed = set(self.spec.blob_refs())
        missing = needed - {h for h, _ in self.files} - set(self.blobs)
        if missing:
            raise SpecError(f"no local file or blob for {sorted(missing)}: pass files or blobs for "
                            "the workload and every input", field="files")

    @property
    def fee(self) -> int:
        """What one audit of this job pays its auditor: ``audit_fee``, or ``max_price``."""
        return self.audit_fee if self.audit_fee is not None else self.max_price

    @property
    def collateral_floor(self) -> int:
        """The collateral asked of bidders: ``min_collateral`` or 19 x ``max_price``."""
        return self.min_collateral if self.min_collateral is not None else min_collateral_for(self.max_price)

    @classmethod
    def from_files(cls, workload: str | Path, *, args: list[str] | tuple[str, ...] = (),
                   inputs: dict[str, str | Path] | None = None, runtime: str | None = None,
                   env: dict[str, str] | None = None, limits: Limits | None = None,
                   seed: bytes | str | None = None, **market: Any) -> JobRequest:
        """Hash the local files and build the spec; ``market`` takes the other fields."""
        path = Path(workload)
        rt = runtime or _RUNTIME_BY_SUFFIX.get(path.suffix)
        if rt is None:
            raise SpecError(f"cannot tell the runtime of {path.name}: pass runtime='wasm' or 'python'",
                            field="runtime")
        files = {content_hash(_read(path, "workload")): path}
        pairs = []
        for name, p in sorted((inputs or {}).items()):
            digest = content_hash(_read(Path(p), f"input {name!r}"))
            files[digest] = Path(p)
            pairs.append((name, digest))
        seed_bytes = seed if isinstance(seed, bytes) else seed_from_text(seed)
        spec = JobSpec(runtime=rt, workload=content_hash(_read(path, "workload")), args=tuple(args),
                       env=tuple(sorted((env or {}).items())), inputs=tuple(pairs),
                       limits=limits or Limits(), seed=seed_bytes)
        return cls(spec=spec, files=tuple(files.items()), **market)

    @classmethod
    def from_container(cls, *, image: str | None = None, archive: str | Path | None = None, image_ref: str = "",
                       command: list[str] | tuple[str, ...] = (), inputs: dict[str, str | Path] | None = None,
                       env: dict[str, str] | None = None, limits: Limits | None = None,
                       container: ContainerSpec | None = None, seed: bytes | str | None = None,
                       **market: Any) -> JobRequest:
        """A container job: the image by ID (``image``), shipped as an archive file (``archive``,
        whose image ID is read from it and must equal ``image`` when both are given: else
        ``ImageRejected`` before anything is sent) or pulled by ``image_ref``; ``container`` holds
        the reservation (its ``image_archive``/``image_ref`` are filled in here)."""
        files: dict[str, Path] = {}
        archive_ref = ""
        if archive is not None:
            from mercato.runtimes.container import archive_image_id

            path = Path(archive)
            data = _read(path, "image archive")
            found = archive_image_id(data)
            if image is not None and image != found:
                raise ImageRejected(f"the image archive {path.name} holds image {found}, not the declared {image}: "
                                    "save the image the job names, or drop `image` to take the archive's")
            image = found
            archive_ref = content_hash(data)
            files[archive_ref] = path
        if image is None or not is_content_hash(image):
            raise SpecError("a container job needs its image ID ('sha256:<64 hex>', see `podman image inspect "
                            "--format {{.Id}}`) or an image archive to read it from", field="image")
        pairs = []
        for name, p in sorted((inputs or {}).items()):
            digest = content_hash(_read(Path(p), f"input {name!r}"))
            files[digest] = Path(p)
            pairs.append((name, digest))
        base = container or ContainerSpec()
        spec_c = ContainerSpec(**{**base.to_json(), "image_archive": archive_ref or base.image_archive,
                                  "image_ref": image_ref or base.image_ref})
        seed_bytes = seed if isinstance(seed, bytes) else seed_from_text(seed)
        spec = JobSpec(runtime=CONTAINER_RUNTIME, workload=image, args=tuple(command),
                       env=tuple(sorted((env or {}).items())), inputs=tuple(pairs),
                       limits=limits or Limits(), seed=seed_bytes, container=spec_c)
        return cls(spec=spec, files=tuple(files.items()), **market)

    def blob(self, ref: str) -> bytes:
        """The bytes of blob ``ref``, re-hashed (a file changed since hashing is a SpecError)."""
        if ref in self.blobs:
            data = self.blobs[ref]
        else:
            path = dict(self.files)[ref]
            data = _read(path, str(path))
        if content_hash(data) != ref:
            raise SpecError(f"{ref} changed since the job was built (content hash differs): rebuild the job",
                            field="files")
        return data

    def blob_size(self, ref: str) -> int:
        """The size of blob ``ref`` without reading it."""
        if ref in self.blobs:
            return len(self.blobs[ref])
        return dict(self.files)[ref].stat().st_size


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the {what} file {path}: {exc.strerror}", field="files") from None


def _positive_int(value: object, name: str, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
        raise SpecError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}",
                        field=name)


# job.toml --------------------------------------------------------------------------------
_SECTIONS = {
    "job": {"workload", "runtime", "args", "seed", "env", "out_dir", "name", "image", "image_archive", "image_ref"},
    "container": {"cpus", "cpu_millis", "pids", "tmp_mib", "gpus", "gpu_memory_mib", "gpu_model", "network"},
    "verify": {"redundancy", "compare"},
    "inputs": None,  # free-form: name = path
    "limits": {"fuel", "memory_mib", "memory_bytes", "wall_clock_s", "output_bytes", "stdout_bytes"},
    "market": {"max_price", "min_collateral", "deadline_s", "accept_window_s", "bid_window_ms",
               "audit_bps", "audit_fee"},
    "map": {"input_name"},  # read by load_map_toml (`mercato map`); `mercato run` ignores it
}


class _Toml:
    """Typed reads from one parsed job.toml, each failure naming ``[section].key``."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, section: str, key: str, message: str) -> SpecError:
        where = f"[{section}].{key}" if key else f"[{section}]"
        return SpecError(f"{self.path.name}: {where} {message}", field=f"{section}.{key}" if key else section)

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.data.get(section, {}).get(key, default)

    def positive_int(self, section: str, key: str, default: int | None) -> int | None:
        value = self.get(section, key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(section, key, f"must be a positive integer, got {value!r}")
        return value

    def string(self, section: str, key: str, default: str | None = None) -> str | None:
        value = self.get(section, key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(section, key, f"must be a string, got {value!r}")
        return value

    def strings(self, section: str, key: str) -> list[str]:
        value = self.get(section, key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(section, key, f"must be a list of strings, got {value!r}")
        return value

    def table(self, section: str, key: str | None) -> dict[str, str]:
        value = self.data.get(section, {}) if key is None else self.get(section, key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(section, key or "", f"must map names to strings, got {value!r}")
        return value

    def amount(self, section: str, key: str, default: int | None) -> int | None:
        value = self.get(section, key)
        if value is None:
            return default
        if isinstance(value, float):
            raise self.fail(section, key, f"must be a decimal string of mUSD such as \"{value}\" (quoted: "
                                          "money is exact), got the float {value!r}")
        try:
            return parse_musd(value, what="amount")
        except ValueError as exc:
            raise self.fail(section, key, str(exc).replace("amount ", "", 1)) from None

    def seconds(self, section: str, key: str, default: float) -> float:
        value = self.get(section, key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10**7:
            raise self.fail(section, key, f"must be a positive number of seconds, got {value!r}")
        return float(value)


def load_job_toml(path: str | Path) -> JobRequest:
    """Read ``job.toml``; every problem is a ``SpecError`` naming the file and ``[section].key``."""
    t = _parse(Path(path))
    return _build_request(t, t.path.parent)


def load_map_toml(path: str | Path) -> tuple[JobRequest, str]:
    """Read ``job.toml`` for ``mercato map``: the base job, and ``[map].input_name`` (default
    ``"task.in"``), the name under /input each task's own input file is mounted as."""
    t = _parse(Path(path))
    req = _build_request(t, t.path.parent)
    name = t.string("map", "input_name", DEFAULT_INPUT_NAME) or ""
    try:  # a valid input name that no base input has (the runtime is Market.map's to judge)
        check_tasks([Task(inputs=((name, "sha256:" + "00" * 32),))], req.spec.inputs, "wasm")
    except SpecError as exc:
        raise t.fail("map", "input_name", f"cannot be used: {exc}") from None
    return req, name


def _parse(path: Path) -> _Toml:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path} does not exist: pass the path of a job.toml (see examples/job.toml)",
                        field="path") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path.name} is not valid TOML: {exc}", field="toml") from None
    t = _Toml(path, data)
    _check_keys(t)
    return t


def _check_keys(t: _Toml) -> None:
    for section, value in t.data.items():
        if section not in _SECTIONS:
            raise t.fail(section, "", f"is not a known section; use {', '.join(f'[{s}]' for s in _SECTIONS)}")
        if not isinstance(value, dict):
            raise t.fail(section, "", "must be a table")
        allowed = _SECTIONS[section]
        unknown = sorted(set(value) - allowed) if allowed is not None else []
        if unknown:
            raise t.fail(section, unknown[0], f"is not a known key; use one of {', '.join(sorted(allowed or ()))}")
    job = t.data.get("job", {})
    if job.get("runtime") == CONTAINER_RUNTIME:
        if "workload" in job:
            raise t.fail("job", "workload", "is not used by container jobs: give image, image_archive or image_ref")
        if not any(k in job for k in ("image", "image_archive")):
            raise t.fail("job", "image", "is missing: give the image ID, or image_archive (podman save output)")
    else:
        for key in ("image", "image_archive", "image_ref"):
            if key in job:
                raise t.fail("job", key, "is only for runtime = \"container\" jobs")
        if "container" in t.data:
            raise t.fail("container", "", "is only for runtime = \"container\" jobs")
        if "workload" not in job:
            raise t.fail("job", "workload", "is missing: give the path of a .wasm module or a .py script")


def _limits(t: _Toml) -> Limits:
    d = Limits()
    memory = t.positive_int("limits", "memory_bytes", None)
    mib = t.positive_int("limits", "memory_mib", None)
    return Limits(
        fuel=t.positive_int("limits", "fuel", d.fuel) or d.fuel,
        memory_bytes=memory or ((mib << 20) if mib else d.memory_bytes),
        wall_clock_s=t.seconds("limits", "wall_clock_s", d.wall_clock_s),
        output_bytes=t.positive_int("limits", "output_bytes", d.output_bytes) or d.output_bytes,
        stdout_bytes=t.positive_int("limits", "stdout_bytes", d.stdout_bytes) or d.stdout_bytes,
    )


def _container(t: _Toml) -> ContainerSpec:
    d = ContainerSpec()
    cpus = t.get("container", "cpus")
    millis = t.positive_int("container", "cpu_millis", None)
    if cpus is not None:
        if millis is not None:
            raise t.fail("container", "cpus", "and cpu_millis are the same setting: give one")
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0 < cpus <= 4096:
            raise t.fail("container", "cpus", f"must be a positive number of vCPUs, got {cpus!r}")
        millis = max(1, round(cpus * 1000))
    tmp = t.positive_int("container", "tmp_mib", None)
    gpus = t.get("container", "gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise t.fail("container", "gpus", f"must be an integer >= 0, got {gpus!r}")
    gpu_mem = t.get("container", "gpu_memory_mib", 0)
    if isinstance(gpu_mem, bool) or not isinstance(gpu_mem, int) or gpu_mem < 0:
        raise t.fail("container", "gpu_memory_mib", f"must be an integer >= 0, got {gpu_mem!r}")
    try:
        return ContainerSpec(cpu_millis=millis or d.cpu_millis, pids=t.positive_int("container", "pids", d.pids) or d.pids,
                             tmp_bytes=(tmp << 20) if tmp else d.tmp_bytes, gpus=gpus, gpu_memory_mb=gpu_mem,
                             gpu_model=t.string("container", "gpu_model", "") or "",
                             network=t.string("container", "network", "none") or "none")
    except SpecError as exc:
        raise t.fail("container", (exc.field or "").removeprefix("container."), str(exc)) from None


def _verify_options(t: _Toml) -> dict[str, Any]:
    out: dict[str, Any] = {}
    k = t.get("verify", "redundancy")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 16:
            raise t.fail("verify", "redundancy", f"must be an integer from 1 to 16, got {k!r}")
        out["redundancy"] = k
    rule = t.string("verify", "compare")
    if rule is not None:
        if rule in ("exact", "reputation-only"):
            out["compare"] = rule
        elif rule.endswith((".wasm", ".py")):
            out["compare"] = str(t.path.parent / rule)
        else:
            raise t.fail("verify", "compare", f"must be \"exact\", \"reputation-only\" or the path of a "
                                               f"comparator .wasm or .py, got {rule!r}")
    return out


def _market_options(t: _Toml, base: Path) -> dict[str, Any]:
    out_dir = t.string("job", "out_dir")
    max_price = t.amount("market", "max_price", DEFAULT_MAX_PRICE)
    bid_ms = t.positive_int("market", "bid_window_ms", None)
    return dict(max_price=max_price, min_collateral=t.amount("market", "min_collateral", None),
                deadline_s=t.positive_int("market", "deadline_s", 600),
                accept_window_s=t.positive_int("market", "accept_window_s", 30),
                bid_window=bid_ms / 1000 if bid_ms else None,
                audit_bps=t.positive_int("market", "audit_bps", None),
                audit_fee=t.amount("market", "audit_fee", None),
                out_dir=base / out_dir if out_dir else None, name=t.string("job", "name") or t.path.stem,
                **_verify_options(t))


def _build_container_request(t: _Toml, base: Path) -> JobRequest:
    archive = t.string("job", "image_archive")
    inputs = {name: base / p for name, p in t.table("inputs", None).items()}
    try:
        return JobRequest.from_container(
            image=t.string("job", "image"), archive=base / archive if archive else None,
            image_ref=t.string("job", "image_ref", "") or "", command=t.strings("job", "args"), inputs=inputs,
            env=t.table("job", "env"), limits=_limits(t), container=_container(t), seed=t.string("job", "seed"),
            **_market_options(t, base))
    except ImageRejected as exc:
        raise ImageRejected(f"{t.path.name}: [job].image_archive: {exc}") from None
    except SpecError as exc:
        if str(exc).startswith(t.path.name):
            raise
        field_ = exc.field or "image"
        section = "market" if field_ in ("max_price", "min_collateral", "deadline_s", "accept_window_s",
                                         "bid_window", "audit_bps", "audit_fee") else "job"
        raise SpecError(f"{t.path.name}: {exc}", field=f"{section}.{field_}") from None


def _build_request(t: _Toml, base: Path) -> JobRequest:
    if t.get("job", "runtime") == CONTAINER_RUNTIME:
        return _build_container_request(t, base)
    workload = t.string("job", "workload") or ""
    inputs = {name: base / p for name, p in t.table("inputs", None).items()}
    out_dir = t.string("job", "out_dir")
    max_price = t.amount("market", "max_price", DEFAULT_MAX_PRICE)
    bid_ms = t.positive_int("market", "bid_window_ms", None)
    try:
        return JobRequest.from_files(
            base / workload, args=t.strings("job", "args"), inputs=inputs,
            runtime=t.string("job", "runtime"), env=t.table("job", "env"), limits=_limits(t),
            seed=t.string("job", "seed"), max_price=max_price,
            min_collateral=t.amount("market", "min_collateral", None),
            deadline_s=t.positive_int("market", "deadline_s", 600),
            accept_window_s=t.positive_int("market", "accept_window_s", 30),
            bid_window=bid_ms / 1000 if bid_ms else None,
            audit_bps=t.positive_int("market", "audit_bps", None),
            audit_fee=t.amount("market", "audit_fee", None),
            out_dir=base / out_dir if out_dir else None, name=t.string("job", "name") or t.path.stem,
            **_verify_options(t),
        )
    except SpecError as exc:
        if str(exc).startswith(t.path.name):
            raise
        section = "market" if exc.field in ("max_price", "min_collateral", "deadline_s", "accept_window_s",
                                            "bid_window", "audit_bps", "audit_fee") else "job"
        raise SpecError(f"{t.path.name}: {exc}", field=f"{section}.{exc.field}") from None
