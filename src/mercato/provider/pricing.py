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

from mercato.domain.wire import Rfq
from mercato.errors import PricingError
from mercato.provider.config import PricingConfig

__all__ = ["PricingStrategy", "UtilizationPricing", "ScriptPricing", "strategy_for"]


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
