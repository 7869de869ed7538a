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
from mercato.explorer.indexer import Indexer
from mercato.explorer.store import Store


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
