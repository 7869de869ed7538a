"""matching.allocate: splitting a run's tasks over bulk quotes — table tests plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.matching import Bidder, Reputation, Share, allocate


def b(name: str, price: int = 10, capacity: int = 1, per_deal: int = 100, completed: int = 0,
      missed: int = 0) -> Bidder:
    return Bidder(name, price, capacity, per_deal, Reputation(completed=completed, missed=missed))


def split(tasks: int, bidders: list[Bidder]) -> dict[str, int]:
    return {s.provider: s.tasks for s in allocate(tasks, bidders)}


@pytest.mark.parametrize(("tasks", "bidders", "expected"), [
    # an even split by capacity among equal prices
    (60, [b("0xa", capacity=4), b("0xb", capacity=2)], {"0xa": 40, "0xb": 20}),
    (9, [b("0xa", capacity=1), b("0xb", capacity=1), b("0xc", capacity=1)], {"0xa": 3, "0xb": 3, "0xc": 3}),
    # cheapest filled first: the dearer provider only gets what the cheaper one has no room for
    (50, [b("0xdear", price=20, capacity=4), b("0xcheap", price=10, capacity=2, per_deal=4)],
     {"0xcheap": 8, "0xdear": 42}),
    (5, [b("0xdear", price=20, capacity=4), b("0xcheap", price=10, capacity=2)], {"0xcheap": 5}),
    # three price levels: the middle one fills before the top one gets anything
    (10, [b("0xa", price=1, capacity=1, per_deal=3), b("0xb", price=2, capacity=1, per_deal=3),
          b("0xc", price=3, capacity=1, per_deal=3)], {"0xa": 3, "0xb": 3, "0xc": 3}),
    # reputation breaks ties: the remainder goes to the better record
    (5, [b("0xa"), b("0xb", completed=10)], {"0xb": 3, "0xa": 2}),
    (1, [b("0xa", missed=1), b("0xb")], {"0xb": 1}),
    # ... then the lower address
    (1, [b("0xbb"), b("0xaa")], {"0xaa": 1}),
    # capacity limits: a bidder's fair share above its room is capped, the rest goes to the others
    (60, [b("0xa", capacity=4, per_deal=2), b("0xb", capacity=1)], {"0xa": 8, "0xb": 52}),
    (12, [b("0xa", capacity=3, per_deal=1), b("0xb", capacity=3, per_deal=2), b("0xc", capacity=1, per_deal=50)],
     {"0xa": 3, "0xb": 6, "0xc": 3}),
    # more tasks than room: every bidder full, the rest unallocated (a later round)
    (100, [b("0xa", capacity=2, per_deal=5), b("0xb", price=20, capacity=1, per_deal=5)], {"0xa": 10, "0xb": 5}),
])
def test_allocation_table(tasks: int, bidders: list[Bidder], expected: dict[str, int]) -> None:
    assert split(tasks, bidders) == expected


@pytest.mark.parametrize(("tasks", "bidders"), [
    (0, [b("0xa")]),
    (-3, [b("0xa")]),
    (5, []),
    (5, [b("0xa", capacity=0), b("0xb", per_deal=0)]),
])
def test_nothing_allocatable_is_empty(tasks: int, bidders: list[Bidder]) -> None:
    assert allocate(tasks, bidders) == []


def test_shares_come_best_first_with_their_price() -> None:
    shares = allocate(30, [b("0xc", price=30, per_deal=10), b("0xa", price=10, per_deal=10),
                           b("0xb", price=20, per_deal=10)])
    assert shares == [Share("0xa", 10, 10), Share("0xb", 10, 20), Share("0xc", 10, 30)]


def test_a_provider_may_bid_once() -> None:
    with pytest.raises(ValueError):
        allocate(3, [b("0xAA"), b("0xaa", price=5)])


bidders_st = st.lists(st.builds(b, name=st.sampled_from([f"0x{i:02x}" for i in range(8)]),
                                price=st.integers(0, 5), capacity=st.integers(0, 6), per_deal=st.integers(0, 8),
                                completed=st.integers(0, 3)),
                      max_size=8, unique_by=lambda x: x.provider)


@given(st.integers(0, 200), bidders_st, st.randoms())
def test_allocation_properties(tasks: int, bidders: list[Bidder], rnd: object) -> None:
    got = split(tasks, bidders)
    rooms = {x.provider: x.room for x in bidders}
    assert sum(got.values()) == min(tasks, sum(rooms.values()))  # as much as fits, never more
    assert all(0 < n <= rooms[p] for p, n in got.items())  # within room, no empty shares
    shuffled = list(bidders)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert split(tasks, shuffled) == got  # the order of the bids does not matter
    # nobody dearer gets a task while a cheaper one has room left
    for p, n in got.items():
        price = next(x.price_per_cu for x in bidders if x.provider == p)
        assert all(got.get(x.provider, 0) == x.room for x in bidders if x.price_per_cu < price)
