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
    audit_bps = 300                     # audit probability, basis points (default: the market's floor)
    audit_fee = "0.5"                   # paid to the auditor if audited (default: max_price)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mercato.domain.jobs import JobSpec, Limits, seed_from_text
from mercato.errors import SpecError
from mercato.matching import min_collateral_for
from mercato.requester.money import parse_musd
from mercato.runtimes.blobs import content_hash

__all__ = ["DEFAULT_MAX_PRICE", "DEFAULT_MAX_INPUT_BYTES", "JobRequest", "load_job_toml", "seed_from_text"]

DEFAULT_MAX_PRICE = 1_000_000  # 1 mUSD
DEFAULT_MAX_INPUT_BYTES = 1 << 30  # the provider's blob cap (runtimes.blobs.DEFAULT_MAX_BLOB)
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
    audit_bps: int | None = None  # audit probability in basis points; None: the market's floor (3 % on the devnet)
    audit_fee: int | None = None  # what one audit pays; None: max_price (one re-execution at your price cap)
    out_dir: Path | None = None
    name: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict, compare=False)  # in-memory blobs by hash

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
        needed = {self.spec.workload, *(h for _, h in self.spec.inputs)}
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
    "job": {"workload", "runtime", "args", "seed", "env", "out_dir", "name"},
    "inputs": None,  # free-form: name = path
    "limits": {"fuel", "memory_mib", "memory_bytes", "wall_clock_s", "output_bytes", "stdout_bytes"},
    "market": {"max_price", "min_collateral", "deadline_s", "accept_window_s", "bid_window_ms",
               "audit_bps", "audit_fee"},
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
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path} does not exist: pass the path of a job.toml (see examples/job.toml)",
                        field="path") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path.name} is not valid TOML: {exc}", field="toml") from None
    t = _Toml(path, data)
    _check_keys(t)
    return _build_request(t, path.parent)


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
    if "workload" not in t.data.get("job", {}):
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


def _build_request(t: _Toml, base: Path) -> JobRequest:
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
        )
    except SpecError as exc:
        if str(exc).startswith(t.path.name):
            raise
        section = "market" if exc.field in ("max_price", "min_collateral", "deadline_s", "accept_window_s",
                                            "bid_window", "audit_bps", "audit_fee") else "job"
        raise SpecError(f"{t.path.name}: {exc}", field=f"{section}.{exc.field}") from None
