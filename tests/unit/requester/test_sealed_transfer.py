"""The SDK seals every upload to the provider's registered key and asks for its results sealed
to its own box key (docs/SPEC.md §21)."""

from __future__ import annotations

import httpx
from requester_fakes import OUTPUTS, STDOUT, FakeProvider, transport

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.sealing import BOX_PARAM, SEALED_HEADER
from mercato.requester import JobRequest, Market, SyncMarket


class _Spy(httpx.MockTransport):
    """The fake providers' transport, keeping every request it routed."""

    def __init__(self, inner: httpx.MockTransport) -> None:
        self.seen: list[httpx.Request] = []
        self.inner = inner
        super().__init__(self._route)

    async def _route(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return await self.inner.handle_async_request(request)


def test_uploads_are_sealed_and_results_come_back_sealed_and_open(ledger: FakeLedger, requester: FakeMarket,
                                                                  request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger)
    spy = _Spy(transport([p]))
    result = SyncMarket(Market(requester, transport=spy)).run(request_)
    assert result.verified and result.stdout == STDOUT and result.outputs == OUTPUTS
    puts = [r for r in spy.seen if r.method == "PUT"]
    assert puts and p.sealed_puts == p.puts == len(puts)
    # no upload carries the plain bytes of the blob it stores
    for r in puts:
        assert r.headers[SEALED_HEADER] == "1" and p.blobs[r.url.path.removeprefix("/v1/blobs/")] not in r.content
    reads = [r for r in spy.seen if r.method == "GET" and r.url.path.count("/") > 3]  # stdout, stderr, outputs
    assert reads and all(BOX_PARAM in r.url.params for r in reads)


def test_a_provider_without_a_box_key_gets_plain_uploads(ledger: FakeLedger, requester: FakeMarket,
                                                         request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger)
    p.api.register(f"http://{p.host}", b"\x01" * 32, b"\x00" * 32)  # registered with no enc_key
    result = SyncMarket(Market(requester, transport=transport([p]))).run(request_)
    assert result.verified and p.puts > 0 and p.sealed_puts == 0
