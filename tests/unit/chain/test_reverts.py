"""Every revert string in contracts/ maps to a typed exception with advice."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from eth_abi import encode
from web3.exceptions import ContractLogicError

from mercato import errors as e
from mercato.chain.reverts import REVERT_PATTERN, REVERTS, error_for, raise_for_error, revert_reason

ROOT = Path(__file__).resolve().parents[3]


def _strings_in_contracts() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "contracts").rglob("*.vy*"):
        found |= set(REVERT_PATTERN.findall(path.read_text()))
    return found


def _exported_strings() -> set[str]:
    path = ROOT / "tests" / "contracts" / "revert_strings.py"
    if not path.exists():
        return set()
    spec = importlib.util.spec_from_file_location("_revert_strings", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(getattr(module, "REVERT_STRINGS", ()))


def test_every_contract_revert_string_is_mapped() -> None:
    strings = _strings_in_contracts() | _exported_strings()
    assert strings, "no revert strings found under contracts/"
    missing = sorted(strings - set(REVERTS))
    assert not missing, f"add these to mercato.chain.reverts.REVERTS: {missing}"


def test_no_stale_mappings() -> None:
    stale = sorted(set(REVERTS) - _strings_in_contracts() - _exported_strings())
    assert not stale, f"no contract raises these any more: {stale}"


@pytest.mark.parametrize("reason", sorted(REVERTS))
def test_mapping_matches_namespace(reason: str) -> None:
    err = error_for(reason)
    assert isinstance(err, e.ContractRevert) and err.reason == reason
    assert str(err).startswith(reason + ": ")  # what happened, then what to do
    namespace = reason.split(":")[0]
    parent = {"accounts": e.AccountsError, "staking": e.StakingError, "deals": e.DealsError,
              "audits": e.AuditError}[namespace]
    # the one deliberate cross-namespace mapping: collateral checks in deals are about stake
    assert isinstance(err, parent) or type(err) in (e.InsufficientFreeStake, e.InvalidAmount)


@pytest.mark.parametrize(("reason", "cls"), [
    ("deals: bad signature", e.BadSignature),
    ("deals: bid expired", e.BidExpired),
    ("deals: bid replayed", e.BidReplayed),
    ("deals: lane busy", e.LaneBusy),
    ("deals: requester unfunded", e.RequesterUnfunded),
    ("deals: provider not registered", e.ProviderNotRegistered),
    ("deals: insufficient free stake", e.InsufficientFreeStake),
    ("deals: already settled", e.AlreadySettled),
    ("deals: unknown deal", e.UnknownDeal),
    ("deals: challenge window open", e.ChallengeWindowOpen),
    ("deals: deadline not passed", e.DeadlineNotPassed),
    ("accounts: insufficient balance", e.InsufficientBalance),
    ("deals: no seed", e.InvalidTerms),
    ("deals: audit probability out of range", e.InvalidTerms),
    ("deals: bond too small", e.BondTooSmall),
    ("deals: bad seed", e.LotteryError),
    ("deals: beacon not ready", e.LotteryError),
    ("deals: not drawn", e.AuditPending),
    ("deals: audit pending", e.AuditPending),
    ("audits: bad reveal", e.AuditError),
])
def test_key_reasons(reason: str, cls: type[e.ContractRevert]) -> None:
    assert type(error_for(reason)) is cls


def test_unknown_reason_is_transaction_failed() -> None:
    assert type(error_for("deals: something new")) is e.TransactionFailed


def test_reason_from_revert_data_and_message() -> None:
    data = "0x08c379a0" + encode(["string"], ["deals: lane busy"]).hex()
    assert revert_reason(ContractLogicError("execution reverted", data=data)) == "deals: lane busy"
    assert revert_reason(ContractLogicError("execution reverted: deals: bid expired")) == "deals: bid expired"
    assert revert_reason(ValueError("{'code': 3, 'message': 'execution reverted: staking: no earnings'}")) == (
        "staking: no earnings")
    assert revert_reason(ValueError("connection reset")) is None


def test_raise_for_error() -> None:
    with pytest.raises(e.LaneBusy) as info:
        raise_for_error(ContractLogicError("execution reverted: deals: lane busy"))
    assert isinstance(info.value.__cause__, ContractLogicError)
    with pytest.raises(e.TransactionFailed):
        raise_for_error(ValueError("insufficient funds for gas"))
