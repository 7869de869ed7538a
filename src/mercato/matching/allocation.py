"""Splitting a run of many tasks across bulk quotes (pure: no I/O, no clock, no randomness).

    >>> a = Bidder("0xaa", price_per_cu=10, capacity=4, max_tasks_per_deal=8)
    >>> b = Bidder("0xbb", price_per_cu=10, capacity=2, max_tasks_per_deal=8)
    >>> [(s.provider, s.tasks) for s in allocate(30, [a, b])]
    [('0xaa', 20), ('0xbb', 10)]

A bidder is one provider's bulk quote: a unit price, a ``capacity`` (tasks it runs at once, one
per free lane) and the most tasks one batch deal may hold. Its *room* is what it can hold at
once: ``capacity × max_tasks_per_deal``. The rule, applied to what a requester still has to place:

1. price levels, cheapest first: a level gets nothing until every cheaper level is full;
2. within a level whose room covers what is left, the tasks are split in proportion to
   capacity (an even split by lanes), none above its room (what a full bidder cannot take is
   split again among the others); the units left by rounding go by the largest remainder,
   then the better :func:`~mercato.matching.scoring.score_reputation`, then the lower address;
3. a level whose room does not cover what is left is filled to the brim, and the next level
   takes the rest; what no level can hold is left unallocated (for a later round, when lanes
   free up).

The same bidders give the same split whatever their order, so it is easy to reason about and
to test. ``requester.mapper`` calls it each time lanes free up, with the free lanes as capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import groupby

from mercato.matching.scoring import Reputation, ReputationLike, score_reputation

__all__ = ["Bidder", "Share", "allocate"]


@dataclass(frozen=True, slots=True)
class Bidder:
    """One provider's standing offer for a run: its unit price, free capacity and batch cap."""

    provider: str
    price_per_cu: int
    capacity: int  # tasks at once (free lanes: each lane runs one task at a time)
    max_tasks_per_deal: int
    reputation: ReputationLike = field(default_factory=Reputation)

    @property
    def room(self) -> int:
        """How many tasks it can hold at once: one batch per free lane."""
        return max(0, self.capacity) * max(0, self.max_tasks_per_deal)

    @property
    def score(self) -> Fraction:
        """:func:`score_reputation` of its counters: the tie-breaker."""
        return score_reputation(self.reputation)


@dataclass(frozen=True, slots=True)
class Share:
    """``tasks`` of the run go to ``provider`` at ``price_per_cu``."""

    provider: str
    tasks: int
    price_per_cu: int


def _preference(b: Bidder) -> tuple[int, Fraction, str]:
    return (b.price_per_cu, -b.score, b.provider.lower())


def allocate(tasks: int, bidders: Sequence[Bidder]) -> list[Share]:
    """How many of ``tasks`` each bidder gets, cheapest (then best reputation, then lowest
    address) first; bidders that get nothing are left out. The shares may add up to less than
    ``tasks`` when the bidders' rooms together are smaller. ``ValueError`` on a provider listed twice."""
    names = [b.provider.lower() for b in bidders]
    if len(set(names)) != len(names):
        raise ValueError("each provider may bid once in an allocation")
    usable = sorted((b for b in bidders if b.room > 0 and b.price_per_cu >= 0), key=_preference)
    left = max(0, tasks)
    shares: list[Share] = []
    for price, level in groupby(usable, key=lambda b: b.price_per_cu):
        if left == 0:
            break
        members = list(level)
        room = sum(b.room for b in members)
        got = {b.provider: b.room for b in members} if room <= left else _split(left, members)
        left -= sum(got.values())
        shares += [Share(b.provider, got[b.provider], price) for b in members if got[b.provider] > 0]
    return shares


def _split(n: int, level: list[Bidder]) -> dict[str, int]:
    """``n`` tasks over one price level whose room exceeds ``n``: by capacity, capped at room."""
    got = {b.provider: 0 for b in level}
    active = list(level)
    while True:  # water-filling: a bidder whose fair share is at least its room takes its room
        total = sum(b.capacity for b in active)
        full = [b for b in active if n * b.capacity >= b.room * total]
        if not full:
            break
        for b in full:
            got[b.provider] = b.room
            n -= b.room
        active = [b for b in active if b not in full]
        if not active or n == 0:
            return got
    total = sum(b.capacity for b in active)
    for b in active:  # each exact share is below its room, so its floor + 1 still fits
        got[b.provider] = n * b.capacity // total
    rest = n - sum(got[b.provider] for b in active)
    order = sorted(active, key=lambda b: (-(n * b.capacity % total), -b.score, b.provider.lower()))
    for b in order[:rest]:
        got[b.provider] += 1
    return got
