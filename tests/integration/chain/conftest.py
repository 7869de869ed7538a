"""Fixtures for this folder live in chain_kit.py (a uniquely named module, importable by tests)."""

from chain_kit import *  # noqa: F401,F403
