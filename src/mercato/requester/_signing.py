"""Every request the SDK sends a provider is signed with the requester's key (docs/SPEC.md §19).

    http = httpx.AsyncClient(auth=RequestSigner(api.address, api.sign_text))

The headers are ``domain.wire.request_auth_headers``: the signer, a unix timestamp, a fresh nonce
and an EIP-191 signature over the method, the path and query as sent, the timestamp, the nonce
and the SHA-256 of the body.
A provider answers 429 with ``Retry-After`` past its rate limit: the request is then signed
afresh (a signature is good once) and sent again after that wait, a few times at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from mercato.domain.wire import request_auth_headers

__all__ = ["RequestSigner"]


class RequestSigner(httpx.Auth):
    """Signs each request as ``signer`` (``sign_text``: EIP-191 with its key) and waits out 429s."""

    requires_request_body = True

    def __init__(self, signer: str, sign_text: Callable[[str], bytes], *, retries: int = 4,
                 max_wait_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.signer, self.sign_text, self.clock = signer, sign_text, clock
        self.retries, self.max_wait_s = retries, max_wait_s

    def _sign(self, request: httpx.Request) -> httpx.Request:
        request.headers.update(request_auth_headers(self.sign_text, self.signer, request.method,
                                                    request.url.raw_path.decode("ascii"), request.content,
                                                    int(self.clock())))
        return request

    def _wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None to hand ``response`` back."""
        if response.status_code != 429 or attempt >= self.retries:
            return None
        try:
            wait = float(response.headers.get("retry-after", "1"))
        except ValueError:
            wait = 1.0
        return min(max(wait, 0.05), self.max_wait_s)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for attempt in range(self.retries + 1):
            response = yield self._sign(request)
            wait = self._wait(response, attempt)
            if wait is None:
                return
            response.read()
            time.sleep(wait)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        for attempt in range(self.retries + 1):
            response = yield self._sign(request)
            wait = self._wait(response, attempt)
            if wait is None:
                return
            await response.aread()
            await asyncio.sleep(wait)
