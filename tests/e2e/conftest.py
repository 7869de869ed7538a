"""Browser tests: Playwright's Python API driving the system Chromium (Debian's, headless)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MERCATO_CHROMIUM", "/usr/bin/chromium")
# a closed network: no first-run, sync, component or background fetches, no QUIC
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# module scope, not session: sync_playwright runs an event loop in this thread until it exits, and
# every later test that calls asyncio.run() would fail while it is still running
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make setup` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $MERCATO_ARTIFACTS/e2e if set, else a pytest temp folder (printed)."""
    root = os.environ.get("MERCATO_ARTIFACTS")
    path = Path(root) / "e2e" if root else tmp_path_factory.mktemp("e2e-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ne2e screenshots: {path}")
    return path
