"""pricing.container_price: the resource-second price bound of a container job (pure, integer)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.domain.jobs import ContainerSpec, JobSpec, Limits
from mercato.provider.config import PricingConfig
from mercato.provider.pricing import ResourceRates, container_price

IMAGE = "sha256:" + "ab" * 32
GIB = 1 << 30


def spec(cpu_millis: int = 1000, memory: int = GIB, wall: float = 1.0, gpus: int = 0) -> JobSpec:
    return JobSpec(runtime="container", workload=IMAGE, limits=Limits(memory_bytes=memory, wall_clock_s=wall),
                   container=ContainerSpec(cpu_millis=cpu_millis, gpus=gpus))


def test_each_resource_is_billed_per_second() -> None:
    assert container_price(spec(), ResourceRates(per_vcpu_s=7)) == 7
    assert container_price(spec(), ResourceRates(per_gib_s=5)) == 5
    assert container_price(spec(gpus=2), ResourceRates(per_gpu_s=1000)) == 2000
    assert container_price(spec(cpu_millis=2500, memory=3 * GIB, wall=60, gpus=1), ResourceRates(100, 50, 10_000)) \
        == 60 * (250 + 150 + 10_000)


def test_fractions_are_summed_exactly_then_rounded_up_once() -> None:
    # 0.001 vCPU for 0.001 s at 1 per vCPU-s is a millionth of a unit: still 1 (a run is never free)
    assert container_price(spec(cpu_millis=1, memory=1, wall=0.001), ResourceRates(1, 1, 0)) == 1
    # 1.5 vCPU x 0.5 GiB... : 3 x (1.5 x 3 + 0.5 x 3) = 18 exactly, no float error
    assert container_price(spec(cpu_millis=1500, memory=GIB // 2, wall=3), ResourceRates(3, 3, 0)) == 18
    assert container_price(spec(cpu_millis=1501, memory=GIB // 2, wall=3), ResourceRates(3, 3, 0)) == 19


def test_utilization_markup_and_zero_rates() -> None:
    s = spec(wall=10)
    assert container_price(s, ResourceRates(100), Fraction(1, 2), Fraction(1)) == 1500
    assert container_price(s, ResourceRates(100), Fraction(1), Fraction(0)) == 1000
    assert container_price(s, ResourceRates()) == 0
    assert isinstance(container_price(s, ResourceRates(3, 1, 1), Fraction(1, 3), Fraction(1, 7)), int)


def test_rates_come_from_the_pricing_section() -> None:
    assert ResourceRates.of(PricingConfig(price_per_vcpu_s=1, price_per_gib_s=2, price_per_gpu_s=3)) == ResourceRates(1, 2, 3)


def test_only_container_specs_have_a_reservation() -> None:
    with pytest.raises(ValueError, match="container"):
        container_price(JobSpec(runtime="wasm", workload=IMAGE), ResourceRates(1))


@given(cpu=st.integers(1, 64_000), mem=st.integers(1, 1 << 40), wall_ms=st.integers(1, 10**8),
       gpus=st.integers(0, 8), rates=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**8)))
def test_price_is_the_ceiling_of_the_exact_product(cpu: int, mem: int, wall_ms: int, gpus: int,
                                                   rates: tuple[int, int, int]) -> None:
    s = spec(cpu_millis=cpu, memory=mem, wall=wall_ms / 1000, gpus=gpus)
    exact = Fraction(wall_ms, 1000) * (Fraction(cpu, 1000) * rates[0] + Fraction(mem, GIB) * rates[1] + gpus * rates[2])
    price = container_price(s, ResourceRates(*rates))
    assert isinstance(price, int) and price - 1 < exact <= price
