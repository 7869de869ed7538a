"""`mercato map`: many tasks of one job, on as many providers as it takes, within a budget.

    mercato map job.toml --inputs in/ --out out/        # one task per file of in/
    mercato map job.toml --args-file sweep.txt --ordered # one task per line: its arguments
    mercato map job.toml --inputs in/ --budget 50 --max-price-per-cu 0.02 --tasks-per-deal 16 --json

Each file of ``--inputs`` is one task's input, mounted as ``/input/<name>`` where ``name`` is
``[map] input_name`` in the job.toml (default ``task.in``); each non-empty line of
``--args-file`` (``#`` starts a comment line) is one task whose whitespace-split words are
appended to the job's ``args``. With ``--out`` each task lands in ``<out>/<input file stem or
task index>/``: ``stdout``, ``stderr``, ``result.json`` and its /output files under
``outputs/``; without it each task's stdout is printed. A live display shows tasks done,
running and failed, the spend and an ETA; a table per provider ends the run. ``--json`` prints
one JSON object per task as it is verified, then ``{"summary": …}``.

Amounts are mUSD. ``--max-price-per-cu`` defaults to the job's ``[market] max_price`` over its
CUs per task; ``--budget`` to your escrow balance. The exit status is 1 when a task was not
done (the summary says which and why): the finished ones are kept all the same.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from mercato.cli._errors import clean_errors, err_console
from mercato.cli.requester import AccountOption, ConfigOption, _musd, _settings, console
from mercato.domain.jobs import cu_from_fuel
from mercato.errors import SpecError
from mercato.requester import (
    BatchCancelled,
    BatchDispatched,
    BatchDone,
    BatchFailed,
    Event,
    JobRequest,
    MapSummary,
    Market,
    ProviderExcluded,
    Spend,
    TaskResult,
    format_musd,
    load_map_toml,
    parse_musd,
)

__all__ = ["map_command", "register", "read_inputs", "read_args_file"]


def read_inputs(folder: Path) -> list[Path]:
    """The task inputs of ``--inputs``: every regular file in ``folder`` (not hidden), by name."""
    if not folder.is_dir():
        raise SpecError(f"--inputs {folder} is not a folder: give a folder holding one input file per task",
                        field="inputs")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise SpecError(f"--inputs {folder} holds no files: put one input file per task in it", field="inputs")
    return files


def read_args_file(path: Path) -> list[list[str]]:
    """The tasks of ``--args-file``: each non-empty, non-comment line split on whitespace."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read --args-file {path}: {getattr(exc, 'strerror', None) or exc}",
                        field="args_file") from None
    tasks = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not tasks:
        raise SpecError(f"--args-file {path} has no task lines: write one task's arguments per line",
                        field="args_file")
    return tasks


def _price_per_cu(req: JobRequest, given: str | None) -> int:
    if given is not None:
        return parse_musd(given, what="--max-price-per-cu")
    cu = cu_from_fuel(req.spec.limits.fuel)
    derived = req.max_price // cu if cu else 0
    if derived == 0:
        raise SpecError(f"the job's max_price {_musd(req.max_price)} is less than one base unit per CU over its "
                        f"{cu} CU a task: give --max-price-per-cu", field="max_price_per_cu")
    return derived


class _MapDisplay:
    """The live view of one run, fed by Market's map events: a bar of tasks done with what is
    running and failed, the spend and an ETA."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = self.running = self.failed_batches = self.excluded = 0
        self.spend = Spend(0, 0, 0, 0)
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]map[/bold]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console)
        self.task = self.progress.add_task("map", total=total, status=self._status())

    def _status(self) -> str:
        budget = f" of {format_musd(self.spend.budget)}" if self.spend.budget else ""
        held = self.spend.committed + self.spend.reserved
        return (f"{self.running} running · {self.failed_batches} failed batch(es) · spent "
                f"{format_musd(self.spend.spent)}{budget} mUSD · held {format_musd(held)}")

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, BatchDispatched):
            self.running += len(ev.tasks)
        elif isinstance(ev, BatchDone):
            self.running -= len(ev.tasks)
            self.done += len(ev.tasks)
        elif isinstance(ev, (BatchFailed, BatchCancelled)):
            self.running -= len(ev.tasks)
            self.failed_batches += isinstance(ev, BatchFailed)
        elif isinstance(ev, ProviderExcluded):
            self.excluded += 1
        elif isinstance(ev, Spend):
            self.spend = ev
        else:
            return
        self.progress.update(self.task, completed=self.done, status=self._status())


def _task_json(r: TaskResult) -> dict[str, Any]:
    return {"index": r.index, "name": r.name, "outcome": r.outcome, "exit_code": r.exit_code,
            "fuel_used": r.fuel_used, "provider": r.provider, "deal_id": r.deal_id, "batch": r.batch, "seed": r.seed,
            "stdout": r.stdout.decode("utf-8", "replace"), "outputs": sorted(r.outputs)}


def _summary_json(s: MapSummary) -> dict[str, Any]:
    return {"tasks": s.tasks, "done": len(s.done), "failed": {str(i): e for i, e in s.failed.items()},
            "not_run": list(s.not_run), "stopped": s.stopped, "budget": s.budget, "spent": s.spent,
            "committed": s.committed, "batches": s.batches, "elapsed_s": s.elapsed_s,
            "providers": {p: {"tasks": t.tasks, "batches": t.batches, "spent": t.spent, "failures": t.failures,
                              "declines": t.declines, "excluded": t.excluded} for p, t in s.providers.items()}}


def _summary_tables(s: MapSummary) -> Group:
    table = Table(title="providers", title_justify="left")
    for col in ("provider", "tasks", "batches", "spent mUSD", "failures", "declines", "status"):
        table.add_column(col, justify="right" if col in ("tasks", "batches", "spent mUSD", "failures", "declines")
                         else "left", no_wrap=col != "status")
    for t in sorted(s.providers.values(), key=lambda t: (-t.tasks, t.provider)):
        status = "[green]ok[/green]" if t.excluded is None else f"[red]out[/red]: {escape(t.excluded[:120])}"
        table.add_row(t.provider, str(t.tasks), str(t.batches), format_musd(t.spent), str(t.failures),
                      str(t.declines), status)
    lines = [f"{len(s.done)}/{s.tasks} tasks done in {s.elapsed_s:.1f} s, {s.batches} batch deal(s) · spent "
             f"{_musd(s.spent)}, {_musd(s.committed)} held with the audit fees until the deals settle, budget "
             f"{_musd(s.budget)}"]
    if s.failed:
        shown = "; ".join(f"task {i}: {escape(e[:120])}" for i, e in list(s.failed.items())[:3])
        lines.append(f"[red]{len(s.failed)} given up[/red] after repeated failed batches ({shown}"
                     f"{'; …' if len(s.failed) > 3 else ''})")
    if s.not_run:
        lines.append(f"[red]{len(s.not_run)} not run[/red]: {escape(s.stopped or 'the run stopped')}")
    return Group(table, *lines)


def map_command(
        job: Annotated[Path, typer.Argument(help="a job.toml (input_name in its map table names each task's "
                                                 "input file)")],
        inputs: Annotated[Path | None, typer.Option("--inputs", help="a folder: one task per file")] = None,
        args_file: Annotated[Path | None, typer.Option("--args-file", help="one task per line: its arguments")] = None,
        ordered: Annotated[bool, typer.Option("--ordered", help="stream the tasks in input order")] = False,
        budget: Annotated[str | None, typer.Option("--budget", help="mUSD the run may hold at most (default: your "
                                                                    "escrow balance)")] = None,
        max_price_per_cu: Annotated[str | None, typer.Option("--max-price-per-cu", help="mUSD per CU (default: "
                                                             "the job's max_price over its CUs)")] = None,
        tasks_per_deal: Annotated[int | None, typer.Option("--tasks-per-deal", help="tasks in one batch deal "
                                                           "(default: up to 32, spread over free lanes)")] = None,
        out: Annotated[Path | None, typer.Option("--out", help="write each task under OUT/<name>/")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON line per task, then the summary")] = False,
        config: ConfigOption = None, account: AccountOption = None) -> None:
    """Run a job once per input on many providers: batch deals, failover, a budget."""
    if (inputs is None) == (args_file is None):
        raise SpecError("give exactly one of --inputs DIR (one task per file) and --args-file FILE (one task per "
                        "line)", field="inputs")
    req, input_name = load_map_toml(job)
    tasks: list[Any] = list(read_inputs(inputs)) if inputs is not None else read_args_file(args_file)  # type: ignore
    ppcu = _price_per_cu(req, max_price_per_cu)
    cap = parse_musd(budget, what="--budget") if budget is not None else None
    if tasks_per_deal is not None and tasks_per_deal < 1:
        raise SpecError(f"--tasks-per-deal must be at least 1, got {tasks_per_deal}", field="tasks_per_deal")
    out_dir = out if out is not None else req.out_dir
    settings = _settings(config, account)
    display = _MapDisplay(len(tasks))

    def show(r: TaskResult) -> None:
        if as_json:
            typer.echo(json.dumps(_task_json(r), sort_keys=True))
        elif out_dir is None and r.stdout:
            head = f"[bold]{escape(r.name)}[/bold]" + ("" if r.ok else f" [red]({r.outcome}, exit {r.exit_code})[/red]")
            console.print(head)
            console.print(r.stdout.decode("utf-8", "replace").rstrip("\n"), markup=False, highlight=False)

    async def go() -> MapSummary:
        async with Market.connect(settings, on_event=None if as_json else display) as m:
            run = m.map(req, tasks, max_price_per_cu=ppcu, budget=cap, ordered=ordered,
                        tasks_per_deal=tasks_per_deal, input_name=input_name, out_dir=out_dir)
            async for result in run:
                show(result)
            assert run.summary is not None
            return run.summary

    if as_json:
        summary = asyncio.run(go())
        typer.echo(json.dumps({"summary": _summary_json(summary)}, sort_keys=True))
    else:
        with display.progress:
            summary = asyncio.run(go())
        console.print(_summary_tables(summary))
    if not summary.complete:
        missing = len(summary.failed) + len(summary.not_run)
        why = escape(summary.stopped or "given up after repeated failed batches")
        err_console.print(f"[red]error:[/red] {missing} of {summary.tasks} task(s) were not done ({why}); the "
                          f"{len(summary.done)} done are kept", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach `mercato map` to the main app."""
    app.command("map")(clean_errors(ValueError)(map_command))
