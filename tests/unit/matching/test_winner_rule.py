"""The winner rule and bid compliance: table tests plus properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from mercato.domain.deals import Terms, job_leaf
from mercato.matching import (
    Ask,
    Offer,
    ProviderFacts,
    Reputation,
    check_bid,
    choose_winner,
    is_compliant,
    min_collateral_for,
    rank,
    score_reputation,
)

REQ = Account.from_key("0x" + "11" * 32).address
ADDRS = sorted((Account.from_key(bytes([i + 1]) * 32).address for i in range(6)), key=lambda a: bytes.fromhex(a[2:]))
SPEC = b"\x42" * 32
NOW = 1_700_000_000
SEED_HASH = b"\x5d" * 32
ASK = Ask(REQ, SPEC, max_price=1_000, min_collateral=19_000, deadline=NOW + 600, expiry=NOW + 30,
          seed_hash=SEED_HASH, audit_bps=300, audit_fee=1_000)


def terms(provider: str, price: int = 500, collateral: int = 19_000, *, lane: int = 0, deadline: int = NOW + 600,
          expiry: int = NOW + 30, spec: bytes = SPEC, requester: str = REQ, seed_hash: bytes = SEED_HASH,
          audit_bps: int = 300, audit_fee: int = 1_000) -> Terms:
    return Terms(requester, provider, lane, 1, job_leaf(spec, price, collateral), 1, price, collateral,
                 deadline, expiry, seed_hash, audit_bps, audit_fee)


def facts(address: str, *, stake: int = 100_000, free: int | None = None, rep: Reputation = Reputation(),
          registered: bool = True) -> ProviderFacts:
    return ProviderFacts(address, registered, "http://x", stake, stake if free is None else free, rep)


def offer(provider: str, price: int = 500, **kw: object) -> Offer:
    return Offer(terms(provider, price, **kw), provider)  # type: ignore[arg-type]


@pytest.mark.parametrize(("bid", "fact", "reason"), [
    (offer(ADDRS[0]), facts(ADDRS[0]), None),
    (Offer(terms(ADDRS[0]), ADDRS[1]), facts(ADDRS[0]), "bad signature"),
    (offer(ADDRS[0], requester=ADDRS[2]), facts(ADDRS[0]), "another requester"),
    (offer(ADDRS[0]), None, "not registered"),
    (offer(ADDRS[0]), facts(ADDRS[0], registered=False), "not registered"),
    (offer(ADDRS[0], spec=b"\x43" * 32), facts(ADDRS[0]), "jobs_root"),
    (offer(ADDRS[0], price=1_001), facts(ADDRS[0]), "over your max_price"),
    (offer(ADDRS[0], collateral=18_999), facts(ADDRS[0]), "below your min_collateral"),
    (offer(ADDRS[0]), facts(ADDRS[0], free=18_999), "free stake"),
    (offer(ADDRS[0], deadline=NOW + 600 + 31), facts(ADDRS[0]), "deadline"),
    (offer(ADDRS[0], deadline=NOW + 600 - 30), facts(ADDRS[0]), None),
    (offer(ADDRS[0], expiry=NOW + 100), facts(ADDRS[0]), "expiry"),
    (offer(ADDRS[0], seed_hash=b"\x5e" * 32), facts(ADDRS[0]), "verification terms"),
    (offer(ADDRS[0], seed_hash=b"\x00" * 32), facts(ADDRS[0]), "verification terms"),
    (offer(ADDRS[0], audit_bps=299), facts(ADDRS[0]), "verification terms"),
    (offer(ADDRS[0], audit_bps=10_000), facts(ADDRS[0]), "verification terms"),  # even a safer one: not what was asked
    (offer(ADDRS[0], audit_fee=999), facts(ADDRS[0]), "verification terms"),
    (offer(ADDRS[0], audit_fee=1_001), facts(ADDRS[0]), "verification terms"),
])
def test_check_bid(bid: Offer, fact: ProviderFacts | None, reason: str | None) -> None:
    got = check_bid(bid, ASK, fact)
    assert (got is None) if reason is None else (got is not None and reason in got)
    assert is_compliant(bid, ASK, fact) is (reason is None)


def test_lowest_price_wins() -> None:
    offers = [offer(ADDRS[0], 700), offer(ADDRS[1], 300), offer(ADDRS[2], 500)]
    assert choose_winner(offers, {a: facts(a) for a in ADDRS}) == offers[1]


def test_ties_by_reputation_then_stake_then_address() -> None:
    a, b, c = ADDRS[0], ADDRS[1], ADDRS[2]
    offers = [offer(c), offer(b), offer(a)]
    same = {x: facts(x) for x in (a, b, c)}
    assert choose_winner(offers, same).provider == a  # type: ignore[union-attr]  # lowest address
    richer = same | {c: facts(c, stake=200_000)}
    assert choose_winner(offers, richer).provider == c  # type: ignore[union-attr]
    trusted = richer | {b: facts(b, rep=Reputation(completed=3))}
    assert choose_winner(offers, trusted).provider == b  # type: ignore[union-attr]


def test_no_offers_no_winner() -> None:
    assert choose_winner([], {}) is None


@pytest.mark.parametrize(("rep", "score"), [
    (Reputation(), Fraction(1, 2)),
    (Reputation(completed=10), Fraction(11, 12)),
    (Reputation(completed=10, missed=1, slashed=1), Fraction(11, 16)),
    (Reputation(missed=1), Fraction(1, 6)),
    (Reputation(completed=1, volume=10**12), Fraction(2, 3)),
])
def test_score_reputation(rep: Reputation, score: Fraction) -> None:
    assert score_reputation(rep) == score


def test_min_collateral_follows_the_security_rule() -> None:
    assert min_collateral_for(1_000_000) == 19_000_000
    assert min_collateral_for(1, audit_probability_bps=3_000) == 3  # 7/3 rounded up
    with pytest.raises(ValueError):
        min_collateral_for(1, audit_probability_bps=0)


offers_st = st.lists(
    st.tuples(st.integers(0, len(ADDRS) - 1), st.integers(0, 5), st.integers(0, 3)),
    min_size=1, max_size=12,
).map(lambda xs: [Offer(terms(ADDRS[i], price, lane=lane), ADDRS[i]) for i, price, lane in xs])
facts_st = st.fixed_dictionaries({a: st.builds(
    lambda s, c, m: facts(a, stake=s, rep=Reputation(completed=c, missed=m)),
    st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)) for a in ADDRS})


@given(offers_st, facts_st, st.randoms())
def test_winner_is_cheapest_and_order_free(offers: list[Offer], fx: dict[str, ProviderFacts], rnd: object) -> None:
    winner = choose_winner(offers, fx)
    assert winner is not None
    assert winner.terms.price == min(o.terms.price for o in offers)
    shuffled = list(offers)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert choose_winner(shuffled, fx) == winner
    assert rank(shuffled, fx) == rank(offers, fx)
    ties = [o for o in offers if o.terms.price == winner.terms.price]
    assert all(fx[winner.provider].score >= fx[o.provider].score for o in ties)
