"""The provider's HTTP API against hostile clients: signed requests, replays, clock skew, body
caps and rate limits, checked before any route runs.

    guard = RequestGuard(max_skew_s=120, rate_per_s=100, burst=500)
    app.add_middleware(GuardMiddleware, guard=guard, json_cap=1 << 20, blob_cap=256 << 20)  # create_app does it
    signer = signer_of(request)          # in a route: the verified address, or None (unsigned)

A signed request carries ``X-Mercato-Signer`` (an address), ``X-Mercato-Timestamp`` (unix
seconds), ``X-Mercato-Nonce`` (fresh, random) and ``X-Mercato-Signature``: the EIP-191 signature
of ``domain.wire.request_auth_message(method, target, timestamp, nonce, body)``, ``target`` being
the path and query exactly as sent. For each request the middleware, in this order:

1. refuses a request that changes state (any method but GET, HEAD and OPTIONS) without the four headers,
   and a timestamp more than ``max_skew_s`` from this clock: 401, before reading the body;
2. reads the body, at most ``blob_cap`` bytes for a blob upload (plus the 48 bytes of a sealed
   box's overhead when it comes sealed) and ``json_cap`` for anything else: 413 as soon as it is known to be over (``Content-Length`` or the bytes so far);
3. recovers the signature over the canonical text: 401 unless it recovers to the named signer
   (each failure also costs the caller's address a token, so a flood of bad signatures ends in 429);
   a signature seen before within its window: 409;
4. takes a token from the bucket of the signer (unsigned: of the client's address): 429 with
   ``Retry-After`` when it is empty.

Who may do what (the deal's requester, an auditor seated for it, …) is the routes' business
(``ProviderAgent.authorize_*``): they read the verified signer with ``signer_of``.

``RequestSigner`` is the client side, an ``httpx.Auth``: the provider's auditor signs with it
as the provider.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import Request
from fastapi.responses import JSONResponse

from mercato.domain.sealing import SEAL_OVERHEAD, SEALED_HEADER
from mercato.domain.wire import (
    NONCE_HEADER,
    NONCE_PATTERN,
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    TIMESTAMP_HEADER,
    request_auth_headers,
    request_auth_message,
)
from mercato.errors import (
    ProviderError,
    RateLimited,
    RequestReplayed,
    RequestTooLarge,
    Unauthenticated,
)

__all__ = ["GuardMiddleware", "RateLimiter", "ReplayCache", "RequestGuard", "RequestSigner", "TokenBucket",
           "request_target", "signer_of"]

_SCOPE_KEY = "mercato.signer"
_READS = ("GET", "HEAD", "OPTIONS")
_BLOB_UPLOAD = re.compile(r"^/v1/(blobs/[^/]+|audits/[^/]+/blobs/[^/]+)$")
_HOW = ("sign the request: X-Mercato-Signer (your address), X-Mercato-Timestamp (unix seconds), X-Mercato-Nonce "
        "(fresh, random) and X-Mercato-Signature (EIP-191 over domain.wire.request_auth_message)")


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` a second; each request takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = float(burst), now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is there (nothing taken)."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class RateLimiter:
    """A token bucket per key (a signer's address, or a client's network address). Buckets that
    have filled up again are forgotten when there are more than ``max_keys`` (a fresh bucket is
    full, so nothing is lost)."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 50_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, now: float) -> float:
        """0 when allowed, else the seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # still crowded: forget the oldest half
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class ReplayCache:
    """The signatures accepted while they could still be replayed (until their timestamp's window ends)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()
        self._expiry: list[tuple[float, bytes]] = []

    def add(self, key: bytes, expires: float, now: float) -> bool:
        """Remember ``key`` until ``expires``; False if it is remembered already (a replay)."""
        while self._expiry and self._expiry[0][0] < now:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if key in self._seen:
            return False
        self._seen.add(key)
        heapq.heappush(self._expiry, (expires, key))
        return True

    def __len__(self) -> int:
        return len(self._seen)


class RequestGuard:
    """Signature, clock window, replay and rate checks of one provider (see the module docstring)."""

    def __init__(self, *, max_skew_s: int = 120, rate_per_s: float = 100.0, burst: int = 500,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_skew_s = max_skew_s
        self.clock, self.monotonic = clock, monotonic
        self.limiter = RateLimiter(rate_per_s, burst)
        self.replays = ReplayCache()

    def precheck(self, method: str, headers: Mapping[str, str]) -> bool:
        """Whether the request is signed; 401 for a write without the headers, only some of them,
        or a timestamp that is not a number or outside the clock window."""
        present = [h for h in (SIGNER_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER) if headers.get(h)]
        if not present:
            if method.upper() not in _READS:
                raise Unauthenticated(f"{method.upper()} requests change state and must be signed: {_HOW}")
            return False
        if len(present) < 4:
            raise Unauthenticated(f"the request carries {', '.join(present)} but not all four headers: {_HOW}")
        if not re.match(NONCE_PATTERN, headers.get(NONCE_HEADER, "")):
            raise Unauthenticated("X-Mercato-Nonce must be 8 to 64 letters, digits, '-' or '_': send a fresh random "
                                  "hex string with each request")
        raw = headers.get(TIMESTAMP_HEADER, "")
        try:
            stamp = int(raw)
        except ValueError:
            raise Unauthenticated(f"X-Mercato-Timestamp {raw[:32]!r} is not unix seconds: send int(time.time())") from None
        skew = stamp - self.clock()
        if abs(skew) > self.max_skew_s:
            raise Unauthenticated(f"the request's timestamp is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
                                  f"this provider's clock (at most {self.max_skew_s} s allowed): sign it afresh "
                                  "with the current time, and check your clock")
        return True

    def authenticate(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> str:
        """The signer's address once the signature checks out and was not seen before (401, 409)."""
        claimed = headers.get(SIGNER_HEADER, "")
        stamp = int(headers.get(TIMESTAMP_HEADER, "0"))
        try:
            signature = bytes.fromhex(headers.get(SIGNATURE_HEADER, "").removeprefix("0x"))
            if len(signature) != 65:
                raise ValueError("not 65 bytes")
            text = request_auth_message(method, target, stamp, headers.get(NONCE_HEADER, ""), body)
            signer = str(Account.recover_message(encode_defunct(text=text), signature=signature))
        except Exception:  # malformed hex, a point off the curve, ...: all just "not a valid signature"
            signer = ""
        if not signer or signer.lower() != claimed.lower():
            raise Unauthenticated(f"the signature does not recover to X-Mercato-Signer {claimed[:42]!r}: sign "
                                  f"request_auth_message(method, path and query as sent, timestamp, sha256 of "
                                  "the exact body) with that address's key")
        now = self.clock()
        # keyed by what was signed, not by the signature's bytes: one signature has several valid
        # encodings (v as 0/1 or 27/28, s or n - s), and each would otherwise pass as new
        seen = hashlib.sha256(f"{signer.lower()}\n{text}".encode()).digest()
        if not self.replays.add(seen, stamp + self.max_skew_s + 1, now):
            raise RequestReplayed("this signed request was sent before: sign every request afresh "
                                  "(a fresh X-Mercato-Nonce makes it a new request)")
        return signer

    def throttle(self, key: str) -> None:
        """Take a token for ``key``; 429 when its bucket is empty."""
        wait = self.limiter.take(key.lower(), self.monotonic())
        if wait > 0:
            raise RateLimited(f"too many requests from {key}: at most {self.limiter.rate:g} a second "
                              f"(bursts of {self.limiter.burst}); retry after {wait:.2f} s", retry_after=wait)


def request_target(scope: Mapping[str, Any]) -> str:
    """The path and query of an ASGI request as the client sent them (what it signed)."""
    raw = scope.get("raw_path") or scope.get("path", "").encode()
    path = bytes(raw).split(b"?", 1)[0].decode("latin-1")
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def signer_of(request: Request) -> str | None:
    """The verified signer of ``request`` (an address), or None when it came unsigned."""
    signer = request.scope.get(_SCOPE_KEY)
    return str(signer) if signer else None


class _ClientGone(Exception):
    pass


class GuardMiddleware:
    """The pure-ASGI middleware that runs ``RequestGuard`` before any route (module docstring)."""

    def __init__(self, app: Any, *, guard: RequestGuard, json_cap: int, blob_cap: int) -> None:
        self.app, self.guard, self.json_cap, self.blob_cap = app, guard, json_cap, blob_cap

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            signer, body = await self._admit(scope, receive)
        except _ClientGone:
            return
        except ProviderError as exc:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if isinstance(exc, RateLimited) else None
            await JSONResponse({"detail": str(exc)}, status_code=exc.http_status, headers=headers)(scope, receive, send)
            return
        scope[_SCOPE_KEY] = signer
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)

    def _client_key(self, scope: Mapping[str, Any]) -> str:
        client = scope.get("client")
        return f"ip:{client[0]}" if client else "ip:unknown"

    async def _admit(self, scope: dict[str, Any], receive: Any) -> tuple[str | None, bytes]:
        method = str(scope.get("method", "GET")).upper()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        lowered = _Headers(headers)
        try:
            signed = self.guard.precheck(method, lowered)
        except Unauthenticated:
            self.guard.throttle(self._client_key(scope))
            raise
        cap = self.blob_cap if method == "PUT" and _BLOB_UPLOAD.match(str(scope.get("path", ""))) else self.json_cap
        if cap == self.blob_cap and lowered.get(SEALED_HEADER.lower()) == "1":
            cap += SEAL_OVERHEAD  # a sealed box is the blob plus its ephemeral key and tag
        body = await _read_body(receive, lowered.get("content-length"), cap)
        if not signed:
            self.guard.throttle(self._client_key(scope))
            return None, body
        try:
            signer = self.guard.authenticate(method, request_target(scope), lowered, body)
        except Unauthenticated:
            self.guard.throttle(self._client_key(scope))
            raise
        self.guard.throttle(signer)
        return signer, body


class _Headers(dict[str, str]):
    """Case-insensitive look-ups over headers stored lower-cased."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


async def _read_body(receive: Any, declared: str | None, cap: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise RequestTooLarge(f"the body is {declared} bytes, over this provider's cap of {cap}: "
                              "send less (blobs go one per PUT /v1/blobs/{hash})")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise RequestTooLarge(f"the body is over this provider's cap of {cap} bytes: send less "
                                  "(blobs go one per PUT /v1/blobs/{hash})")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestSigner(httpx.Auth):
    """Signs every request of an ``httpx`` client as ``signer`` (``sign_text`` signs a text with
    its key, e.g. ``MarketClient.sign_text``)."""

    requires_request_body = True

    def __init__(self, signer: str, sign_text: Callable[[str], bytes], *, clock: Callable[[], float] = time.time) -> None:
        self.signer, self.sign_text, self.clock = signer, sign_text, clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(request_auth_headers(self.sign_text, self.signer, request.method,
                                                    request.url.raw_path.decode("ascii"), request.content,
                                                    int(self.clock())))
        yield request
