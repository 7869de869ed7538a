"""`mercato explorer` and `mercato market price`: the market's dashboard and its price index.

    mercato explorer                       # index the devnet's Market and serve http://127.0.0.1:8600
    mercato explorer --port 9000 --db idx.sqlite --confirmations 3
    mercato market price                   # VWAP 1 h / 24 h and the latest clearing prices
    mercato market price --json

Both find the Market the way the other commands do (the deployment file of the selected
chain, ``MERCATO_DEPLOYMENT``/``MERCATO_HOME``); ``--rpc`` and ``--market`` override the node
and the contract address. The index lives in ``<home>/explorer-<chain id>.sqlite`` unless
``--db`` says otherwise; `mercato market price` brings it up to date before printing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mercato.chain import Deployment, DevnetParams
from mercato.chain.artifacts import load_artifacts
from mercato.cli._errors import clean_errors
from mercato.config import Settings
from mercato.errors import DeploymentNotFound
from mercato.explorer.indexer import Indexer
from mercato.explorer.service import Explorer
from mercato.explorer.store import Store
from mercato.explorer.views import Views

__all__ = ["register", "market_app"]

console = Console()
market_app = typer.Typer(help="Market-wide figures from the indexed chain.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="A TOML settings file.")]
RpcOption = Annotated[str | None, typer.Option("--rpc", help="RPC URL of the node (default: the deployment's).")]
MarketOption = Annotated[str | None, typer.Option("--market", help="Market contract address (default: the deployment's).")]
DbOption = Annotated[Path | None, typer.Option("--db", help="SQLite index file (default: <home>/explorer-<chain>.sqlite).")]
ConfirmOption = Annotated[int, typer.Option("--confirmations", min=0, help="Index only up to head minus this many blocks.")]
FromOption = Annotated[int | None, typer.Option("--from-block", min=0,
                                                help="First block to index (default: the deployment's; a new index only).")]


def _deployment(config: Path | None, rpc: str | None, market: str | None) -> tuple[Deployment, Settings, str | None]:
    """The deployment to follow, the settings, and the RPC URL to use (None: the deployment's)."""
    settings = Settings.load(config, os.environ)
    try:
        dep = Deployment.load(settings.deployment_path)
    except DeploymentNotFound:
        if not market:
            raise
        arts = load_artifacts(settings.artifacts_dir)  # same contracts, another address; its court is asked
        abi = {"market": arts["market"].abi, "court": arts["court"].abi}
        dep = Deployment(settings.chain_id, rpc or settings.rpc_url, "", market, 0, DevnetParams(), abi=abi)
    if rpc is None and "MERCATO_RPC_URL" in os.environ:
        rpc = settings.rpc_url
    return dep, settings, rpc


def _db_path(settings: Settings, dep: Deployment, db: Path | None) -> Path:
    return db or settings.home / f"explorer-{dep.chain_id}.sqlite"


def explorer(rpc: RpcOption = None, market: MarketOption = None, db: DbOption = None,
             host: Annotated[str, typer.Option("--host", help="Interface to serve on.")] = "127.0.0.1",
             port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8600,
             confirmations: ConfirmOption = 0, from_block: FromOption = None, config: ConfigOption = None) -> None:
    """Index the Market's events into SQLite and serve a read-only dashboard with a JSON API."""
    dep, settings, rpc = _deployment(config, rpc, market)
    extra = {} if from_block is None else {"start_block": from_block}
    ex = Explorer.for_deployment(dep, _db_path(settings, dep, db), rpc_url=rpc, market=market,
                                 confirmations=confirmations, host=host, port=port, **extra)
    console.print(f"Mercato explorer on [bold]{ex.url}[/bold] (API {ex.url}/docs) · chain {ex.indexer.chain_id} · "
                  f"Market {ex.indexer.market} · index {ex.indexer.store.path}")
    ex.serve_forever()


@market_app.command("price")
@clean_errors()
def price(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
          unit: Annotated[str, typer.Option("--unit", help="cu (compute units) or vcpu_s (containers).")] = "cu",
          limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent deals to list.")] = 10,
          rpc: RpcOption = None, market: MarketOption = None, db: DbOption = None,
          confirmations: ConfirmOption = 0, from_block: FromOption = None, config: ConfigOption = None) -> None:
    """The price index: VWAP per unit over 1 h and 24 h and the latest clearing prices."""
    dep, settings, rpc = _deployment(config, rpc, market)
    extra = {} if from_block is None else {"start_block": from_block}
    store = Store(_db_path(settings, dep, db))
    try:
        ix = Indexer.from_deployment(dep, store, rpc_url=rpc, market=market, confirmations=confirmations, **extra)
        ix.sync()
        ix.enrich(limit=200)
        data = Views(store).prices(unit=unit, since_s=10**10)
    finally:
        store.close()
    if as_json:
        out = {k: data[k] for k in ("unit", "now", "vwap", "vwap_exact", "last")}
        out["points"] = data["points"][-limit:]
        typer.echo(json.dumps(out, sort_keys=True))
        return
    label = "mUSD/CU" if unit == "cu" else "mUSD/vCPU-s"
    head = Table(title=f"price index ({label})", show_header=False, title_justify="left")
    for name, value in data["vwap"].items():
        head.add_row(f"VWAP {name}", "-" if value is None else f"{value / 10**6:.6f}")
    head.add_row("last", "-" if data["last"] is None else f"{data['last'] / 10**6:.6f}")
    console.print(head)
    pts = data["points"][-limit:]
    if not pts:
        console.print("no cleared deal with known work units yet")
        return
    table = Table(title="latest cleared deals")
    for col in ("when (chain time)", "deal", "price mUSD", "units", label):
        table.add_column(col, justify="left" if col in ("deal", "when (chain time)") else "right", no_wrap=True)
    for p in reversed(pts):
        table.add_row(dt.datetime.fromtimestamp(p["at"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                      p["deal_id"][:18] + "…", f"{p['price'] / 10**6:.6f}", str(p["units"]),
                      f"{p['per_unit'] / 10**6:.6f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach `mercato explorer` and `mercato market …` to the main app."""
    app.command("explorer")(clean_errors()(explorer))
    app.add_typer(market_app, name="market")
