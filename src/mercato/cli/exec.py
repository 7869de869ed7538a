"""`mercato exec WORKLOAD [ARGS]...`: run a workload locally through the provider's code path.

    mercato exec examples/wasm/montecarlo.wasm 1000000 7
    mercato exec examples/python/numeric.py --json --out results/
    mercato exec examples/wasm/hashchain.wasm /input/data.bin 1000 --input data.bin

The workload and inputs go into a content-addressed blob store, a `JobSpec` is built, and
the same `Runtime.run` a provider calls executes it. The module cache lives in
`$MERCATO_CACHE`, else `~/.cache/mercato`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits, Receipt, seed_from_text
from mercato.errors import MercatoError

CACHE_ENV = "MERCATO_CACHE"
_err = Console(stderr=True)


def cache_dir_from_env() -> Path:
    """`$MERCATO_CACHE`, else `~/.cache/mercato` (the only place this is read)."""
    given = os.environ.get(CACHE_ENV)
    return Path(given).expanduser() if given else Path.home() / ".cache" / "mercato"


def _runtime_for_path(path: Path, given: str | None) -> str:
    if given:
        return given
    if path.suffix == ".py":
        return "python"
    if path.suffix == ".wasm":
        return "wasm"
    raise typer.BadParameter(f"cannot tell the runtime of {path.name}; pass --runtime wasm|python")


def execute_local(
    workload: Path,
    args: list[str],
    inputs: list[Path],
    *,
    runtime: str | None,
    limits: Limits,
    seed: bytes,
    env: list[tuple[str, str]],
    cache_dir: Path,
    out_dir: Path | None,
    progress: object = None,
) -> Receipt:
    """Build a spec for local files and run it exactly as a provider would."""
    from mercato.runtimes import BlobStore, Workspace, runtime_for

    name = _runtime_for_path(workload, runtime)
    with tempfile.TemporaryDirectory(prefix="mercato-exec-") as tmp:
        blobs = BlobStore(Path(tmp) / "blobs")
        workload_ref = blobs.put_file(workload)
        pairs = tuple(sorted((p.name, blobs.put_file(p)) for p in inputs))
        spec = JobSpec(
            runtime=name,
            workload=workload_ref,
            args=tuple(args),
            env=tuple(sorted(env)),
            inputs=pairs,
            limits=limits,
            seed=seed,
        )
        rt = runtime_for(name, blobs, cache_dir=cache_dir, progress=progress)  # type: ignore[arg-type]
        ws = Workspace.create(tmp)
        receipt = rt.run(spec, ws)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            for o in receipt.outputs:
                dest = out_dir / o.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ws.output_dir / o.path, dest)
        ws.remove()
        return receipt


def _print_receipt(receipt: Receipt) -> None:
    console = Console()
    table = Table(title="receipt", show_header=False)
    table.add_row("outcome", f"[bold]{receipt.outcome.value}[/bold]")
    table.add_row("exit code", "-" if receipt.exit_code is None else str(receipt.exit_code))
    table.add_row("fuel used", f"{receipt.fuel_used:,} ({receipt.cu_used} CU at {FUEL_PER_CU:,} fuel/CU)")
    table.add_row("result root", receipt.result_root)
    for o in receipt.outputs:
        table.add_row(f"/output/{o.path}", f"{o.size} B  sha256:{o.sha256}")
    t = receipt.timings
    table.add_row("timings", f"compile {t.compile_ms:.1f} ms · run {t.run_ms:.1f} ms · wall {t.wall_ms:.1f} ms")
    if receipt.message:
        table.add_row("note", receipt.message)
    if receipt.stdout:
        console.print(receipt.stdout.decode("utf-8", "replace"), end="", markup=False, highlight=False)
    if receipt.stderr:
        _err.print(receipt.stderr.decode("utf-8", "replace"), end="", markup=False, highlight=False)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach the `exec` command to the main app."""

    @app.command("exec")
    def exec_(
        workload: Annotated[Path, typer.Argument(help="a .wasm module or a .py script", exists=True, dir_okay=False)],
        args: Annotated[list[str] | None, typer.Argument(help="arguments passed to the workload")] = None,
        input_: Annotated[list[Path] | None, typer.Option("--input", "-i", help="input file, seen at /input/<name> (repeatable)", exists=True, dir_okay=False)] = None,
        fuel: Annotated[int, typer.Option(help="fuel cap (1 CU = 10^9 fuel)")] = Limits().fuel,
        memory: Annotated[int, typer.Option(help="memory cap in MiB")] = Limits().memory_bytes >> 20,
        timeout: Annotated[float, typer.Option(help="wall-clock cap in seconds")] = Limits().wall_clock_s,
        seed: Annotated[str | None, typer.Option(help="job seed: 64 hex chars, or any text (hashed)")] = None,
        env: Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for the guest (repeatable)")] = None,
        runtime: Annotated[str | None, typer.Option(help="wasm or python (default: from the file extension)")] = None,
        out: Annotated[Path | None, typer.Option("--out", help="copy the outputs into this folder")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the receipt as JSON")] = False,
    ) -> None:
        """Run a workload in the deterministic sandbox and print its receipt."""
        try:
            pairs = []
            for item in env or []:
                name, sep, value = item.partition("=")
                if not sep:
                    raise typer.BadParameter(f"--env wants NAME=VALUE, got {item!r}")
                pairs.append((name, value))
            limits = Limits(fuel=fuel, memory_bytes=memory << 20, wall_clock_s=timeout)
            receipt = execute_local(
                workload,
                list(args or []),
                list(input_ or []),
                runtime=runtime,
                limits=limits,
                seed=seed_from_text(seed),
                env=pairs,
                cache_dir=cache_dir_from_env(),
                out_dir=out,
                progress=lambda line: _err.print(f"[dim]{line}[/dim]"),
            )
        except MercatoError as e:
            _err.print(f"error: {e}", markup=False, highlight=False)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(receipt.to_json(), sort_keys=True))
        else:
            _print_receipt(receipt)
