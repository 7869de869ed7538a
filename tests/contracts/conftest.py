"""Fixtures for this folder live in contracts_kit.py (a uniquely named module, importable by tests)."""

from contracts_kit import *  # noqa: F401,F403
from contracts_kit import _isolate  # noqa: F401  (autouse; not covered by *)
