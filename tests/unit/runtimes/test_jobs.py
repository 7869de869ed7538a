"""JobSpec, Limits and Receipt: validation with named fields, canonical hashing, CU rounding."""

from __future__ import annotations

import pytest

from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits, Outcome, Receipt, cu_from_fuel
from mercato.errors import SpecError

W = "sha256:" + "ab" * 32
I = "sha256:" + "cd" * 32


def test_spec_hash_is_stable_and_sensitive():
    a = JobSpec(runtime="wasm", workload=W, args=("1",), inputs=(("data.bin", I),))
    assert a.spec_hash() == JobSpec(runtime="wasm", workload=W, args=("1",), inputs=(("data.bin", I),)).spec_hash()
    assert a.spec_hash().startswith("sha256:") and len(a.spec_hash()) == 71
    for other in (
        JobSpec(runtime="wasm", workload=W, args=("2",), inputs=(("data.bin", I),)),
        JobSpec(runtime="python", workload=W, args=("1",), inputs=(("data.bin", I),)),
        JobSpec(runtime="wasm", workload=W, args=("1",), inputs=(("data.bin", I),), seed=b"\x01" * 32),
        JobSpec(runtime="wasm", workload=W, args=("1",), inputs=(("data.bin", I),), limits=Limits(fuel=7)),
    ):
        assert other.spec_hash() != a.spec_hash()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"runtime": "container"}, "runtime"),
        ({"workload": "abc"}, "workload"),
        ({"workload": "sha256:" + "AB" * 32}, "workload"),
        ({"args": ["x"]}, "args"),
        ({"env": (("B", "1"), ("A", "2"))}, "env"),
        ({"env": (("A=B", "1"),)}, "env"),
        ({"inputs": (("b", I), ("a", I))}, "inputs"),
        ({"inputs": (("../x", I),)}, "inputs"),
        ({"inputs": (("x", "nohash"),)}, "inputs"),
        ({"seed": b"short"}, "seed"),
    ],
)
def test_invalid_specs_name_their_field(kwargs, field):
    base = {"runtime": "wasm", "workload": W}
    with pytest.raises(SpecError) as info:
        JobSpec(**{**base, **kwargs})
    assert info.value.field == field


@pytest.mark.parametrize("kwargs", [{"fuel": 0}, {"memory_bytes": -1}, {"wall_clock_s": float("nan")}, {"stdout_bytes": True}])
def test_invalid_limits(kwargs):
    with pytest.raises(SpecError):
        Limits(**kwargs)


@pytest.mark.parametrize(("fuel", "cu"), [(0, 0), (1, 1), (FUEL_PER_CU, 1), (FUEL_PER_CU + 1, 2)])
def test_cu_rounds_up(fuel, cu):
    assert cu_from_fuel(fuel) == cu
    assert Receipt(Outcome.OK, 0, fuel, b"", b"", (), "00" * 32).cu_used == cu


def test_receipt_json_is_plain():
    r = Receipt(Outcome.FUEL_EXHAUSTED, None, 5, b"\xff", b"", (), "00" * 32)
    j = r.to_json()
    assert j["outcome"] == "fuel_exhausted" and j["exit_code"] is None and j["cu_used"] == 1
