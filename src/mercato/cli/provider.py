"""`mercato provider start|status`: run a provider agent against the deployed Market.

    mercato provider start --config examples/provider.toml
    mercato provider status --config examples/provider.toml

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

    from mercato.chain import Deployment, MarketClient
    from mercato.chain.keys import Unlocker
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
    rpc_url = settings.rpc_url if "MERCATO_RPC_URL" in os.environ else dep.rpc_url
    configure_logging(log_level)
    w3 = _connect_waiting(rpc_url, settings, dep.chain_id, rpc_wait)
    key = dep.key_of(cfg.account, unlock=Unlocker.from_settings(settings), origin=config)  # keystore:NAME too
    client = MarketClient.from_deployment(w3, dep, key, gas_margin=settings.gas_margin,
                                          timeout=settings.tx_timeout, ledger=settings.home / "txs")
    events = LogEventSource(client, start_block=dep.block, lookback_blocks=FRESH_LOOKBACK_BLOCKS)
    agent = ProviderAgent(cfg, client, events=events,
                          clock=wall_clock_floor(client), box_key=BoxKey.derive(key))
    server = uvicorn.Server(uvicorn.Config(create_app(agent), host=cfg.host, port=cfg.port, log_config=None,
                                           access_log=False, lifespan="on"))
    server.run()


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
