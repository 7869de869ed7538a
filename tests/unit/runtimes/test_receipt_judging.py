"""How raw engine results become outcomes (no wasmtime needed)."""

from __future__ import annotations

import pytest

from mercato.domain.jobs import Limits, Outcome
from mercato.runtimes._receipt import build_receipt, judge
from mercato.runtimes._sandbox import RawResult

LIM = Limits(fuel=1000, memory_bytes=64 << 20, output_bytes=10, stdout_bytes=100)


def raw(**kw):
    base = dict(exit_code=0, trap=None, fuel_used=10, stdout=b"", stderr=b"", stream_overflow=False, memory_bytes=1 << 20, run_ms=1.0)
    return RawResult(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "too_large", "outcome", "fuel"),
    [
        ({}, False, Outcome.OK, 10),
        ({"exit_code": 2}, False, Outcome.EXIT_NONZERO, 10),
        ({"exit_code": None, "trap": "fuel"}, False, Outcome.FUEL_EXHAUSTED, 1000),
        ({"exit_code": None, "trap": "interrupt"}, False, Outcome.WALL_CLOCK_EXCEEDED, 1000),
        ({"stream_overflow": True}, False, Outcome.OUTPUT_TOO_LARGE, 1000),
        ({}, True, Outcome.OUTPUT_TOO_LARGE, 10),
        ({"exit_code": None, "trap": "unreachable", "memory_bytes": 63 << 20}, False, Outcome.MEMORY_EXCEEDED, 10),
        ({"exit_code": 1, "memory_bytes": 64 << 20}, False, Outcome.MEMORY_EXCEEDED, 10),
        ({"exit_code": None, "trap": "unreachable"}, False, Outcome.TRAP, 10),
    ],
)
def test_judge(kw, too_large, outcome, fuel):
    got, got_fuel, _ = judge(raw(**kw), LIM, too_large)
    assert (got, got_fuel) == (outcome, fuel)


def test_build_receipt_hashes_outputs_sorted(tmp_path):
    (tmp_path / "b").write_bytes(b"2")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"1")
    r = build_receipt(raw(), LIM, tmp_path, 0.0, 0.0)
    assert [o.path for o in r.outputs] == ["b", "d/a"]
    assert r.outcome is Outcome.OK and len(r.result_root) == 64
