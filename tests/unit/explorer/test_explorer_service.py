"""The explorer's edges without a chain: a dead RPC node, what a provider's /v1/info adds."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from mercato.chain import Deployment, DevnetParams
from mercato.errors import MercatoError, RpcUnavailable
from mercato.explorer.api import advertised
from mercato.explorer.errors import IndexerRpcError
from mercato.explorer.indexer import Indexer, units_from_status
from mercato.explorer.store import Store
from mercato.verification.lottery import seal_of


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_a_dead_rpc_node_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    dep = Deployment(31337, url, "0x" + "11" * 20, "0x" + "22" * 20, 0, DevnetParams(), abi={"market": []})
    with pytest.raises(IndexerRpcError) as err:
        Indexer.from_deployment(dep, Store(tmp_path / "x.sqlite"))
    assert isinstance(err.value, RpcUnavailable) and isinstance(err.value, MercatoError)
    assert url in str(err.value)


def test_gpus_are_shown_when_the_advertised_capacity_matches_the_registry() -> None:
    res = {"lanes": 2, "runtimes": ["container"], "gpus": [{"model": "H100", "memory_mb": 81559}] * 2}
    digest = "0x" + hashlib.sha256(json.dumps(res, sort_keys=True).encode()).hexdigest()
    info = {"price_per_cu": 90, "gpus": res["gpus"], "resources": res}
    assert advertised(info, digest) == {"price_per_cu": 90, "resources_verified": True, "gpus": res["gpus"]}
    lying = advertised(info, "0x" + "00" * 32)
    assert lying["resources_verified"] is False and lying["gpus"] is None
    assert advertised({"price_per_cu": 5}, digest) == {"price_per_cu": 5, "gpus": None}
    assert advertised({"price_per_cu": 5, "gpus": []}, digest)["gpus"] == []


def test_receipt_units_count_only_when_they_open_the_seal() -> None:
    provider, deal_id = "0x" + "AB" * 20, b"\x07" * 32
    root, salt, fuel = b"\x0a" * 32, b"\x5a" * 32, 2_500_000_001
    deal = {"deal_id": "0x" + deal_id.hex(), "provider": provider,
            "seal": "0x" + seal_of(provider, deal_id, root, fuel, salt).hex()}
    status = {"receipt": {"fuel_used": fuel, "result_root": root.hex()}, "salt": "0x" + salt.hex()}
    assert units_from_status(deal, status) == (fuel, 3, "cu", "receipt")  # 2.5e9 fuel -> 3 CU, rounded up
    lie = {"receipt": {"fuel_used": fuel - 10**9, "result_root": root.hex()}, "salt": "0x" + salt.hex()}
    assert units_from_status(deal, lie) is None  # a cheaper-looking fuel count does not open the seal
    assert units_from_status(deal, {"receipt": None, "salt": None}) is None
    box = {"receipt": status["receipt"] | {"resource_seconds": {"vcpu_s": 12.2, "gib_s": 3.0, "gpu_s": 0.0}},
           "salt": status["salt"]}
    assert units_from_status(deal, box) == (fuel, 13, "vcpu_s", "receipt")
