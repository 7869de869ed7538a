"""`mercato devnet start|stop|status|reset`: the local anvil with the Market deployed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mercato.chain import Devnet, DevnetStatus
from mercato.chain.rpc import RetryingProvider
from mercato.config import RetryPolicy, Settings
from mercato.cli._errors import clean_errors

app = typer.Typer(help="Run the local anvil devnet with the Market deployed.", no_args_is_help=True)
console = Console()

PortOption = Annotated[int | None, typer.Option("--port", help="Port for anvil (default 8545 or MERCATO_DEVNET_PORT).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="A TOML settings file.")]




def _devnet(config: Path | None, port: int | None) -> Devnet:
    settings = Settings.load(config, os.environ)
    if port is not None:
        settings = settings.with_(devnet_port=port)
    return Devnet(settings)


@app.command()
@clean_errors()
def start(port: PortOption = None, config: ConfigOption = None) -> None:
    """Start anvil (state kept in <home>/devnet), deploy and fund on first start."""
    net = _devnet(config, port)
    was_running = net.pid() is not None
    with console.status("starting anvil and deploying the Market…"):
        status = net.start()
    console.print("[yellow]already running[/yellow]" if was_running else "[green]devnet started[/green]")
    _show(net, status)


@app.command()
@clean_errors()
def stop(port: PortOption = None, config: ConfigOption = None) -> None:
    """Stop anvil; its state is written to disk and kept for the next start."""
    net = _devnet(config, port)
    if net.stop():
        console.print(f"[green]devnet stopped[/green]; state kept in {escape(str(net.state_file))}")
    else:
        console.print("devnet was not running")


@app.command()
@clean_errors()
def status(port: PortOption = None, config: ConfigOption = None) -> None:
    """Show the RPC URL, chain, block, contract addresses and funded accounts."""
    net = _devnet(config, port)
    st = net.status()
    if not st.running:
        console.print(f"[red]devnet is not running[/red] (expected at {escape(st.rpc_url)}): "
                      "run `mercato devnet start`",
                      soft_wrap=True)
        raise typer.Exit(1)
    _show(net, st)


@app.command()
@clean_errors()
def reset(port: PortOption = None, config: ConfigOption = None,
          yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Wipe the devnet state and deployment, then start fresh and redeploy."""
    if not yes:
        typer.confirm("This deletes every balance and deal on the devnet. Continue?", abort=True)
    net = _devnet(config, port)
    with console.status("resetting the devnet…"):
        st = net.reset()
    console.print("[green]devnet reset[/green]")
    _show(net, st)


def _show(net: Devnet, st: DevnetStatus) -> None:
    info = Table.grid(padding=(0, 2))
    info.add_row("rpc url", st.rpc_url)
    info.add_row("chain id", str(st.chain_id))
    info.add_row("block", str(st.block))
    info.add_row("pid", str(st.pid))
    info.add_row("state file", str(net.state_file))
    dep = st.deployment
    if dep is not None:
        info.add_row("token", dep.token)
        info.add_row("market", dep.market)
        info.add_row("court", dep.court or "(ask the market)")
        info.add_row("deployment", str(net.settings.deployment_path))
    console.print(info)
    if dep is None or not st.running:
        return
    from web3 import Web3

    w3 = Web3(RetryingProvider(st.rpc_url, RetryPolicy(attempts=2)))
    token = w3.eth.contract(address=dep.token, abi=dep.abi["token"])
    market = w3.eth.contract(address=dep.market, abi=dep.abi["market"])
    table = Table(title="dev accounts")
    for col in ("name", "address", "mUSD", "escrow", "ETH"):
        table.add_column(col, justify="left" if col in ("name", "address") else "right", no_wrap=True)
    for name, address in dep.accounts.items():
        table.add_row(name, address, _units(token.functions.balanceOf(address).call(), 6),
                      _units(market.functions.balance_of(address).call(), 6),
                      f"{w3.eth.get_balance(address) / 10**18:,.4f}")  # type: ignore[arg-type]  # display only
    console.print(table)


def _units(amount: int, decimals: int) -> str:
    whole, frac = divmod(amount, 10**decimals)
    return f"{whole:,}" + (f".{frac:0{decimals}d}".rstrip("0") if frac else "")
