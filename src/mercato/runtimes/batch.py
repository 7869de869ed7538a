"""Running a batch spec: every task in its own fresh sandbox, one receipt for the lot.

    receipt = run_spec(runtime, spec, workspace)     # a plain spec: exactly runtime.run(spec, workspace)

A batch (``JobSpec.tasks``, docs/SPEC.md §17) runs task ``i`` as the plain spec
``spec.task(i)`` (base args + its args, base + its inputs, its own seed), one after another
in index order, each in a fresh sub-workspace under the batch's ``tmp`` folder that is removed
once its result is read. Every task runs whatever the earlier ones did: a task that exhausts
its fuel or exits non-zero is a result like any other, recorded in its ``exit`` file.

Each task's result is written into the batch's ``output`` folder as the files of
``domain.batch.task_files`` (``tasks/00000/exit``, ``fuel``, ``stdout``, ``stderr`` and
``out/<path>``), and the batch's receipt is that of an ordinary job that left exactly those
files: outcome ``ok``, exit code 0, empty stdout and stderr, and the ``result_root`` the
runtimes compute for any job (``verification.result_root``) over those outputs. So the seal,
the requester's download and check, and an auditor's re-run treat a batch like any other
deal, and the root commits to every task's result in order. ``fuel_used`` is the tasks' sum
(each at most ``limits.fuel``), timings are summed.

The batch is as deterministic as its tasks: two runs give the same files and the same root
(a task stopped by the wall clock is the one host-dependent outcome, as for a plain job).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mercato.domain.batch import task_files
from mercato.domain.jobs import JobSpec, Outcome, OutputFile, Receipt, Timings
from mercato.runtimes.base import FIXED_MTIME, Runtime, Workspace
from mercato.verification.result_root import result_root, sha256_hex

__all__ = ["run_spec", "run_batch"]


def run_spec(runtime: Runtime, spec: JobSpec, workspace: Workspace, **kwargs: Any) -> Receipt:
    """Run ``spec`` in ``workspace``: a plain spec as ``runtime.run(spec, workspace, **kwargs)``,
    a batch task by task (``run_batch``). Errors that stop a runtime from running at all
    (``WorkloadError`` and friends) propagate unchanged."""
    if not spec.tasks:
        return runtime.run(spec, workspace, **kwargs)  # type: ignore[call-arg]
    return run_batch(runtime, spec, workspace, **kwargs)


def run_batch(runtime: Runtime, spec: JobSpec, workspace: Workspace, **kwargs: Any) -> Receipt:
    """Every task of the batch ``spec`` in order; their results laid out under
    ``workspace.output_dir`` and summed up in one receipt (see the module docstring)."""
    outputs: list[OutputFile] = []
    fuel = 0
    compile_ms = run_ms = wall_ms = 0.0
    failed: dict[str, int] = {}
    for index in range(len(spec.tasks)):
        receipt, files = _run_task(runtime, spec.task(index), workspace, kwargs)
        written = task_files(index, outcome=receipt.outcome.value, exit_code=receipt.exit_code,
                             fuel=receipt.fuel_used, stdout=receipt.stdout, stderr=receipt.stderr, outputs=files)
        outputs.extend(_write(workspace.output_dir, written.items()))
        fuel += receipt.fuel_used
        compile_ms += receipt.timings.compile_ms
        run_ms += receipt.timings.run_ms
        wall_ms += receipt.timings.wall_ms
        if receipt.outcome is not Outcome.OK or receipt.exit_code != 0:
            failed[receipt.outcome.value] = failed.get(receipt.outcome.value, 0) + 1
    outputs.sort(key=lambda o: o.path.encode("utf-8"))
    root = result_root(outputs=[(o.path, o.sha256) for o in outputs], stdout=b"", stderr=b"",
                       outcome=Outcome.OK.value, exit_code=0)
    return Receipt(outcome=Outcome.OK, exit_code=0, fuel_used=fuel, stdout=b"", stderr=b"",
                   outputs=tuple(outputs), result_root=root,
                   timings=Timings(compile_ms=compile_ms, run_ms=run_ms, wall_ms=wall_ms),
                   message=_summary(len(spec.tasks), failed))


def _run_task(runtime: Runtime, task: JobSpec, workspace: Workspace,
              kwargs: dict[str, Any]) -> tuple[Receipt, dict[str, bytes]]:
    """One task in a fresh sub-workspace: its receipt and the bytes of each output it lists."""
    sub = Workspace.create(workspace.tmp_dir)
    try:
        receipt = runtime.run(task, sub, **kwargs)  # type: ignore[call-arg]
        files = {o.path: (sub.output_dir / o.path).read_bytes() for o in receipt.outputs}
    finally:
        sub.remove()
    return receipt, files


def _write(output_dir: Path, files: Iterable[tuple[str, bytes]]) -> list[OutputFile]:
    """Write each ``(relative path, bytes)`` under ``output_dir``; what the receipt lists for them."""
    listed = []
    for rel, data in files:
        dest = output_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        os.utime(dest, (FIXED_MTIME, FIXED_MTIME))
        listed.append(OutputFile(rel, sha256_hex(data), len(data)))
    return listed


def _summary(tasks: int, failed: dict[str, int]) -> str:
    """``"3 tasks: 2 ok, 1 fuel_exhausted"``: the receipt's one-line message."""
    ok = tasks - sum(failed.values())
    parts = [f"{ok} ok", *(f"{n} {outcome}" for outcome, n in sorted(failed.items()))]
    return f"{tasks} tasks: {', '.join(parts)}"
