"""The settlement plane from Python: web3 client, typed Market wrapper, fake, devnet.

    >>> from mercato.chain import FakeLedger, MarketApi
    >>> isinstance(FakeLedger().client("0x" + "01" * 32), MarketApi)
    True

Upper layers depend on :class:`MarketApi`; ``MarketClient`` talks to a node,
``FakeMarket`` keeps everything in memory with the same semantics and errors.
"""

from mercato.chain.api import (
    DealTx,
    Event,
    LaneState,
    MarketApi,
    PendingWithdrawal,
    ProviderInfo,
    Reputation,
    Tx,
)
from mercato.chain.deployment import Deployment, DevnetParams, dev_accounts
from mercato.chain.devnet import Devnet, DevnetStatus, increase_time
from mercato.chain.eip712 import recover_acceptance, recover_bid, sign_acceptance, sign_bid
from mercato.chain.fake import FakeLedger, FakeMarket
from mercato.chain.market import MAX_BATCH, MarketClient
from mercato.chain.reverts import REVERTS, error_for
from mercato.chain.rpc import TxSender, connect

__all__ = [
    "DealTx",
    "Deployment",
    "Devnet",
    "DevnetParams",
    "DevnetStatus",
    "Event",
    "FakeLedger",
    "FakeMarket",
    "LaneState",
    "MAX_BATCH",
    "MarketApi",
    "MarketClient",
    "PendingWithdrawal",
    "ProviderInfo",
    "REVERTS",
    "Reputation",
    "Tx",
    "TxSender",
    "connect",
    "dev_accounts",
    "error_for",
    "increase_time",
    "recover_acceptance",
    "recover_bid",
    "sign_acceptance",
    "sign_bid",
]
