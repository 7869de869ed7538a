"""Suite-wide settings: markers by directory and Hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
