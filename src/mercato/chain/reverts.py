"""Every revert string of the contracts, mapped to a typed exception with advice.

    >>> err = error_for("deals: bid expired")
    >>> type(err).__name__, err.reason
    ('BidExpired', 'deals: bid expired')

A unit test fails when a string in ``contracts/`` has no entry here.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from eth_abi import decode

from mercato import errors as e

__all__ = ["REVERTS", "REVERT_PATTERN", "error_for", "revert_reason", "raise_for_error"]

REVERT_PATTERN = re.compile(r'"((?:accounts|staking|deals|audits|market|eip712): [^"]+)"')
_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

# reason -> (exception class, what to do next)
REVERTS: dict[str, tuple[type[e.ContractRevert], str]] = {
    # accounts
    "accounts: zero token": (e.AccountsError, "deploy with a real ERC-20 token address"),
    "accounts: delay too long": (e.AccountsError, "deploy with a withdrawal delay of at most a year"),
    "accounts: zero amount": (e.InvalidAmount, "pass an amount above zero"),
    "accounts: amount too large": (e.InvalidAmount, "use a smaller amount"),
    "accounts: insufficient balance": (
        e.InsufficientBalance, "deposit more first, or withdraw less (see `balance_of`)"),
    "accounts: nothing pending": (e.WithdrawalNotReady, "call request_withdrawal first"),
    "accounts: withdrawal not ready": (
        e.WithdrawalNotReady, "wait until the withdrawal delay has passed (see `pending_withdrawal`)"),
    "accounts: token transfer failed": (
        e.InsufficientBalance, "check the token balance and approve the market for the amount"),
    # staking
    "staking: delay too long": (e.StakingError, "deploy with an unbond delay of at most a year"),
    "staking: empty endpoint": (e.StakingError, "register with the URL of your provider agent"),
    "staking: zero amount": (e.InvalidAmount, "pass an amount above zero"),
    "staking: amount too large": (e.InvalidAmount, "use a smaller amount"),
    "staking: insufficient free stake": (
        e.InsufficientFreeStake, "unbond at most `free_stake`; collateral of open deals stays locked"),
    "staking: nothing unbonding": (e.UnbondNotReady, "call unbond first"),
    "staking: unbond not ready": (
        e.UnbondNotReady, "wait until the unbond delay has passed (see `provider_info`)"),
    "staking: no earnings": (e.NothingToClaim, "finalize committed deals first; earnings come from them"),
    "staking: audit floor out of range": (e.StakingError, "deploy with 1 <= audit_floor_bps <= 10000"),
    "staking: collusion out of range": (e.StakingError, "deploy with 1 <= collusion_bps <= 10000"),
    "staking: lambda out of range": (e.StakingError, "deploy with bond_lambda_bps of at least 10000 (λ >= 1)"),
    "staking: jailed": (
        e.StakingError, "this provider was jailed for a proven fault: it can never stake or take deals again"),
    "staking: bond in use": (
        e.InsufficientFreeStake, "the stake secures the value of open deals (the bond rule): unbond less, "
                                 "or wait until they settle"),
    # deals
    "deals: window too long": (e.DealsError, "deploy with a challenge window of at most a year"),
    "deals: penalty above 100%": (e.DealsError, "deploy with miss_penalty_bps <= 10000"),
    "deals: not requester": (e.NotAuthorized, "open_deal must be sent by the terms' requester"),
    "deals: not provider": (e.NotAuthorized, "only the terms' provider may commit or open_and_commit"),
    "deals: bid expired": (e.BidExpired, "ask the provider for a fresh bid"),
    "deals: acceptance expired": (e.BidExpired, "ask the requester for a fresh acceptance"),
    "deals: empty seal": (e.InvalidSeal, "commit keccak256(abi.encode(provider, deal_id, result_root, fuel, salt)), never zero"),
    "deals: bad signature": (
        e.BadSignature, "sign the terms exactly as sent, with the right key, chain id and market address"),
    "deals: no jobs": (e.InvalidTerms, "terms must cover at least one job"),
    "deals: expiry after deadline": (e.InvalidTerms, "set expiry <= deadline"),
    "deals: nonce out of range": (e.InvalidTerms, "use a nonce below 2**64"),
    "deals: amount out of range": (e.InvalidTerms, "use a price and an audit fee below 2**96"),
    "deals: no seed": (e.InvalidTerms, "put keccak256 of your 32-byte lottery seed in seed_hash, never zero"),
    "deals: audit probability out of range": (
        e.InvalidTerms, "set audit_bps between the market's audit_floor_bps and 10000 (see `parameters`)"),
    "deals: bond too small": (
        e.BondTooSmall, "the provider's stake cannot secure more value in flight: stake more, or wait until "
                        "its open deals settle"),
    "deals: provider jailed": (e.DealsError, "this provider was jailed for a proven fault: choose another"),
    "deals: lane busy": (e.LaneBusy, "use another lane, or finalize/reclaim the lane's open deal first"),
    "deals: bid replayed": (
        e.BidReplayed, "this nonce was used on the lane: sign new terms with a higher nonce (see `lane`)"),
    "deals: requester unfunded": (e.RequesterUnfunded, "the requester must deposit at least the price"),
    "deals: provider not registered": (e.ProviderNotRegistered, "the provider must call register first"),
    "deals: insufficient free stake": (
        e.InsufficientFreeStake, "the provider must stake at least the collateral (see `free_stake`)"),
    "deals: already committed": (e.AlreadyCommitted, "the deal is committed: finalize it after the window"),
    "deals: deadline passed": (e.DeadlinePassed, "too late to commit; the requester may now reclaim"),
    "deals: not committed": (e.NotCommitted, "commit a result before finalizing"),
    "deals: challenge window open": (
        e.ChallengeWindowOpen, "wait until committed_at + challenge_window, then finalize"),
    "deals: deadline not passed": (e.DeadlineNotPassed, "wait until the deadline has passed to reclaim"),
    "deals: already settled": (e.AlreadySettled, "nothing to do: the deal was finalized or reclaimed"),
    "deals: unknown deal": (
        e.UnknownDeal, "pass the deal exactly as stored (terms, seal, committed_at, committed_block, status; "
                       "mercato.domain.deals.deal_hash)"),
    # the lottery (docs/SPEC.md §14.3)
    "deals: length mismatch": (e.LotteryError, "pass one seed per deal, in the same order"),
    "deals: already drawn": (e.LotteryError, "nothing to do: the lottery of this deal has run"),
    "deals: bad seed": (e.LotteryError, "pass the 32-byte seed whose keccak256 is the terms' seed_hash"),
    "deals: not the court": (e.AuditError, "only the Market's court applies penalties and verdicts"),
    "deals: beacon not ready": (
        e.LotteryError, "wait until block committed_block + beacon_delay has been mined, then draw"),
    "deals: draw window over": (
        e.LotteryError, "too late to draw: anyone may now call audit_by_default for this deal"),
    "deals: draw window open": (
        e.LotteryError, "the deal can still be drawn: wait until committed_block + beacon_delay + draw_blocks"),
    "deals: already audited": (e.LotteryError, "nothing to do: the deal is being (or was) audited"),
    "deals: challenge window over": (
        e.LotteryError, "a challenge must come before committed_at + challenge_window"),
    "deals: not drawn": (e.AuditPending, "run the lottery first (draw with the requester's seed)"),
    "deals: audit pending": (e.AuditPending, "wait until the deal's audit has passed (see `audit`)"),
    # audits (docs/SPEC.md §14.4)
    "audits: draw window out of range": (e.AuditError, "deploy with 1 <= draw_blocks <= 240"),
    "audits: period too long": (e.AuditError, "deploy with a shorter audit_period"),
    "audits: committee out of range": (e.AuditError, "deploy with 1 <= committee_size <= 5"),
    "audits: not the market": (e.AuditError, "only the Market hands deals to its court"),
    "audits: epoch out of range": (e.AuditError, "deploy with 1 <= epoch_blocks <= 256"),
    "audits: wrong phase": (e.AuditError, "the audit is not in the phase this step belongs to (see `audit`)"),
    "audits: phase over": (e.AuditError, "the phase's deadline passed: call advance"),
    "audits: phase not over": (e.AuditError, "wait until the phase's deadline has passed, then advance"),
    "audits: empty seal": (e.AuditError, "commit keccak256(abi.encode(you, deal_id, root, fuel, salt)), never zero"),
    "audits: already committed": (e.AuditError, "nothing to do: this seat committed its seal"),
    "audits: already revealed": (e.AuditError, "nothing to do: this execution was revealed"),
    "audits: not a seat": (e.AuditError, "only the deal's provider and its drawn auditors take part"),
    "audits: bad reveal": (
        e.AuditError, "reveal exactly the result_root, fuel and salt the committed seal was made of"),
}


def error_for(reason: str) -> e.ContractRevert | e.TransactionFailed:
    """The typed exception for ``reason``; unknown strings give ``TransactionFailed``."""
    entry = REVERTS.get(reason)
    if entry is None:
        return e.TransactionFailed(f"the contract reverted: {reason or 'no reason given'}")
    cls, advice = entry
    return cls(f"{reason}: {advice}", reason=reason)


def _decode_data(data: Any) -> str | None:
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str | bytes) or not data:
        return None
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
    if raw[:4] != _ERROR_SELECTOR:
        return None
    try:
        return str(decode(["string"], raw[4:])[0])
    except Exception:  # malformed revert data: fall back to the message text
        return None


def revert_reason(exc: BaseException) -> str | None:
    """The revert string inside a web3 error (``ContractLogicError``, ``Web3RPCError``)."""
    reason = _decode_data(getattr(exc, "data", None))
    if reason:
        return reason
    text = str(getattr(exc, "message", None) or exc)
    match = re.search(r"((?:accounts|staking|deals|audits|market|eip712): [^'\"\n}]+)", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"execution reverted:?\s*([^'\"\n}]*)", text)
    return match.group(1).strip() if match and match.group(1).strip() else None


def raise_for_error(exc: BaseException) -> NoReturn:
    """Re-raise a web3 error as the typed Mercato error it stands for."""
    reason = revert_reason(exc)
    if reason is not None:
        raise error_for(reason) from exc
    raise e.TransactionFailed(f"the node refused the transaction: {exc}") from exc
