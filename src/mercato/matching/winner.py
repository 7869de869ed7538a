"""Which bids count, and which one wins (pure: no I/O, no clock, no randomness).

    >>> winner = choose_winner(compliant_offers, facts)          # doctest: +SKIP

A bid is *compliant* when :func:`check_bid` finds nothing wrong with it; among compliant
bids the lowest price wins, ties going to the better reputation score, then the larger
stake, then the lower address (so every requester picks the same winner from the same bids,
whatever order they arrived in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from mercato.domain.deals import Terms, job_leaf
from mercato.matching.scoring import ReputationLike, score_reputation

__all__ = ["Ask", "Offer", "ProviderFacts", "check_bid", "is_compliant", "rank", "choose_winner", "sort_key"]


@dataclass(frozen=True, slots=True)
class Ask:
    """What the requester asked for: the terms a bid must match.

    ``deadline`` and ``expiry`` are what the requester expects (its chain time plus
    ``deadline_s`` / ``accept_window_s``); a bid may differ by ``slack_s`` seconds because the
    provider read the chain clock at a slightly different moment.
    """

    requester: str
    spec_hash: bytes  # the 32 raw bytes of JobSpec.spec_hash()
    max_price: int
    min_collateral: int
    deadline: int
    expiry: int
    slack_s: int = 30
    # the verification terms every bid must carry unchanged (docs/SPEC.md §14.2)
    seed_hash: bytes = b"\x00" * 32
    audit_bps: int = 0
    audit_fee: int = 0


@dataclass(frozen=True, slots=True)
class Offer:
    """A received bid: its terms and the address its EIP-712 signature recovers to."""

    terms: Terms
    signer: str
    signature: bytes = b""
    endpoint: str = ""
    enc_key: bytes = b""  # the provider's registered box key: inputs are sealed to it

    @property
    def provider(self) -> str:
        """The bidding provider (``terms.provider``)."""
        return self.terms.provider


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """What the chain says about a provider when the bids are judged."""

    address: str
    registered: bool
    endpoint: str
    stake: int
    free_stake: int
    reputation: ReputationLike
    enc_key: bytes = b""  # the registry entry's X25519 public key (zero: none registered)

    @property
    def score(self) -> Fraction:
        """:func:`score_reputation` of the provider's counters."""
        return score_reputation(self.reputation)


def check_bid(offer: Offer, ask: Ask, facts: ProviderFacts | None) -> str | None:
    """Why ``offer`` is not compliant with ``ask``, or None when it is.

    The reason reads like a sentence fragment: ``"price 0.02 over your max_price"``-style
    text the SDK folds into its ``NoBids`` message.
    """
    t = offer.terms
    if offer.signer != t.provider:
        return f"bad signature (recovers to {offer.signer}, not the provider)"
    if t.requester != ask.requester:
        return f"bid is addressed to another requester ({t.requester})"
    if facts is None or not facts.registered:
        return "provider is not registered on-chain"
    if t.jobs != 1 or t.jobs_root != job_leaf(ask.spec_hash, t.price, t.collateral):
        return "jobs_root does not commit to this job's spec, price and collateral"
    if t.price > ask.max_price:
        return f"price {t.price} over your max_price {ask.max_price}"
    if t.collateral < ask.min_collateral:
        return f"collateral {t.collateral} below your min_collateral {ask.min_collateral}"
    if facts.free_stake < t.collateral:
        return f"free stake {facts.free_stake} does not cover its collateral {t.collateral}"
    if (t.seed_hash, t.audit_bps, t.audit_fee) != (ask.seed_hash, ask.audit_bps, ask.audit_fee):
        return "verification terms (seed_hash, audit_bps, audit_fee) differ from the RFQ's"
    return _check_times(t, ask)


def _check_times(t: Terms, ask: Ask) -> str | None:
    if abs(t.deadline - ask.deadline) > ask.slack_s:
        return f"deadline {t.deadline} is not the asked {ask.deadline} (±{ask.slack_s} s)"
    if t.expiry > t.deadline or abs(t.expiry - ask.expiry) > ask.slack_s:
        return f"expiry {t.expiry} is not the asked {ask.expiry} (±{ask.slack_s} s)"
    return None


def is_compliant(offer: Offer, ask: Ask, facts: ProviderFacts | None) -> bool:
    """Whether :func:`check_bid` finds nothing wrong."""
    return check_bid(offer, ask, facts) is None


def sort_key(offer: Offer, facts: Mapping[str, ProviderFacts]) -> tuple[int, Fraction, int, bytes, int, int]:
    """Ascending order of preference: price, then -score, -stake, address bytes, lane, nonce."""
    f = facts.get(offer.provider)
    score = f.score if f is not None else Fraction(0)
    stake = f.stake if f is not None else 0
    address = bytes.fromhex(offer.provider.removeprefix("0x"))
    return (offer.terms.price, -score, -stake, address, offer.terms.lane, offer.terms.nonce)


def rank(offers: Sequence[Offer], facts: Mapping[str, ProviderFacts]) -> list[Offer]:
    """``offers`` best first (see :func:`sort_key`); a total order, so permutations agree."""
    return sorted(offers, key=lambda o: sort_key(o, facts))


def choose_winner(offers: Sequence[Offer], facts: Mapping[str, ProviderFacts]) -> Offer | None:
    """The best of ``offers`` (which the caller has already checked with :func:`is_compliant`).

    Lowest price; ties: higher :func:`score_reputation`, then more stake, then the lower
    address. None when there is no offer.
    """
    ranked = rank(offers, facts)
    return ranked[0] if ranked else None
