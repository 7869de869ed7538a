"""``ProviderConfig``: everything a provider agent is told, loaded once from TOML.

    cfg = ProviderConfig.load(Path("provider.toml"))
    cfg.lanes, cfg.pricing.price_per_cu         # (4, 1000)

``examples/provider.toml`` is the documented sample. Relative paths (``data_dir``, the price
script) are resolved against the TOML file's folder, so a config works from any directory.
Ratios (``utilization_markup``, ``collateral_factor``) are exact fractions: money stays integer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from mercato.domain.batch import MAX_TASKS
from mercato.domain.jobs import CONTAINER_RUNTIME, FUEL_PER_CU, RUNTIMES
from mercato.errors import ConfigError
from mercato.runtimes.container import ContainerSettings

__all__ = ["Behaviour", "BEHAVIOURS", "WRONG_RESULT", "ContainerConfig", "PricingConfig", "ProviderConfig"]

PROVIDER_RUNTIMES: tuple[str, ...] = (*RUNTIMES, CONTAINER_RUNTIME)  # what ``runtimes`` may list

Behaviour = Literal["honest", "never_commit", "wrong_result", "hidden_wrong_result", "copied_seal", "lazy_auditor",
                    "silent_auditor", "colluding_auditor"]
BEHAVIOURS: tuple[str, ...] = ("honest", "never_commit", "wrong_result", "hidden_wrong_result", "copied_seal",
                               "lazy_auditor", "silent_auditor", "colluding_auditor")
WRONG_RESULT: tuple[str, ...] = ("wrong_result", "hidden_wrong_result")  # behaviours that seal a wrong root


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """How bids are priced: ``price_per_cu × (1 + utilization_markup × utilization)``, or a script.

    ``collateral = max(rfq.min_collateral, price × collateral_factor)``.
    """

    price_per_cu: int = 1_000  # token base units per CU: the floor at zero utilization
    utilization_markup: Fraction = Fraction(1)  # +100 % when every lane is busy
    collateral_factor: Fraction = Fraction(19)  # C >= P(1-p)/p with audit probability p = 5 %
    script: Path | None = None  # JSON on stdin -> integer price per CU on stdout (Akash-style)
    script_timeout_s: float = 5.0
    # container jobs are priced per reserved resource-second (token base units, integers):
    # price = ceil(wall_clock_s × (vCPUs × per_vcpu_s + GiB × per_gib_s + GPUs × per_gpu_s)) × (1 + markup × u)
    price_per_vcpu_s: int = 100
    price_per_gib_s: int = 50
    price_per_gpu_s: int = 10_000

    def __post_init__(self) -> None:
        if self.price_per_cu < 0:
            raise ConfigError("pricing.price_per_cu must be >= 0 token base units per CU")
        for name in ("price_per_vcpu_s", "price_per_gib_s", "price_per_gpu_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"pricing.{name} must be an integer >= 0 (token base units per second), "
                                  f"got {value!r}")
        if self.utilization_markup < 0 or self.collateral_factor < 0:
            raise ConfigError("pricing.utilization_markup and pricing.collateral_factor must be >= 0")


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """The ``[container]`` table: how this provider runs ``runtime = "container"`` jobs.

    Used only when ``runtimes`` lists "container". ``engine``: "auto" (podman, else a docker
    whose daemon answers), "podman" or "docker"; ``oci_runtime``: podman's ``--runtime``
    ("auto" = runc where installed, "" = podman's own default); ``containers_conf``: "mercato"
    (a containers.conf with ``default_ulimits = []`` written under the data dir), "" (the
    system's) or a path; ``namespace``: the label and name prefix of this agent's containers
    (``cleanup_stale`` removes only those; "" = derived from the provider address, so two
    agents on one host never touch each other's). Caps a job's reservation may not exceed:
    ``max_cpu_millis`` (0 = every CPU here), ``max_pids``, ``max_wall_clock_s``,
    ``max_image_bytes``; memory is ``[limits] max_memory_bytes``. ``gpus``: offer this
    machine's NVIDIA GPUs ("auto": when detection finds any; "off": never); ``gpu_mode``:
    "auto" (CDI when a spec exists), "cdi" or "gpus" (docker's ``--gpus``); ``engine_args``:
    extra flags put before every engine sub-command (``["--storage-driver", "vfs"]``).
    """

    engine: Literal["auto", "podman", "docker"] = "auto"
    oci_runtime: str = "auto"
    containers_conf: str = "mercato"
    namespace: str = ""
    allow_network: bool = False
    allow_pull: bool = True
    max_cpu_millis: int = 0
    max_pids: int = 4096
    max_wall_clock_s: float = 3600.0
    max_image_bytes: int = 4 << 30
    gpus: Literal["auto", "off"] = "auto"
    gpu_mode: Literal["auto", "cdi", "gpus"] = "auto"
    engine_args: tuple[str, ...] = ()  # extra global engine flags, e.g. ("--storage-driver", "vfs")

    def __post_init__(self) -> None:
        if not isinstance(self.engine_args, tuple) or not all(isinstance(a, str) for a in self.engine_args):
            raise ConfigError("container.engine_args must be a list of strings (extra engine flags)")
        if self.engine not in ("auto", "podman", "docker"):
            raise ConfigError(f"container.engine must be auto, podman or docker, got {self.engine!r}")
        if self.gpus not in ("auto", "off"):
            raise ConfigError(f"container.gpus must be \"auto\" or \"off\", got {self.gpus!r}")
        if self.gpu_mode not in ("auto", "cdi", "gpus"):
            raise ConfigError(f"container.gpu_mode must be auto, cdi or gpus, got {self.gpu_mode!r}")
        for name in ("max_cpu_millis", "max_pids", "max_image_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_cpu_millis" else 1):
                raise ConfigError(f"container.{name} must be a positive integer, got {value!r}")
        wall = self.max_wall_clock_s
        if isinstance(wall, bool) or not isinstance(wall, (int, float)) or wall <= 0:
            raise ConfigError(f"container.max_wall_clock_s must be a positive number of seconds, got {wall!r}")
        if self.namespace:
            self.settings("0x0")  # validates the namespace (ConfigError)

    def settings(self, provider: str) -> ContainerSettings:
        """The runtime's settings for the agent of address ``provider``."""
        namespace = self.namespace or "p" + provider.lower().removeprefix("0x")[:12]
        return ContainerSettings(engine=self.engine, oci_runtime=self.oci_runtime,
                                 containers_conf=self.containers_conf, namespace=namespace,
                                 allow_network=self.allow_network, allow_pull=self.allow_pull,
                                 max_cpu_millis=self.max_cpu_millis, max_pids=self.max_pids,
                                 max_image_bytes=self.max_image_bytes, gpu_mode=self.gpu_mode,
                                 engine_args=self.engine_args)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider agent's settings (see examples/provider.toml for every field)."""

    account: str = "provider1"  # a named dev account, keystore:NAME (mercato keys), or a 0x key (devnet only)
    host: str = "127.0.0.1"
    port: int = 7001
    endpoint: str = ""  # the public URL put in the registry; "" means http://host:port
    data_dir: Path = Path(".mercato/provider")
    stake: int = 0  # ensure at least this much stake on start (token base units)
    lanes: int = 4  # capacity: deals held at once (the contract's lanes 0..lanes-1)
    # an unaccepted bid frees its lane this long after it was signed (its signature stays valid on-chain
    # until its expiry): longer than any bid window a requester waits, short enough that bids nobody
    # accepts do not clog the lanes (docs/SPEC.md §13)
    bid_hold_s: float = 5.0
    runtimes: tuple[str, ...] = ("wasm", "python")
    max_fuel: int = 1_000 * FUEL_PER_CU
    max_memory_bytes: int = 1 << 30
    max_input_bytes: int = 256 << 20  # workload + inputs of one job together
    max_blob_bytes: int = 256 << 20  # one upload
    max_tasks_per_deal: int = 256  # the most tasks one batch deal may hold (docs/SPEC.md §17)
    bulk_quote_ttl_s: int = 120  # how long a bulk quote's price holds (POST /v1/rfq/bulk)
    # the terms this agent signs (docs/SPEC.md §13, "Terms a provider refuses"): a requester may open a bid
    # on-chain at any moment up to its expiry, and reclaims a share of the collateral if no seal lands by
    # the deadline, so the time from expiry to deadline must hold the job's run (estimated at cu_per_s
    # CU a second, at most its wall clock) plus min_run_margin_s; the expiry at most max_expiry_s ahead;
    # the collateral at most max_collateral, and above collateral_ratio_floor at most max_collateral_ratio
    # times the price; the miss penalties of all deals that can still miss at most max_miss_exposure
    min_run_margin_s: float = 30.0
    cu_per_s: float = 1.0
    max_expiry_s: int = 600
    max_collateral: int = 1_000_000_000  # 1,000 mUSD
    max_collateral_ratio: int | float = 100
    collateral_ratio_floor: int = 100_000_000  # 100 mUSD
    max_miss_exposure: int = 1_000_000_000  # 1,000 mUSD
    # free stake never locked as collateral, so this agent can always be seated as an auditor: a drawn seat
    # locks a bond of the deal's audit fee until it commits, and one that cannot is passed over (docs/SPEC.md
    # §14.4), which would leave audit seats to whoever keeps stake idle (a sybil's share of seats would grow)
    audit_reserve: int = 10_000_000  # 10 mUSD
    # true: a batch priced by a live bulk quote of this agent's (mercato map's batches, which ask an expiry at
    # their deadline so that the provider can run them and then open_and_commit) is exempt from the two
    # timing rules: the requester could open such a bid at its expiry and reclaim the penalty (bounded by
    # the caps above) until the contract separates the requester's open-by from the provider's
    allow_batch_expiry_at_deadline: bool = True
    # the HTTP API against hostile clients (provider/guard.py): a JSON body's cap (blobs have
    # max_blob_bytes), the clock window of a signed request's timestamp (and of the replay check),
    # and a token bucket per signer (unsigned requests: per client address)
    max_json_bytes: int = 1 << 20
    auth_max_skew_s: int = 120
    rate_limit_per_s: float = 100.0
    rate_limit_burst: int = 500
    pricing: PricingConfig = field(default_factory=PricingConfig)
    container: ContainerConfig = field(default_factory=ContainerConfig)
    poll_interval_s: float = 1.0  # chain watcher
    housekeeping_interval_s: float = 1.0  # expiries, deadlines, finalize and claim
    finalize_batch: int = 32  # at most chain.MAX_BATCH
    claim_threshold: int = 1  # claim earnings once at least this much is claimable
    reclaim_grace_s: int = 30  # after a missed deadline, reclaim our own deal (frees the lane)
    # TEST ONLY fault injection: never_commit | wrong_result | hidden_wrong_result (a wrong result, and the
    # job refused to its auditors) | copied_seal (commits a seal it did not make) | lazy_auditor (commits the
    # audited provider's seal instead of re-executing) | silent_auditor | colluding_auditor (as an auditor,
    # claims the same wrong root a wrong_result provider claims)
    behaviour: Behaviour = "honest"

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ConfigError("lanes must be at least 1: it is how many deals this agent holds at once")
        unknown = set(self.runtimes) - set(PROVIDER_RUNTIMES)
        if unknown or not self.runtimes:
            raise ConfigError(f"runtimes {sorted(unknown) or '[]'} not supported; choose from {list(PROVIDER_RUNTIMES)}")
        if self.behaviour not in BEHAVIOURS:
            raise ConfigError(f"testing.behaviour {self.behaviour!r} unknown; use one of {list(BEHAVIOURS)}")
        if not 1 <= self.finalize_batch <= 32:
            raise ConfigError("finalize_batch must be between 1 and 32 (the contract's batch bound)")
        for name in ("max_fuel", "max_memory_bytes", "max_input_bytes", "max_blob_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer")
        tasks = self.max_tasks_per_deal
        if isinstance(tasks, bool) or not isinstance(tasks, int) or not 1 <= tasks <= MAX_TASKS:
            raise ConfigError(f"max_tasks_per_deal must be an integer from 1 to {MAX_TASKS} (a batch's most "
                              f"tasks), got {tasks!r}")
        for name in ("max_json_bytes", "auth_max_skew_s", "rate_limit_burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        rate = self.rate_limit_per_s
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            raise ConfigError(f"rate_limit_per_s must be a positive number of requests a second, got {rate!r}")
        hold = self.bid_hold_s
        if isinstance(hold, bool) or not isinstance(hold, (int, float)) or not 0 < hold <= 3600:
            raise ConfigError(f"bid_hold_s must be a number of seconds above 0 and at most 3600 (how long an "
                              f"unaccepted bid holds its lane), got {hold!r}")
        for name in ("min_run_margin_s", "max_collateral_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if not isinstance(self.allow_batch_expiry_at_deadline, bool):
            raise ConfigError(f"allow_batch_expiry_at_deadline must be true or false, "
                              f"got {self.allow_batch_expiry_at_deadline!r}")
        speed = self.cu_per_s
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed < float("inf"):
            raise ConfigError(f"cu_per_s must be a positive number (compute units this machine runs a second, "
                              f"for the run-time estimate), got {speed!r}")
        for name in ("max_expiry_s", "max_collateral", "collateral_ratio_floor", "max_miss_exposure",
                     "audit_reserve"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "max_expiry_s" else 0):
                raise ConfigError(f"{name} must be a whole number >= {1 if name == 'max_expiry_s' else 0}, "
                                  f"got {value!r}")
        ttl = self.bulk_quote_ttl_s
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise ConfigError(f"bulk_quote_ttl_s must be a whole number of seconds, at least 1, got {ttl!r}")

    @property
    def public_endpoint(self) -> str:
        """The URL requesters reach this agent at (what goes in the on-chain registry)."""
        return self.endpoint or f"http://{self.host}:{self.port}"

    def with_(self, **changes: Any) -> ProviderConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def load(cls, path: Path) -> ProviderConfig:
        """Read a TOML file (sections ``[provider]``, ``[limits]``, ``[terms]``, ``[pricing]``, ``[container]``,
        ``[intervals]``, ``[testing]``)."""
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"provider config {path} does not exist: copy examples/provider.toml") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"provider config {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, base=path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path = Path(".")) -> ProviderConfig:
        """Build from parsed TOML; relative paths are taken from ``base``."""
        data = dict(data)
        pricing = _pricing(data.pop("pricing", {}), base)
        container = _container(data.pop("container", {}), base)
        flat: dict[str, Any] = {}
        for section in ("provider", "limits", "terms", "intervals", "testing"):
            flat |= data.pop(section, {})
        flat |= data
        known = {f.name for f in fields(cls)} - {"pricing", "container"}
        unknown = set(flat) - known
        if unknown:
            raise ConfigError(f"unknown provider setting(s) {sorted(unknown)}: check the spelling")
        if "data_dir" in flat:
            flat["data_dir"] = _resolve(flat["data_dir"], base)
        if "runtimes" in flat:
            flat["runtimes"] = tuple(flat["runtimes"])
        try:
            return cls(pricing=pricing, container=container, **flat)
        except TypeError as exc:
            raise ConfigError(f"bad provider settings: {exc}") from None


def _resolve(value: str | Path, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _ratio(value: object, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"pricing.{name} must be a number, got {value!r}")
    try:
        return Fraction(str(value))  # str() keeps 1.5 exact instead of its binary float
    except ValueError:
        raise ConfigError(f"pricing.{name} must be a number, got {value!r}") from None


def _pricing(raw: dict[str, Any], base: Path) -> PricingConfig:
    raw = dict(raw)
    unknown = set(raw) - {f.name for f in fields(PricingConfig)}
    if unknown:
        raise ConfigError(f"unknown pricing setting(s) {sorted(unknown)}: check the spelling")
    for name in ("utilization_markup", "collateral_factor"):
        if name in raw:
            raw[name] = _ratio(raw[name], name)
    if raw.get("script"):
        raw["script"] = _resolve(raw["script"], base)
    else:
        raw.pop("script", None)
    try:
        return PricingConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"bad pricing settings: {exc}") from None


def _container(raw: object, base: Path) -> ContainerConfig:
    if not isinstance(raw, dict):
        raise ConfigError("[container] must be a table of settings")
    raw = dict(raw)
    unknown = set(raw) - {f.name for f in fields(ContainerConfig)}
    if unknown:
        raise ConfigError(f"unknown container setting(s) {sorted(unknown)}: check the spelling")
    if isinstance(raw.get("engine_args"), list):
        raw["engine_args"] = tuple(raw["engine_args"])
    conf = raw.get("containers_conf")
    if isinstance(conf, str) and conf not in ("", "mercato"):
        raw["containers_conf"] = str(_resolve(conf, base))
    try:
        return ContainerConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"bad container settings: {exc}") from None
