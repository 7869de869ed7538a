"""requester.redundancy: k runs on distinct providers, the comparison rules and the verdict."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from mercato.domain.jobs import ContainerSpec, JobSpec
from mercato.errors import NoBids, SpecError
from mercato.requester import JobRequest
from mercato.requester.events import JobResult
from mercato.requester.redundancy import NotEnoughProviders, exact, judge, result_document, run_redundant

SPEC = JobSpec(runtime="container", workload="sha256:" + "ab" * 32, container=ContainerSpec())
JOB = JobRequest(spec=SPEC, max_price=10_000)


def _result(provider: str, root: str, stdout: bytes = b"x\n", price: int = 100) -> JobResult:
    return JobResult(deal_id="0x" + provider[-2:] * 32, provider=provider, endpoint="http://p", price=price,
                     collateral=1900, outcome="ok", exit_code=0, fuel_used=0, result_root=root, stdout=stdout,
                     stderr=b"", outputs={"o.txt": stdout}, verified=True, seal="0x" + "00" * 32,
                     open_tx=None, commit_tx=None, opened_by="requester")


class FakeMarket:
    """Providers by address -> the result root each produces; the cheapest not excluded wins."""

    def __init__(self, roots: dict[str, str]) -> None:
        self.roots = roots
        self.calls: list[frozenset[str]] = []

    async def run(self, job: JobRequest, **options: Any) -> JobResult:
        job = replace(job, **options)
        self.calls.append(job.exclude_providers)
        for provider, root in self.roots.items():
            if provider.lower() not in job.exclude_providers:
                return _result(provider, root)
        raise NoBids("no provider bid", asked=len(self.roots))


def test_k_runs_go_to_distinct_providers_and_agree() -> None:
    market = FakeMarket({"0xAA": "r1", "0xBB": "r1", "0xCC": "r1"})
    verdict = asyncio.run(run_redundant(market, replace(JOB, redundancy=3)))
    assert [r.provider for r in verdict.results] == ["0xAA", "0xBB", "0xCC"]
    assert market.calls == [frozenset(), frozenset({"0xaa"}), frozenset({"0xaa", "0xbb"})]
    assert verdict.agreed is True and verdict.chosen is verdict.results[0] and verdict.groups == ((0, 1, 2),)
    assert verdict.paid == 300 and "all 3 results agree" in verdict.message


def test_a_minority_that_differs_is_reported_not_challenged() -> None:
    verdict = asyncio.run(run_redundant(FakeMarket({"0xAA": "r1", "0xBB": "r2", "0xCC": "r1"}),
                                        replace(JOB, redundancy=3)))
    assert verdict.agreed is False and verdict.groups == ((0, 2), (1,))
    assert verdict.chosen is not None and verdict.chosen.provider == "0xAA"
    assert "0xBB" in verdict.message and "none is challenged" in verdict.message
    assert verdict.paid == 300  # every deal is paid


def test_no_majority_chooses_nothing() -> None:
    verdict = asyncio.run(run_redundant(FakeMarket({"0xAA": "r1", "0xBB": "r2"}), replace(JOB, redundancy=2)))
    assert verdict.agreed is False and verdict.chosen is None and verdict.groups == ((0,), (1,))
    assert "no majority" in verdict.message


def test_reputation_only_runs_once_without_comparison() -> None:
    market = FakeMarket({"0xAA": "r1", "0xBB": "r2"})
    verdict = asyncio.run(run_redundant(market, replace(JOB, redundancy=3, compare="reputation-only")))
    assert len(market.calls) == 1 and verdict.agreed is None and verdict.chosen is verdict.results[0]


def test_too_few_providers_keeps_the_finished_runs() -> None:
    with pytest.raises(NotEnoughProviders, match="only 2 of the 3") as err:
        asyncio.run(run_redundant(FakeMarket({"0xAA": "r1", "0xBB": "r1"}), replace(JOB, redundancy=3)))
    assert [r.provider for r in err.value.results] == ["0xAA", "0xBB"]
    with pytest.raises(NoBids):  # not even one: the auction's own error
        asyncio.run(run_redundant(FakeMarket({}), replace(JOB, redundancy=2)))


def test_a_callable_comparator_decides_sameness() -> None:
    def same_stdout(a: JobResult, b: JobResult) -> bool:
        return a.stdout == b.stdout

    results = [_result("0xAA", "r1", b"7\n"), _result("0xBB", "r2", b"7\n"), _result("0xCC", "r3", b"8\n")]
    verdict = judge(results, same_stdout, "same_stdout")
    assert verdict.groups == ((0, 1), (2,)) and verdict.chosen is results[0]
    assert judge(results, exact, "exact").groups == ((0,), (1,), (2,))


def test_result_document_is_canonical_json() -> None:
    doc = json.loads(result_document(_result("0xAA", "r1", b"\xff\n")))
    assert doc["outputs"] == {"o.txt": base64.b64encode(b"\xff\n").decode()}
    assert (doc["outcome"], doc["exit_code"], doc["result_root"]) == ("ok", 0, "r1")
    assert result_document(_result("0xAA", "r1")) == result_document(_result("0xAA", "r1"))


def test_bad_rules_are_refused() -> None:
    with pytest.raises(SpecError, match="compare must be"):
        asyncio.run(run_redundant(FakeMarket({"0xAA": "r1"}), JOB, compare="majority"))
    with pytest.raises(SpecError, match="must be a positive integer"):
        asyncio.run(run_redundant(FakeMarket({"0xAA": "r1"}), JOB, k=0))
