"""Every namespaced revert string the Mercato contracts can raise.

The Python client maps each of these to a typed exception (src/mercato/chain/reverts.py)
and tests that its mapping covers ``REVERT_STRINGS``; ``test_revert_strings.py`` checks
this list against the strings actually present in ``contracts/``.
"""

from __future__ import annotations

ACCOUNTS = (
    "accounts: zero token",
    "accounts: delay too long",
    "accounts: zero amount",
    "accounts: amount too large",
    "accounts: insufficient balance",
    "accounts: nothing pending",
    "accounts: withdrawal not ready",
    "accounts: token transfer failed",
)

STAKING = (
    "staking: delay too long",
    "staking: empty endpoint",
    "staking: zero amount",
    "staking: amount too large",
    "staking: insufficient free stake",
    "staking: nothing unbonding",
    "staking: unbond not ready",
    "staking: no earnings",
    "staking: audit floor out of range",
    "staking: collusion out of range",
    "staking: lambda out of range",
    "staking: jailed",
    "staking: bond in use",
)

DEALS = (
    "deals: window too long",
    "deals: penalty above 100%",
    "deals: not requester",
    "deals: not provider",
    "deals: no jobs",
    "deals: expiry after deadline",
    "deals: nonce out of range",
    "deals: amount out of range",
    "deals: bid expired",
    "deals: acceptance expired",
    "deals: empty seal",
    "deals: bad signature",
    "deals: lane busy",
    "deals: bid replayed",
    "deals: requester unfunded",
    "deals: provider not registered",
    "deals: insufficient free stake",
    "deals: already settled",
    "deals: unknown deal",
    "deals: already committed",
    "deals: deadline passed",
    "deals: not committed",
    "deals: challenge window open",
    "deals: deadline not passed",
    # SPEC §14: audit terms, bond rule, lottery and settlement after it
    "deals: no seed",
    "deals: audit probability out of range",
    "deals: provider jailed",
    "deals: bond too small",
    "deals: length mismatch",
    "deals: already drawn",
    "deals: bad seed",
    "deals: not the court",
    "deals: beacon not ready",
    "deals: draw window over",
    "deals: draw window open",
    "deals: already audited",
    "deals: challenge window over",
    "deals: not drawn",
    "deals: audit pending",
)

AUDITS = (
    "audits: draw window out of range",
    "audits: period too long",
    "audits: committee out of range",
    "audits: not the market",
    "audits: epoch out of range",
    "audits: wrong phase",
    "audits: phase over",
    "audits: phase not over",
    "audits: empty seal",
    "audits: not a seat",
    "audits: already committed",
    "audits: already revealed",
    "audits: bad reveal",
)

REVERT_STRINGS: tuple[str, ...] = ACCOUNTS + STAKING + DEALS + AUDITS
