"""Batch jobs: many tasks of one workload in one deal (pure, no I/O; docs/SPEC.md §17).

    >>> from mercato.domain.jobs import JobSpec, Limits
    >>> base = JobSpec(runtime="wasm", workload="sha256:" + "ab" * 32, args=("sweep",))
    >>> spec = base.with_tasks([Task(args=("0.1",)), Task(args=("0.2",))])
    >>> spec.task_count, spec.task(1).args
    (2, ('sweep', '0.2'))

A batch spec is a ``JobSpec`` with ``tasks``: task ``i`` runs the base spec with the task's
``args`` appended, its ``inputs`` added to the base inputs (names may not collide), and its
own seed ``sha256(seed || u32be(k))``, ``k`` being the task's ``index`` in its run (its
position in the batch when unset): 1,000 Monte Carlo tasks spread over many batches draw
1,000 independent streams, and a task re-run in another batch draws the same one. ``limits`` apply to each task; the deal's fuel cap is the sum.

The provider runs the tasks one after another, each in a fresh sandbox, and reports one
receipt whose outputs are every task's result, laid out as files (``task_files``)::

    tasks/00000/exit        "<outcome>:<exit code or ->", e.g. "ok:0"
    tasks/00000/fuel        the task's fuel, decimal
    tasks/00000/stdout      its stdout
    tasks/00000/stderr      its stderr
    tasks/00000/out/<path>  each file it left under /output

so the batch's ``result_root`` (over those files) commits to every task's result in order,
and ``split_outputs`` hands the requester one ``TaskOutput`` per task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mercato.errors import SpecError

__all__ = ["MAX_TASKS", "Task", "TaskOutput", "check_tasks", "split_outputs", "task_dir", "task_files", "task_seed",
           "batch_output_cap"]

MAX_TASKS = 1024  # tasks in one batch deal
_FIELDS = ("exit", "fuel", "stdout", "stderr")


@dataclass(frozen=True, slots=True)
class Task:
    """What one task adds to its batch's base spec: arguments appended, inputs added."""

    args: tuple[str, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()  # (name, content hash), sorted by name
    # the task's index in its whole run (a run spans many batches): its seed is
    # task_seed(spec.seed, index), so a task draws the same stream whichever batch carries it;
    # None: its position in the batch
    index: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"args": list(self.args), "inputs": [list(kv) for kv in self.inputs]}
        if self.index is not None:  # only indexed tasks carry the key
            out["index"] = self.index
        return out

    @classmethod
    def from_json(cls, data: object) -> Task:
        if not isinstance(data, dict) or set(data) - {"args", "inputs", "index"}:
            raise SpecError("a task must be an object with only 'args', 'inputs' and 'index'", field="tasks")
        args, inputs, index = data.get("args", []), data.get("inputs", []), data.get("index")
        if not isinstance(args, list) or not isinstance(inputs, list):
            raise SpecError("a task's args and inputs must be lists", field="tasks")
        try:
            return cls(tuple(args), tuple(tuple(kv) for kv in inputs), index)  # type: ignore[arg-type]
        except TypeError as exc:
            raise SpecError(f"malformed task: {exc}", field="tasks") from None

    def seed_index(self, position: int) -> int:
        """The index its seed derives from: ``index`` when set, else ``position`` in the batch."""
        return position if self.index is None else self.index


def task_seed(seed: bytes, index: int) -> bytes:
    """Task ``index``'s 32-byte seed: ``sha256(seed || u32be(index))``."""
    return hashlib.sha256(seed + index.to_bytes(4, "big")).digest()


def task_dir(index: int) -> str:
    """``task_dir(7) == "tasks/00007"``: where task ``index``'s result lies in the batch's outputs."""
    return f"tasks/{index:05d}"


def task_files(index: int, *, outcome: str, exit_code: int | None, fuel: int, stdout: bytes, stderr: bytes,
               outputs: Mapping[str, bytes]) -> dict[str, bytes]:
    """The files that carry task ``index``'s result in its batch's outputs (path -> bytes)."""
    base = task_dir(index)
    files = {f"{base}/exit": f"{outcome}:{'-' if exit_code is None else exit_code}".encode(),
             f"{base}/fuel": str(fuel).encode(), f"{base}/stdout": stdout, f"{base}/stderr": stderr}
    files.update({f"{base}/out/{path}": data for path, data in outputs.items()})
    return files


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """One task's result, read back from its batch's outputs."""

    index: int
    outcome: str
    exit_code: int | None
    fuel_used: int
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok" and self.exit_code == 0


def split_outputs(files: Mapping[str, bytes], tasks: int) -> list[TaskOutput]:
    """Every task's result from a batch's output files; ``ValueError`` when one is missing,
    malformed, or a file lies outside the layout (a verified result never does)."""
    per: dict[int, dict[str, bytes]] = {i: {} for i in range(tasks)}
    for path, data in files.items():
        head, _, rest = path.partition("/")
        num, _, name = rest.partition("/")
        if head != "tasks" or not num.isdigit() or len(num) != 5 or int(num) not in per or not name:
            raise ValueError(f"batch output {path!r} is outside the tasks/<index>/ layout")
        per[int(num)][name] = data
    out = []
    for i, got in per.items():
        missing = [f for f in _FIELDS if f not in got]
        if missing:
            raise ValueError(f"task {i} has no {', '.join(missing)} in the batch's outputs")
        outcome, _, code = got["exit"].decode("utf-8", "replace").partition(":")
        try:
            exit_code = None if code == "-" else int(code)
            fuel = int(got["fuel"].decode())
        except ValueError:
            raise ValueError(f"task {i} has a malformed exit or fuel file") from None
        extra = {k.removeprefix("out/"): v for k, v in got.items() if k.startswith("out/")}
        unknown = set(got) - set(_FIELDS) - {f"out/{k}" for k in extra}
        if unknown:
            raise ValueError(f"task {i} has unexpected files {sorted(unknown)}")
        out.append(TaskOutput(i, outcome, exit_code, fuel, got["stdout"], got["stderr"], extra))
    return out


def batch_output_cap(tasks: int, output_bytes: int, stdout_bytes: int) -> int:
    """The most bytes a batch's outputs can hold: each task's files at their caps, plus its small
    exit and fuel files."""
    return tasks * (output_bytes + 2 * stdout_bytes + 64)


def check_tasks(tasks: Iterable[object], base_inputs: Iterable[tuple[str, str]], runtime: str) -> None:
    """``SpecError`` unless ``tasks`` is a valid task list for a base spec with ``base_inputs``."""
    tasks = tuple(tasks)
    if not tasks:
        return
    if runtime == "container":
        raise SpecError("batch tasks run on the deterministic runtimes (wasm, python), not containers",
                        field="tasks")
    if len(tasks) > MAX_TASKS:
        raise SpecError(f"a batch holds at most {MAX_TASKS} tasks, got {len(tasks)}: split it into more deals",
                        field="tasks")
    from mercato.domain.jobs import _check_args, _check_inputs  # one validator for base and tasks

    names = {n for n, _ in base_inputs}
    seen: set[int] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise SpecError(f"tasks[{i}] must be a Task", field="tasks")
        index = task.seed_index(i)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**32:
            raise SpecError(f"tasks[{i}].index must be an integer in [0, 2**32)", field="tasks")
        if index in seen:
            raise SpecError(f"tasks[{i}] repeats seed index {index}: two tasks would draw the same stream",
                            field="tasks")
        seen.add(index)
        _check_args(task.args)
        _check_inputs(task.inputs)
        clash = names & {n for n, _ in task.inputs}
        if clash:
            raise SpecError(f"tasks[{i}] redefines the base input(s) {sorted(clash)}", field="tasks")
