"""`mercato deposit|withdraw|balance|run|jobs|providers`: the requester's commands.

    mercato deposit 100            # mUSD from your wallet into escrow
    mercato run examples/job.toml  # live bids -> winner -> running -> committed -> sealed -> paid
    mercato jobs                   # the local history, with what the chain says of each result
    mercato providers              # the on-chain registry

Amounts are mUSD as decimal text ("12.5"), converted exactly to base units (6 decimals).

A result is shown *sealed* when it matches the seal its provider committed on-chain, *audited* only
once an independent auditor re-executed it and agreed, *unaudited* when its audit passed by
default (nobody answered), *proven wrong* or *void* (docs/SPEC.md §14.9).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from mercato.config import Settings
from mercato.cli._errors import clean_errors
from mercato.requester import (
    Accepted,
    AuditorsShort,
    BidsCollected,
    BidsRetried,
    Committed,
    Event,
    JobHistory,
    JobRequest,
    JobResult,
    Market,
    Paid,
    Running,
    SyncMarket,
    Verdict,
    Verified,
    VerificationStatus,
    WinnerChosen,
    format_musd,
    load_job_toml,
    parse_musd,
    run_redundant,
)
from mercato.requester.history import RESULT_STATES, JobRecord, known_state
from mercato.requester.trust import describe

console = Console()
ConfigOption = Annotated[Path | None, typer.Option("--config", help="A TOML settings file.")]
AccountOption = Annotated[str | None, typer.Option("--account", help="keystore:NAME, a dev account name, or (devnet only) a 0x private key.")]




def _settings(config: Path | None, account: str | None) -> Settings:
    settings = Settings.load(config, os.environ)
    if "MERCATO_RPC_URL" not in os.environ:  # then the deployment file knows where its node is
        settings = settings.with_(rpc_url="")
    return settings.with_(account=account) if account else settings


def _musd(amount: int) -> str:
    return f"{format_musd(amount)} mUSD"


def _tx(tx_hash: bytes | str | None) -> str:
    if tx_hash is None:
        return "-"
    return tx_hash if isinstance(tx_hash, str) else "0x" + tx_hash.hex()


def deposit(amount: Annotated[str, typer.Argument(help="mUSD, e.g. 12.5")], config: ConfigOption = None,
            account: AccountOption = None) -> None:
    """Move mUSD from your wallet into your escrow balance (what jobs are paid from)."""
    units = parse_musd(amount, what="AMOUNT")
    market = SyncMarket.connect(_settings(config, account))
    tx = market.deposit(units)
    bal = market.balance()
    console.print(f"[green]deposited[/green] {_musd(units)}; escrow balance {_musd(bal.available)} (tx {_tx(tx.tx_hash)})")


def withdraw(amount: Annotated[str | None, typer.Argument(help="mUSD to withdraw; omit with --complete")] = None,
             wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait out the delay and complete.")] = True,
             complete: Annotated[bool, typer.Option("--complete", help="Complete a pending withdrawal now.")] = False,
             config: ConfigOption = None, account: AccountOption = None) -> None:
    """Request a withdrawal from escrow; it completes after the market's withdrawal delay."""
    market = SyncMarket.connect(_settings(config, account))
    if complete or amount is None:
        tx = market.complete_withdrawal()
        console.print(f"[green]withdrawn[/green]; wallet {_musd(market.balance().wallet)} (tx {_tx(tx.tx_hash)})")
        return
    units = parse_musd(amount, what="AMOUNT")
    if not wait:
        pending = market.request_withdrawal(units)
        when = dt.datetime.fromtimestamp(pending.ready_at).isoformat(sep=" ", timespec="seconds")
        console.print(f"withdrawal of {_musd(pending.amount)} requested; ready at {when} (chain time): "
                      "then run `mercato withdraw --complete`")
        return
    with console.status(f"withdrawing {_musd(units)} (waiting out the withdrawal delay)…"):
        tx = market.withdraw(units, wait=True)
    console.print(f"[green]withdrawn[/green] {_musd(units)}; wallet {_musd(market.balance().wallet)} "
                  f"(tx {_tx(getattr(tx, 'tx_hash', None))})")


def balance(config: ConfigOption = None, account: AccountOption = None) -> None:
    """Show your escrow balance, any pending withdrawal, and your wallet."""
    bal = SyncMarket.connect(_settings(config, account)).balance()
    table = Table.grid(padding=(0, 2))
    table.add_row("escrow (available)", _musd(bal.available))
    if bal.pending:
        when = dt.datetime.fromtimestamp(bal.ready_at).isoformat(sep=" ", timespec="seconds")
        table.add_row("pending withdrawal", f"{_musd(bal.pending)} (ready at {when})")
    table.add_row("wallet", _musd(bal.wallet))
    console.print(table)


class _Progress:
    """The live checklist of one run, fed by Market's progress events."""

    STEPS = ("bids", "winner", "accepted", "running", "committed", "sealed", "paid")

    def __init__(self) -> None:
        self.lines: dict[str, str] = {}
        self.live: Live | None = None
        self.warnings: list[str] = []  # printed once, after the run

    def render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        for step in self.STEPS:
            done = step in self.lines
            table.add_row("[green]✓[/green]" if done else "[dim]·[/dim]", f"[bold]{step}[/bold]" if done else
                          f"[dim]{step}[/dim]", self.lines.get(step, ""))
        return table

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, AuditorsShort):
            self.warnings.append(auditors_warning(ev))
            return
        self.lines.update(self._describe(ev))
        if self.live is not None:
            self.live.update(self.render())

    @staticmethod
    def _describe(ev: Event) -> dict[str, str]:
        if isinstance(ev, BidsCollected):
            return {"bids": f"{ev.compliant} compliant of {ev.bids} answers from {ev.asked} providers "
                            f"in {ev.window_ms:.0f} ms"}
        if isinstance(ev, BidsRetried):
            wait = f" in {ev.pause_s:.1f} s" if ev.pause_s else ""
            return {"bids": f"no compliant bid in {ev.window_ms:.0f} ms ({ev.reason}): asking again{wait} with a "
                            f"{ev.next_window_ms:.0f} ms window (retry {ev.attempt} of {ev.retries})"}
        if isinstance(ev, WinnerChosen):
            runner = f" (next best {_musd(ev.runner_up_price)})" if ev.runner_up_price is not None else ""
            return {"winner": f"{ev.provider} at {ev.endpoint} for {_musd(ev.price)}{runner}"}
        if isinstance(ev, Accepted):
            return {"accepted": f"deal {ev.deal_id[:18]}…, {ev.uploaded_bytes:,} bytes uploaded"}
        if isinstance(ev, Running):
            return {"running": "started " + dt.datetime.fromtimestamp(ev.started_at).strftime("%H:%M:%S.%f")[:-3]}
        if isinstance(ev, Committed):
            return {"committed": f"seal {ev.seal[:18]}… (tx {(ev.commit_tx or '-')[:18]}…)"}
        if isinstance(ev, Verified):
            return {"sealed": f"result matches the provider's on-chain commitment (root {ev.result_root[:16]}…, "
                              f"{ev.outputs} output file(s))"}
        if isinstance(ev, Paid):
            return {"paid": f"{_musd(ev.price)} escrowed in the deal (opened by {ev.opened_by})"}
        return {}


def auditors_warning(ev: AuditorsShort) -> str:
    """The CLI's one line for :class:`AuditorsShort`."""
    return (f"warning: only {ev.available} staked provider(s) besides the provider and you could audit this deal; "
            f"a dispute needs {ev.needed} (a first auditor and a committee of {ev.committee_size}): an audit may "
            "pass by default, with nobody checking the result")


_STYLE = {"sealed": "yellow", "auditing": "cyan", "audited": "green", "unaudited": "yellow",
          "proven_wrong": "bold red", "void": "magenta"}
_TITLE = {"sealed": "job done: result sealed (matches the provider's commitment; not audited)",
          "auditing": "job done: result sealed, audit under way", "audited": "job done: result audited",
          "unaudited": "job done: result unaudited (audit passed by default)",
          "proven_wrong": "job done: result PROVEN WRONG", "void": "job done: result void"}


def _summary(r: JobResult) -> Table:
    title = _TITLE.get(r.verification, f"job done: {r.verification}")
    if r.provider_flagged:
        title += " — provider jailed since: do not trust it"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_row("verification", describe(r.verification, r.provider_flagged))
    table.add_row("provider", f"{r.provider} ({r.endpoint})")
    table.add_row("price", f"{_musd(r.price)} (collateral {_musd(r.collateral)})")
    table.add_row("outcome", f"{r.outcome}, exit code {'-' if r.exit_code is None else r.exit_code}")
    table.add_row("fuel used", f"{r.fuel_used:,}")
    table.add_row("result root", r.result_root)
    table.add_row("deal", r.deal_id)
    table.add_row("open tx", r.open_tx or f"- (opened by the {r.opened_by})")
    for path, data in r.outputs.items():
        table.add_row(f"/output/{path}", f"{len(data):,} B" + (f" -> {r.out_dir / path}" if r.out_dir else ""))
    t = r.timings
    table.add_row("timings", f"ttfb {t.get('ttfb_ms', 0):.0f} ms · bids {t.get('bids_ms', 0):.0f} ms · "
                             f"total {t.get('total_ms', 0):.0f} ms")
    return table


def run(job: Annotated[Path, typer.Argument(help="a job.toml (see examples/job.toml)")],
        out: Annotated[Path | None, typer.Option("--out", help="write the outputs here")] = None,
        max_price: Annotated[str | None, typer.Option("--max-price", help="mUSD cap, overrides the file")] = None,
        bid_window_ms: Annotated[int | None, typer.Option("--bid-window-ms", help="bid window")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
        config: ConfigOption = None, account: AccountOption = None) -> None:
    """Run a job on the market: bids, winner, running, committed, sealed (the result matches the provider's
    on-chain commitment), paid; then waits for the deal's lottery and audit and says what they found."""
    req = load_job_toml(job)
    overrides: dict[str, Any] = {}
    if out is not None:
        overrides["out_dir"] = out
    if max_price is not None:
        overrides["max_price"] = parse_musd(max_price, what="--max-price")
    if bid_window_ms is not None:
        overrides["bid_window"] = bid_window_ms / 1000
    progress = _Progress()
    settings = _settings(config, account)
    if req.redundancy > 1:  # a non-deterministic job bought from k providers (docs/SPEC.md §15.3)
        _run_redundant(settings, dataclasses.replace(req, **overrides), as_json)
        return

    async def go() -> JobResult:
        async with Market.connect(settings, on_event=progress) as m:
            result = await m.run(req, **overrides)
        return await _refreshed(m, result)  # after aclose: the deal's lottery and audit had their time

    if as_json:
        result = asyncio.run(go())
        payload = {k: getattr(result, k) for k in ("deal_id", "provider", "price", "outcome", "exit_code",
                                                    "fuel_used", "result_root", "open_tx", "commit_tx", "timings",
                                                    "verification", "provider_flagged")}
        payload |= {"stdout": result.stdout.decode("utf-8", "replace"), "outputs": sorted(result.outputs),
                    "warnings": progress.warnings}
        typer.echo(json.dumps(payload, sort_keys=True))
        return
    with Live(progress.render(), console=console, refresh_per_second=12) as live:
        progress.live = live
        result = asyncio.run(go())
    if result.stdout:
        console.print(result.stdout.decode("utf-8", "replace"), end="", markup=False, highlight=False)
    console.print(Group(_summary(result)))
    for line in progress.warnings:
        console.print(f"[yellow]{line}[/yellow]")


async def _refreshed(m: Market, result: JobResult) -> JobResult:
    """``result`` with what the chain says now (unchanged when the node cannot be read)."""
    try:
        return result.with_status(await m.verification(result))
    except Exception as exc:  # display only: the result itself is verified against its seal
        console.print(f"[dim]could not read the deal's audit state ({exc}): shown as sealed[/dim]")
        return result


def _run_redundant(settings: Settings, req: JobRequest, as_json: bool) -> None:
    async def go() -> Verdict:
        async with Market.connect(settings) as m:
            return await run_redundant(m, req)

    with console.status(f"running the job on {req.redundancy} providers …"):
        verdict = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps({"rule": verdict.rule, "agreed": verdict.agreed, "message": verdict.message,
                               "groups": [list(g) for g in verdict.groups], "paid": verdict.paid,
                               "chosen": verdict.chosen.deal_id if verdict.chosen else None,
                               "results": [{"deal_id": r.deal_id, "provider": r.provider, "price": r.price,
                                            "result_root": r.result_root} for r in verdict.results]},
                              sort_keys=True))
        return
    if verdict.chosen is not None and verdict.chosen.stdout:
        console.print(verdict.chosen.stdout.decode("utf-8", "replace"), end="", markup=False, highlight=False)
    for result in verdict.results:
        console.print(Group(_summary(result)))
    console.print(verdict.message, markup=False)


def jobs_table(records: list[JobRecord], statuses: dict[str, VerificationStatus] | None = None) -> Table:
    """The ``mercato jobs`` table: each result's state (sealed, audited, unaudited, proven wrong, void;
    a failed job's error), from ``statuses`` (deal id -> what the chain says) where read, else from
    the history; a provider jailed now is marked on every row of it."""
    statuses = {k.lower(): v for k, v in (statuses or {}).items()}
    table = Table(title="jobs")
    for col in ("when", "name", "state", "provider", "mUSD", "ttfb ms", "deal"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("mUSD", "ttfb ms") else "left")
    for r in records:
        when = dt.datetime.fromtimestamp(r.created_at).strftime("%m-%d %H:%M")
        st = statuses.get(r.deal_id.lower()) if r.deal_id else None
        state = known_state(r.state)
        if state in RESULT_STATES:
            state = str(st.state) if st is not None else state
            cell = f"[{_STYLE[state]}]{state}[/{_STYLE[state]}]"
        else:  # the job failed; a challenged deal's audit may have settled it since
            cell = f"[red]{state}[/red]"
            if st is not None and st.state != "sealed":
                cell += f" (audit: {st.state})"
        provider = r.provider[:8] + "…" if r.provider else "-"
        if st is not None and st.provider_flagged:
            cell += " [bold red]⚠ provider jailed[/bold red]"
            provider = f"[bold red]{provider} (jailed)[/bold red]"
        table.add_row(when, r.name, cell, provider, format_musd(r.price) if r.price else "-",
                      f"{r.ttfb_ms:.0f}" if r.ttfb_ms else "-", r.deal_id[:10] + "…" if r.deal_id else "-")
    return table


_JOBS_LEGEND = ("sealed: matches the provider's on-chain commitment, nobody else re-ran it (yet) · audited: an "
                "independent auditor re-ran it and agreed · unaudited: drawn for audit, passed by default (nobody "
                "answered) · proven_wrong: the audit failed, price refunded · void: no majority, refunded")


def jobs(ctx: typer.Context, limit: Annotated[int, typer.Option("--limit", "-n", help="how many")] = 20,
         offline: Annotated[bool, typer.Option("--offline", help="show the local history only, without "
                                               "reading audit outcomes and jailed providers from the chain")] = False,
         config: ConfigOption = None, account: AccountOption = None) -> None:
    """List your recent jobs (kept locally in <home>/requester.sqlite) with what the chain says of each result
    (sealed, audited, unaudited, proven wrong, void; jailed providers marked); `mercato jobs recover` after a
    crash."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings.load(config, os.environ)
    records = JobHistory(settings.home / "requester.sqlite").recent(limit)
    if not records:
        console.print("no jobs yet: try `mercato run examples/job.toml`")
        return
    statuses: dict[str, VerificationStatus] | None = None
    if not offline and any(r.deal_id and r.provider for r in records):
        try:
            statuses = asyncio.run(_read_statuses(_settings(config, account), records))
        except Exception as exc:  # display only: the local history is still worth showing
            console.print(f"[dim]could not read the chain ({exc}): states as last recorded[/dim]")
    console.print(jobs_table(records, statuses))
    console.print(f"[dim]{_JOBS_LEGEND}[/dim]")


async def _read_statuses(settings: Settings, records: list[JobRecord]) -> dict[str, VerificationStatus]:
    """What the chain says now of each job with a deal (the history is updated as it reads)."""
    wanted = {r.deal_id.lower(): r.provider for r in records if r.deal_id and r.provider}
    async with Market.connect(settings, audit_wait_s=0) as m:
        found = await asyncio.gather(*(m.verification(d, p) for d, p in wanted.items()))
    return {s.deal_id.lower(): s for s in found}


def recover(as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
            config: ConfigOption = None, account: AccountOption = None) -> None:
    """After a crash: finish every deal in your journal (reveal seeds, fetch and verify results, reclaim
    missed deals) and show where each stands. Safe to run any number of times."""
    async def go() -> list[Any]:
        async with Market.connect(_settings(config, account), audit_wait_s=0) as m:
            return await m.recover()

    reports = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in reports], sort_keys=True))
        return
    if not reports:
        console.print("the journal holds no deal: nothing to recover")
        return
    table = Table(title="deals in the journal")
    for col in ("deal", "name", "state", "settled", "result", "done now", "note"):
        table.add_column(col, overflow="fold")
    for r in reports:
        table.add_row(r.deal_id[:12] + "…", r.name, r.state, r.settled or "-", "on disk" if r.has_result else "-",
                      ", ".join(r.actions) or "-", r.note)
    console.print(table)
    left = [r for r in reports if not r.done]
    console.print(f"{len(reports) - len(left)} deal(s) closed, {len(left)} still open (run again later)")


def providers(config: ConfigOption = None, account: AccountOption = None) -> None:
    """List the providers registered on-chain: endpoint, stake, free stake, reputation."""
    rows = SyncMarket.connect(_settings(config, account)).providers()
    if not rows:
        console.print("no provider is registered yet: start one with `mercato provider start`")
        return
    table = Table(title="providers")
    for col in ("address", "endpoint", "stake", "free stake", "completed", "missed", "score"):
        table.add_column(col, justify="right" if col not in ("address", "endpoint") else "left", no_wrap=True)
    for p in rows:
        table.add_row(p.address, p.endpoint, format_musd(p.stake), format_musd(p.free_stake), str(p.completed),
                      str(p.missed), f"{p.score:.3f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach the requester commands to the main app."""
    for fn in (deposit, withdraw, balance, run, providers):
        app.command(fn.__name__)(clean_errors(ValueError)(fn))
    jobs_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    jobs_app.callback()(clean_errors(ValueError)(jobs))
    jobs_app.command("recover")(clean_errors(ValueError)(recover))
    app.add_typer(jobs_app, name="jobs")
