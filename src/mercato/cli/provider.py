"""`mercato provider …`: run a provider agent against the deployed Market, and manage its money.

    mercato provider start --config examples/provider.toml
    mercato provider status --config examples/provider.toml
    mercato provider money --config examples/provider.toml            # stake, earnings, reputation
    mercato provider claim --config examples/provider.toml            # earnings to the wallet
    mercato provider unbond 100 --config examples/provider.toml       # free stake out, after a delay
    mercato provider withdraw-stake --config examples/provider.toml   # ... once the delay is over

The chain comes from the usual settings (MERCATO_HOME, MERCATO_DEPLOYMENT, MERCATO_RPC_URL, …);
everything about the agent from its TOML file. Ctrl-C or SIGTERM stop it cleanly: uvicorn
finishes the open requests and the agent's state is already on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mercato.config import Settings
from mercato.cli._errors import clean_errors, err_console

app = typer.Typer(help="Run a provider agent: bid on jobs, run them, get paid.", no_args_is_help=True)
console = Console()

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The provider's TOML file (see examples/provider.toml).")]
SettingsOption = Annotated[Path | None, typer.Option("--settings", help="A TOML file of chain settings.")]
PortOption = Annotated[int | None, typer.Option("--port", help="Listen on this port instead of the config's.")]




def _connect_waiting(url: str, settings: Settings, chain_id: int, wait_s: float) -> Any:
    """A Web3 on ``url``, waiting up to ``wait_s`` seconds (back-off 1 s → 30 s, logged) for a node
    that does not answer yet: an agent restarted during an RPC outage waits for the node instead
    of exiting. A node serving another chain fails at once."""
    import logging
    import time

    from mercato.chain import connect
    from mercato.errors import ConfigError, RpcUnavailable

    log = logging.getLogger("mercato.provider")
    end, delay = time.monotonic() + wait_s, 1.0
    while True:
        try:
            w3 = connect(url, settings.retry, settings.rpc_timeout)
            break
        except RpcUnavailable as exc:
            left = end - time.monotonic()
            if left <= 0:
                raise RpcUnavailable(f"{exc} (waited {wait_s:.0f} s; raise --rpc-wait to wait longer)") from None
            log.warning("RPC node does not answer yet; waiting", extra={"rpc_url": url, "retry_in_s": delay})
            time.sleep(min(delay, left))
            delay = min(delay * 2, 30.0)
    actual = w3.eth.chain_id
    if actual != chain_id:
        raise ConfigError(f"RPC node at {url} serves chain {actual}, but the deployment is on chain {chain_id}: "
                          "check MERCATO_RPC_URL / the deployment file")
    return w3


@app.command()
@clean_errors()
def start(config: ConfigOption, settings_file: SettingsOption = None, port: PortOption = None,
          log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
          rpc_wait: Annotated[float, typer.Option("--rpc-wait", help="Seconds to wait for an RPC node that does "
                                                  "not answer at start-up.")] = 600.0) -> None:
    """Register, stake and serve the provider API until Ctrl-C / SIGTERM."""
    import uvicorn

    from mercato.chain import Deployment
    from mercato.domain.sealing import BoxKey
    from mercato.provider import LogEventSource, ProviderAgent, ProviderConfig, create_app
    from mercato.provider.watcher import FRESH_LOOKBACK_BLOCKS
    from mercato.provider.chainio import wall_clock_floor
    from mercato.provider.logs import configure_logging

    settings = Settings.load(settings_file, os.environ)
    cfg = ProviderConfig.load(config)
    if port is not None:
        cfg = cfg.with_(port=port)
    dep = Deployment.load(settings.deployment_path)
    configure_logging(log_level)
    w3 = _connect_waiting(_rpc_url(settings, dep), settings, dep.chain_id, rpc_wait)
    key, client = _own_client(settings, dep, cfg.account, config, w3)
    _preflight(client, w3, cfg.stake, config)
    events = LogEventSource(client, start_block=dep.block, lookback_blocks=FRESH_LOOKBACK_BLOCKS)
    agent = ProviderAgent(cfg, client, events=events,
                          clock=wall_clock_floor(client), box_key=BoxKey.derive(key))
    server = uvicorn.Server(uvicorn.Config(create_app(agent), host=cfg.host, port=cfg.port, log_config=None,
                                           access_log=False, lifespan="on"))
    server.run()


def _preflight(client: Any, w3: Any, stake: int, config: Path) -> None:
    """The two most common start-up failures, as one line each before anything is sent: an account
    with no gas, and a `stake` the wallet cannot top up to (the agent stakes up to it at start)."""
    from mercato.errors import ConfigError
    from mercato.requester.money import format_musd

    try:
        gas, staked, wallet = w3.eth.get_balance(client.address), client.provider_info().stake, client.token_balance()
    except Exception:  # noqa: BLE001 - the node is out right now: the agent's start-up waits for it (--rpc-wait)
        return
    if gas == 0:
        raise ConfigError(f"the provider's account {client.address} holds no native token to pay gas with: "
                          "fund it first")
    missing = max(0, stake - staked)
    if missing > wallet:
        raise ConfigError(f"`stake` in {config} asks {format_musd(missing)} mUSD more than the account "
                          f"{client.address} has staked, but its wallet holds {format_musd(wallet)} mUSD: lower "
                          "`stake` or fund the account")


@app.command()
@clean_errors()
def status(config: ConfigOption, port: PortOption = None) -> None:
    """Ask a running agent for its info and deal counts."""
    import httpx

    from mercato.provider import ProviderConfig

    cfg = ProviderConfig.load(config)
    if port is not None:
        cfg = cfg.with_(port=port)
    url = cfg.endpoint or f"http://{cfg.host}:{cfg.port}"
    try:
        info = httpx.get(f"{url}/v1/info", timeout=5).json()
    except httpx.HTTPError:
        err_console.print(f"[red]no provider answers at {escape(url)}[/red]: start it with "
                          f"`mercato provider start --config {escape(str(config))}`", soft_wrap=True)
        raise typer.Exit(1) from None
    table = Table.grid(padding=(0, 2))
    for key, value in info.items():
        table.add_row(escape(key), escape(str(value)))
    console.print(table)


# money: what the provider holds on-chain, and moving it -----------------------------------------
def _rpc_url(settings: Settings, dep: Any) -> str:
    """MERCATO_RPC_URL when set, else the node the deployment file names."""
    return settings.rpc_url if "MERCATO_RPC_URL" in os.environ else dep.rpc_url


def _own_client(settings: Settings, dep: Any, account: str, config: Path, w3: Any) -> tuple[Any, Any]:
    """The provider's key (its config's account: a dev name, keystore:NAME, …) and its market client."""
    from mercato.chain import MarketClient
    from mercato.chain.keys import Unlocker

    key = dep.key_of(account, unlock=Unlocker.from_settings(settings), origin=config)
    return key, MarketClient.from_deployment(w3, dep, key, gas_margin=settings.gas_margin,
                                             timeout=settings.tx_timeout, ledger=settings.home / "txs")


def _client(config: Path, settings_file: Path | None) -> Any:
    """The provider's own market client, from its config's account and the usual chain settings."""
    from mercato.chain import Deployment, connect
    from mercato.provider import ProviderConfig

    settings = Settings.load(settings_file, os.environ)
    dep = Deployment.load(settings.deployment_path)
    return _own_client(settings, dep, ProviderConfig.load(config).account, config,
                       connect(_rpc_url(settings, dep), settings.retry))[1]


def _musd(units: int) -> str:
    from mercato.requester.money import format_musd

    return f"{format_musd(units)} mUSD"


@app.command()
@clean_errors()
def money(config: ConfigOption, settings_file: SettingsOption = None) -> None:
    """Show the provider's stake (free, locked, unbonding), claimable earnings and reputation."""
    import datetime as dt

    client = _client(config, settings_file)
    info, rep = client.provider_info(), client.reputation()
    table = Table.grid(padding=(0, 2))
    table.add_row("account", client.address)
    table.add_row("registered", "yes" if info.registered else "no (mercato provider start registers it)")
    table.add_row("stake", f"{_musd(info.stake)} ({_musd(info.stake - info.locked)} free, "
                           f"{_musd(info.locked)} locked by open deals)")
    if info.unbonding:
        when = dt.datetime.fromtimestamp(info.unbond_ready_at).isoformat(sep=" ", timespec="seconds")
        table.add_row("unbonding", f"{_musd(info.unbonding)}, withdrawable from {when} (chain time)")
    table.add_row("earnings", f"{_musd(info.earnings)} claimable (`mercato provider claim`)")
    table.add_row("reputation", f"{rep.completed} jobs completed, {rep.missed} missed, slashed {rep.slashed} "
                                f"times, {_musd(rep.volume)} earned in all")
    if client.jailed():
        table.add_row("[red]jailed[/red]", "proven wrong by an audit: its stake was forfeited for good")
    console.print(table)


@app.command()
@clean_errors()
def claim(config: ConfigOption, settings_file: SettingsOption = None) -> None:
    """Move the provider's earnings to its wallet."""
    client = _client(config, settings_file)
    amount = client.provider_info().earnings
    if amount == 0:
        console.print("nothing to claim: no earnings since the last claim")
        return
    tx = client.claim_earnings()
    console.print(f"[green]claimed[/green] {_musd(amount)} (tx 0x{bytes(tx.tx_hash).hex()})")


@app.command()
@clean_errors(ValueError)
def unbond(amount: Annotated[str, typer.Argument(help="mUSD of free stake to unbond, e.g. 100")],
           config: ConfigOption, settings_file: SettingsOption = None) -> None:
    """Start taking free stake out; `mercato provider withdraw-stake` completes it after the unbonding delay.
    A running agent tops its stake back up to its config's `stake` at start: lower that first."""
    import datetime as dt

    from mercato.requester.money import parse_musd

    units = parse_musd(amount, what="AMOUNT")
    client = _client(config, settings_file)
    client.unbond(units)
    info = client.provider_info()
    when = dt.datetime.fromtimestamp(info.unbond_ready_at).isoformat(sep=" ", timespec="seconds")
    console.print(f"[green]unbonding[/green] {_musd(info.unbonding)} in all; withdrawable from {when} (chain time); "
                  f"stake left {_musd(info.stake)}")


@app.command("withdraw-stake")
@clean_errors()
def withdraw_stake(config: ConfigOption, settings_file: SettingsOption = None) -> None:
    """Move unbonded stake whose delay is over to the provider's wallet."""
    client = _client(config, settings_file)
    amount = client.provider_info().unbonding
    tx = client.withdraw_stake()
    console.print(f"[green]withdrew[/green] {_musd(amount)} of stake (tx 0x{bytes(tx.tx_hash).hex()})")
