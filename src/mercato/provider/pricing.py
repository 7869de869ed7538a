"""Pricing strategies: ``(rfq, utilization) -> price per CU`` (token base units, integer).

    >>> from fractions import Fraction
    >>> UtilizationPricing(floor=1000, markup=Fraction(1))(None, Fraction(1, 2))
    1500

``utilization`` is busy lanes / lanes, an exact fraction in [0, 1]. A ``ScriptPricing``
runs an executable (Akash's bid-price script): it gets one JSON object on stdin and must
print one non-negative integer, the price per CU, on stdout.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from mercato.domain.jobs import JobSpec
from mercato.domain.wire import Rfq
from mercato.errors import PricingError
from mercato.provider.config import PricingConfig

__all__ = ["PricingStrategy", "ResourceRates", "UtilizationPricing", "ScriptPricing", "container_price",
           "strategy_for"]

GIB = 1 << 30


class PricingStrategy(Protocol):
    """Quote a price per CU for ``rfq`` at the current ``utilization`` (0 = idle, 1 = full)."""

    def __call__(self, rfq: Rfq | None, utilization: Fraction) -> int: ...


@dataclass(frozen=True, slots=True)
class UtilizationPricing:
    """``floor × (1 + markup × utilization)``, rounded up: busier providers ask more."""

    floor: int
    markup: Fraction = Fraction(0)

    def __call__(self, rfq: Rfq | None, utilization: Fraction) -> int:
        return math.ceil(self.floor * (1 + self.markup * utilization))


@dataclass(frozen=True, slots=True)
class ScriptPricing:
    """Ask an executable: ``{"rfq": …, "utilization": 0.5, "floor": 1000}`` in, ``1200`` out."""

    script: Path
    floor: int = 0
    timeout_s: float = 5.0

    def __call__(self, rfq: Rfq | None, utilization: Fraction) -> int:
        payload = json.dumps({"rfq": None if rfq is None else rfq.model_dump(mode="json"),
                              "utilization": float(utilization), "floor": self.floor})
        try:
            done = subprocess.run([str(self.script)], input=payload, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise PricingError(f"price script {self.script} not found: fix pricing.script") from None
        except PermissionError:
            raise PricingError(f"price script {self.script} is not executable: chmod +x it") from None
        except subprocess.TimeoutExpired:
            raise PricingError(f"price script {self.script} took over {self.timeout_s:g} s: "
                               "make it faster or raise pricing.script_timeout_s") from None
        if done.returncode != 0:
            raise PricingError(f"price script {self.script} exited with {done.returncode}: "
                               f"{done.stderr.strip()[-200:] or 'no stderr'}")
        text = done.stdout.strip()
        try:
            price = int(text)
        except ValueError:
            raise PricingError(f"price script {self.script} printed {text[:80]!r}, "
                               "not an integer price per CU in token base units") from None
        if price < 0:
            raise PricingError(f"price script {self.script} printed a negative price ({price})")
        return price


def strategy_for(cfg: PricingConfig) -> PricingStrategy:
    """The strategy a ``[pricing]`` section asks for."""
    if cfg.script is not None:
        return ScriptPricing(cfg.script, cfg.price_per_cu, cfg.script_timeout_s)
    return UtilizationPricing(cfg.price_per_cu, cfg.utilization_markup)


@dataclass(frozen=True, slots=True)
class ResourceRates:
    """Container prices in token base units per reserved resource-second (integers)."""

    per_vcpu_s: int = 0
    per_gib_s: int = 0
    per_gpu_s: int = 0

    @classmethod
    def of(cls, cfg: PricingConfig) -> ResourceRates:
        return cls(cfg.price_per_vcpu_s, cfg.price_per_gib_s, cfg.price_per_gpu_s)


def container_price(spec: JobSpec, rates: ResourceRates, utilization: Fraction = Fraction(0),
                    markup: Fraction = Fraction(0)) -> int:
    """The price bound of a container job: what its reservation costs for its whole wall clock.

    ``wall_clock_s × (vCPUs × per_vcpu_s + GiB × per_gib_s + GPUs × per_gpu_s)``, times
    ``1 + markup × utilization``, rounded up once at the end (exact integer arithmetic: the
    wall clock counts in milliseconds, vCPUs in thousandths, memory in bytes).

    >>> from mercato.domain.jobs import ContainerSpec, Limits
    >>> spec = JobSpec(runtime="container", workload="sha256:" + "ab" * 32,
    ...                limits=Limits(memory_bytes=2 << 30, wall_clock_s=10), container=ContainerSpec(cpu_millis=1500))
    >>> container_price(spec, ResourceRates(per_vcpu_s=100, per_gib_s=50, per_gpu_s=10_000))
    2500
    """
    c = spec.container
    if c is None:
        raise ValueError("container_price needs a container spec")
    wall_ms = spec.limits.to_json()["wall_clock_ms"]
    assert isinstance(wall_ms, int)
    # per millisecond of wall clock, in units of 1 / (1000 × 1000 × GiB) token base units
    rate = (c.cpu_millis * rates.per_vcpu_s * GIB
            + spec.limits.memory_bytes * rates.per_gib_s * 1000
            + c.gpus * rates.per_gpu_s * 1000 * GIB)
    exact = Fraction(wall_ms * rate, 1000 * 1000 * GIB) * (1 + markup * utilization)
    return math.ceil(exact)
