"""mercato.matching: the pure market rules — which bids count, who wins, what collateral is safe.

    >>> from mercato.matching import Reputation, score_reputation, min_collateral_for
    >>> score_reputation(Reputation(completed=3)), min_collateral_for(5)
    (Fraction(4, 5), 95)

``allocate`` splits a run of many tasks across providers' bulk quotes (``Market.map``).

No I/O: the requester SDK gathers the facts (bids, recovered signers, registry entries) and
asks these functions; the simulation calls the very same ones.
"""

from mercato.matching.allocation import Bidder, Share, allocate
from mercato.matching.scoring import (
    MISS_WEIGHT,
    Reputation,
    ReputationLike,
    min_collateral_for,
    score_reputation,
)
from mercato.matching.winner import (
    Ask,
    Offer,
    ProviderFacts,
    check_bid,
    choose_winner,
    is_compliant,
    rank,
    sort_key,
)

__all__ = [
    "MISS_WEIGHT",
    "Ask",
    "Bidder",
    "Offer",
    "ProviderFacts",
    "Reputation",
    "ReputationLike",
    "Share",
    "allocate",
    "check_bid",
    "choose_winner",
    "is_compliant",
    "min_collateral_for",
    "rank",
    "score_reputation",
    "sort_key",
]
