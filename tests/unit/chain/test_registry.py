"""``providers()``: every registered provider once, in order; the same on the fake and a node."""

from __future__ import annotations

from chain_scenarios import KEYS

from mercato.chain import FakeLedger, MarketApi


def test_providers_lists_registered_accounts_once_in_order(ledger: FakeLedger) -> None:
    p1, p2, req = (ledger.client(KEYS[n]) for n in ("provider1", "provider2", "requester1"))
    assert isinstance(p1, MarketApi)
    assert req.providers() == []
    p2.register("http://p2", b"\x00" * 32, b"\x00" * 32)
    req.provider_info(p1.address)  # reading an unregistered provider does not register it
    p1.register("http://p1", b"\x00" * 32, b"\x00" * 32)
    p2.register("http://p2-moved", b"\x00" * 32, b"\x00" * 32)  # ProviderUpdated: still listed once
    assert req.providers() == [p2.address, p1.address]
    assert req.provider_info(p2.address).endpoint == "http://p2-moved"
