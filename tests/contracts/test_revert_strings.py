"""Every revert string in contracts/ is listed in revert_strings.REVERT_STRINGS, and vice versa."""

from __future__ import annotations

import re
from pathlib import Path

from revert_strings import REVERT_STRINGS

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
PATTERN = re.compile(r'"((?:accounts|staking|deals|audits): [^"]+)"')


def _strings_in_contracts() -> set[str]:
    found: set[str] = set()
    for path in CONTRACTS.rglob("*.vy"):
        found.update(PATTERN.findall(path.read_text()))
    return found


def test_every_contract_string_is_listed():
    missing = _strings_in_contracts() - set(REVERT_STRINGS)
    assert not missing, f"add to tests/contracts/revert_strings.py: {sorted(missing)}"


def test_every_listed_string_exists():
    stale = set(REVERT_STRINGS) - _strings_in_contracts()
    assert not stale, f"remove from tests/contracts/revert_strings.py: {sorted(stale)}"


def test_no_duplicates():
    assert len(REVERT_STRINGS) == len(set(REVERT_STRINGS))
