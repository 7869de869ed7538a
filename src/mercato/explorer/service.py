"""The `mercato explorer` process: the indexer in a background thread plus the web app.

    >>> with Explorer.start(deployment, db, port=0) as ex:     # doctest: +SKIP
    ...     print(ex.url)
    http://127.0.0.1:41234
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from mercato.chain import Deployment
from mercato.explorer.api import create_app
from mercato.explorer.indexer import Indexer
from mercato.explorer.store import Store
from mercato.explorer.views import Views

__all__ = ["Explorer", "InfoCache"]


class InfoCache:
    """Each provider agent's ``GET /v1/info``, fetched at most every ``ttl`` seconds."""

    def __init__(self, ttl: float = 10.0, timeout: float = 1.0) -> None:
        self.ttl, self.timeout = ttl, timeout
        self._seen: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, endpoint: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._seen.get(endpoint)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        info: dict[str, Any] | None = None
        if endpoint.startswith(("http://", "https://")):
            try:
                r = httpx.get(endpoint.rstrip("/") + "/v1/info", timeout=self.timeout)
                info = r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                info = None
        with self._lock:
            self._seen[endpoint] = (time.monotonic(), info)
        return info


class Explorer:
    """An indexer thread and a uvicorn server (in this process) over one database."""

    def __init__(self, indexer: Indexer, host: str = "127.0.0.1", port: int = 8600, interval: float = 1.0,
                 rpc_url: str = "", log_level: str = "warning") -> None:
        self.indexer = indexer
        self.views = Views(indexer.store)
        self.host, self.interval = host, interval
        self.port = port or _free_port(host)
        self.rpc_url = rpc_url
        self.app = create_app(self.views, status=self.status, provider_info=InfoCache())
        self._stop = threading.Event()
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=self.port, log_level=log_level,
                                                     lifespan="off"))
        self._threads: list[threading.Thread] = []

    @classmethod
    def for_deployment(cls, dep: Deployment, db: Path, *, rpc_url: str | None = None, market: str | None = None,
                       confirmations: int = 0, host: str = "127.0.0.1", port: int = 8600,
                       interval: float = 1.0, **options: Any) -> Explorer:
        indexer = Indexer.from_deployment(dep, Store(db), rpc_url=rpc_url, market=market,
                                          confirmations=confirmations, **options)
        return cls(indexer, host, port, interval, rpc_url=rpc_url or dep.rpc_url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def status(self) -> dict[str, Any]:
        ix = self.indexer
        try:
            head: int | None = ix.head()
        except Exception:  # noqa: BLE001 - the status page reports a dead node, it does not fail
            head = None
        return {"chain_id": ix.chain_id, "market": ix.market, "rpc_url": self.rpc_url, "head": head,
                "indexed_block": ix.store.cursor(), "confirmations": ix.confirmations,
                "last_error": ix.last_error, "last_sync": ix.last_sync}

    def start_background(self, *, timeout: float = 15.0) -> Explorer:
        """Index once, then run the indexer loop and the web server in daemon threads."""
        self.indexer.sync()
        indexing = threading.Thread(target=self.indexer.run, args=(self._stop, self.interval),
                                    name="explorer-indexer", daemon=True)
        serving = threading.Thread(target=self._server.run, name="explorer-http", daemon=True)
        self._threads = [indexing, serving]
        for t in self._threads:
            t.start()
        end = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > end or not serving.is_alive():
                self.stop()
                raise RuntimeError(f"the explorer did not start on {self.url}")
            time.sleep(0.05)
        return self

    def serve_forever(self) -> None:
        """Run the indexer thread and serve in the foreground until interrupted."""
        self.indexer.sync()
        indexing = threading.Thread(target=self.indexer.run, args=(self._stop, self.interval),
                                    name="explorer-indexer", daemon=True)
        indexing.start()
        try:
            self._server.run()
        finally:
            self._stop.set()
            indexing.join(timeout=10)
            self.indexer.store.close()

    def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def __enter__(self) -> Explorer:
        return self.start_background()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
