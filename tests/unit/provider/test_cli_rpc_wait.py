"""`mercato provider start` waits for an RPC node that does not answer yet, instead of exiting."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import mercato.chain as chain
from mercato.cli.provider import _connect_waiting
from mercato.config import RetryPolicy, Settings
from mercato.errors import ConfigError, RpcUnavailable

pytestmark = pytest.mark.unit


class _W3:
    def __init__(self, chain_id: int) -> None:
        self.eth = type("Eth", (), {"chain_id": chain_id})()


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, retry=RetryPolicy(attempts=1, base_delay=0.01))


def test_waits_through_an_outage_then_connects(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    tries: list[str] = []

    def connect(url: str, *_: Any) -> _W3:
        tries.append(url)
        if len(tries) < 3:
            raise RpcUnavailable("RPC node did not answer")
        return _W3(31337)

    monkeypatch.setattr(chain, "connect", connect)
    monkeypatch.setattr("time.sleep", lambda _s: None)
    with caplog.at_level(logging.WARNING, "mercato.provider"):
        w3 = _connect_waiting("http://node", _settings(tmp_path), 31337, wait_s=60)
    assert w3.eth.chain_id == 31337 and len(tries) == 3
    assert [r.getMessage() for r in caplog.records].count("RPC node does not answer yet; waiting") == 2


def test_gives_up_after_the_wait_with_advice(tmp_path: Path) -> None:
    # a closed port: nothing listens there
    with pytest.raises(RpcUnavailable, match=r"waited 1 s; raise --rpc-wait"):
        _connect_waiting("http://127.0.0.1:9", _settings(tmp_path), 31337, wait_s=1.0)


def test_a_node_on_another_chain_fails_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(chain, "connect", lambda *_a: _W3(1))
    with pytest.raises(ConfigError, match="serves chain 1, but the deployment is on chain 31337"):
        _connect_waiting("http://node", _settings(tmp_path), 31337, wait_s=60)


def test_agent_start_steps_wait_for_the_node(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from mercato.provider.agent import _until_chain

    calls: list[int] = []

    async def step() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RpcUnavailable("RPC node did not answer")
        return "registered"

    async def no_sleep(_s: float) -> None:
        return None

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    with caplog.at_level(logging.WARNING, "mercato.provider"):
        assert asyncio.run(_until_chain(step, "register")) == "registered"
    assert len(calls) == 3
    assert [r.getMessage() for r in caplog.records].count("RPC unavailable during start-up; retrying") == 2
