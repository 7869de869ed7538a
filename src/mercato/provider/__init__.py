"""mercato.provider: the provider agent — HTTP API, bid engine, executor, store, chain watcher.

    cfg = ProviderConfig.load(Path("provider.toml"))
    agent = ProviderAgent(cfg, market, events=LogEventSource(market, start_block=dep.block))
    uvicorn.run(create_app(agent), host=cfg.host, port=cfg.port)

``mercato provider start --config provider.toml`` does exactly this.
"""

from mercato.provider.agent import ProviderAgent, resources_of
from mercato.provider.app import create_app
from mercato.provider.config import BEHAVIOURS, PricingConfig, ProviderConfig
from mercato.provider.pricing import PricingStrategy, ScriptPricing, UtilizationPricing, strategy_for
from mercato.provider.store import DealRecord, Store
from mercato.provider.watcher import ChainEvent, EventSource, LogEventSource

__all__ = [
    "BEHAVIOURS",
    "ChainEvent",
    "DealRecord",
    "EventSource",
    "LogEventSource",
    "PricingConfig",
    "PricingStrategy",
    "ProviderAgent",
    "ProviderConfig",
    "ScriptPricing",
    "Store",
    "UtilizationPricing",
    "create_app",
    "resources_of",
    "strategy_for",
]
