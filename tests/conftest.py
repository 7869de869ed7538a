"""Suite-wide settings: markers by directory, Hypothesis profiles, and the Python interpreter
compiled in the background while the unit and contract tests run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mercato.cli.exec import cache_dir_from_env

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

_MARK_BY_DIR = {"unit": "unit", "contracts": "contracts", "integration": "integration", "e2e": "e2e",
                "chaos": "chaos"}
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the top-level folder it lives in."""
    for item in items:
        top = Path(item.fspath).relative_to(_TESTS).parts[0]
        if top in _MARK_BY_DIR:
            item.add_marker(getattr(pytest.mark, _MARK_BY_DIR[top]))


# Compiling the Python runtime's interpreter (once per cache folder) takes a minute or two of
# both cores. A session that will run sandboxes starts it at once, at a low priority, so that
# it overlaps the single-threaded unit and contract tests; the first test that needs it waits
# for it (the module cache's lock) instead of compiling it again. A warm cache makes it a no-op.
_WARM = """
import os, sys, tempfile
from pathlib import Path
os.nice(10)
from mercato.runtimes import BlobStore
from mercato.runtimes.python import PythonRuntime
PythonRuntime(BlobStore(tempfile.mkdtemp()), cache_dir=Path(sys.argv[1])).load()
"""
_warming: list[subprocess.Popen[bytes]] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(
            Path(item.fspath).relative_to(_TESTS).parts[0] in ("integration", "e2e", "chaos")
            for item in session.items):
        return
    cache = cache_dir_from_env()
    cache.mkdir(parents=True, exist_ok=True)
    _warming.append(subprocess.Popen([sys.executable, "-c", _WARM, str(cache)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for proc in _warming:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
