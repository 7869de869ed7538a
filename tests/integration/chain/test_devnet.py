"""The devnet launcher: idempotent start, state kept across stop/start, reset, dead RPC."""

from __future__ import annotations

from eth_utils import keccak

import time
from pathlib import Path

import pytest
from chain_kit import devnet_settings, free_port

from mercato.chain import Devnet, MarketClient, connect
from mercato.chain.artifacts import load_artifacts
from mercato.chain.rpc import RetryingProvider
from mercato.config import RetryPolicy
from mercato.domain.deals import Terms, job_leaf
from mercato.errors import DevnetError, RpcUnavailable


def _client(net: Devnet, name: str) -> MarketClient:
    dep = net.status().deployment
    assert dep is not None
    return MarketClient.from_deployment(connect(dep.rpc_url, RetryPolicy(attempts=2)), dep, dep.keys[name])


def test_start_is_idempotent_and_status_reports(devnet: Devnet) -> None:
    first = devnet.status()
    again = devnet.start()
    assert again.running and again.pid == first.pid and again.chain_id == 31337
    assert again.deployment is not None and again.deployment.market == first.deployment.market  # type: ignore[union-attr]
    assert set(again.deployment.accounts) >= {"deployer", "requester1", "provider5"}  # type: ignore[union-attr]


def test_stop_start_keeps_balances_and_open_deal(tmp_path: Path) -> None:
    net = Devnet(devnet_settings(tmp_path))
    try:
        net.start()
        r, v = _client(net, "requester2"), _client(net, "provider2")
        r.deposit(5_000_000)
        v.register("http://p2", b"\x00" * 32, b"\x00" * 32)
        v.stake(100_000_000)
        now = r.now()
        t = Terms(r.address, v.address, 0, 1, job_leaf(b"\x01" * 32, 1_000_000, 19_000_000), 1,
                  1_000_000, 19_000_000, now + 3600, now + 600, keccak(b"\x07" * 32), 300, 100_000)
        deal = r.open_deal(t, v.sign_bid(t)).deal
        market = r.market
        assert net.stop()
        assert not net.status().running and net.state_file.exists()
        assert net.start().running
        r2, v2 = _client(net, "requester2"), _client(net, "provider2")
        assert r2.market == market  # not redeployed
        assert r2.balance_of() == 3_900_000  # price and audit fee in escrow
        assert v2.lane(v2.address, 0).busy and v2.free_stake() == 81_000_000
        assert v2.commit_result(deal, b"\x01" * 32).deal.committed
    finally:
        net.stop()


def test_reset_redeploys_from_scratch(tmp_path: Path) -> None:
    net = Devnet(devnet_settings(tmp_path))
    try:
        net.start()
        _client(net, "requester1").deposit(1_000)
        status = net.reset()
        assert status.running
        assert _client(net, "requester1").balance_of() == 0
    finally:
        net.stop()


def test_stop_when_not_running_is_false(tmp_path: Path) -> None:
    assert Devnet(devnet_settings(tmp_path)).stop() is False


def test_port_taken_by_someone_else(devnet: Devnet, tmp_path: Path) -> None:
    other = Devnet(devnet_settings(tmp_path).with_(devnet_port=devnet.settings.devnet_port))
    with pytest.raises(DevnetError, match="something else already serves"):
        other.start()


def test_missing_anvil_is_advice(tmp_path: Path) -> None:
    net = Devnet(devnet_settings(tmp_path).with_(anvil_path=tmp_path / "no-anvil"))
    with pytest.raises(DevnetError, match="npm install"):
        net.start()


def test_dead_rpc_fails_fast_with_advice() -> None:
    port = free_port()  # nothing listens here
    start = time.monotonic()
    with pytest.raises(RpcUnavailable, match=r"did not answer after 3 tries: is `mercato devnet start` running\?"):
        connect(f"http://127.0.0.1:{port}", RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1))
    assert time.monotonic() - start < 2


def test_retrying_provider_recovers_when_node_comes_up(devnet: Devnet) -> None:
    provider = RetryingProvider(devnet.rpc_url, RetryPolicy(attempts=2, base_delay=0.01))
    assert provider.make_request("eth_chainId", [])["result"] == "0x7a69"  # type: ignore[arg-type]


def test_artifacts_are_cached(tmp_path: Path) -> None:
    t0 = time.monotonic()
    first = load_artifacts(tmp_path)
    compile_s = time.monotonic() - t0
    t0 = time.monotonic()
    second = load_artifacts(tmp_path)
    assert time.monotonic() - t0 < max(0.2, compile_s / 5)
    assert first["market"].bytecode == second["market"].bytecode
    # the court is kept as the initcode of its EIP-5202 blueprint (the Market creates the court from it)
    assert second["court"].blueprint and not second["market"].blueprint
    assert bytes.fromhex("fe7100") in second["court"].bytecode[:16]
    assert any(f.get("name") == "commit_audit" for f in second["court"].abi)
    assert len(list(tmp_path.glob("contracts-*.json"))) == 1
