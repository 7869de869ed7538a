"""Attackers against the audit game (issue "Trust layer v2"), each trying and losing.

Each test names the attack class of the review it covers:
  1  auditor draws can be ground by moving stake after the randomness is known
  2  penalties flow to a party who can cause them
  4  zero-price deals pad the bond
  5  dominant stake escapes audits
  7  the caller picks the randomness
  8  committee liars hold a free option (in test_audit.py / test_dispute.py: a committed, silent
     seat forfeits its stake)
  9  an auditor that locks all its stake dodges the penalty; one free self-deal sets `completed` to 2**32 - 1
"""

import boa
import pytest
from eth_utils import keccak
from contracts_kit import (
    AUDIT_FEE, BEACON_DELAY, CHALLENGE_WINDOW, DEPOSIT, DRAW_BLOCKS, MAX_AUDIT_ROUNDS, PASSED, PRICE, STAKE, add_provider,
    audit_view, block_number, clear, commit_as, deal_id_of, deploy_market, events, fund, make_party, min_bond,
    next_epoch, open_and_commit, open_committed, past_deadline, reveal_as, start_audit,
)

# the production epoch: sortition weights fixed for 256 blocks, the longest blockhash can reach back
EPOCH = 256


@pytest.fixture
def market(token):
    """These attackers meet a market deployed as production would be (the kit's default epoch is one block)."""
    return deploy_market(token, epoch_blocks=EPOCH)


def _absolute_block_hashes() -> None:
    """BLOCKHASH(n) a function of n alone (the kit's fixed list makes it one of how far back n is, which
    would hide the very thing these tests look at: whether the caller's block changes the seed)."""
    head = block_number()
    boa.env.evm.patch.prev_hashes = [keccak(b"block %d" % (head - 1 - i)) for i in range(256)]


def _first_seat_if_challenged_at(market, requester, deal, block: int) -> str:
    """Who the requester's challenge seats when it is sent at `block` (the chain is rolled back after)."""
    with boa.env.anchor():
        boa.env.time_travel(blocks=block - block_number(), block_delta=0)
        _absolute_block_hashes()
        with boa.env.prank(requester.address):
            market.challenge(deal)
        return audit_view(market, deal_id_of(dict(zip(_FIELDS, deal[0]))))["seats"][0]


_FIELDS = ("requester", "provider", "lane", "nonce", "jobs_root", "jobs", "price", "collateral", "deadline",
           "expiry", "seed_hash", "audit_bps", "audit_fee")


def test_class7_a_challenger_cannot_pick_its_auditor_by_timing(market, requester, auditors, make_terms):
    """Before: challenge seeded the draw with blockhash(block.number - 1), so a requester could send it at
    whichever block seated the auditor it wanted. Now seats come from the epoch's beacon: every block of an
    epoch (256 here) seats the same auditor."""
    next_epoch(market)
    deal = open_committed(market, make_terms(), requester)
    beacon = deal[3] + BEACON_DELAY
    seats = {_first_seat_if_challenged_at(market, requester, deal, beacon + d) for d in (1, 2, 3, 5, 8, 13, 40, 90, 250)}
    assert len(seats) == 1
    assert seats.pop() in {a.address for a in auditors}


def test_class7_a_late_default_audit_cannot_pick_its_auditor_by_timing(market, requester, auditors, make_terms):
    """Before: once 256 blocks had passed, audit_by_default used the previous block's hash, so whoever sent
    it chose among every later block. Now every block of an epoch seats the same auditor."""
    deal = open_committed(market, make_terms(audit_bps=10_000), requester)
    last = deal[3] + BEACON_DELAY + DRAW_BLOCKS
    start = (last // EPOCH + 1) * EPOCH  # the first epoch that begins after the draw window
    deal_id = deal_id_of(make_terms())
    seats = set()
    for d in (0, 1, 50, 120, 255):
        with boa.env.anchor():
            boa.env.time_travel(blocks=start + d - block_number(), block_delta=0)
            _absolute_block_hashes()
            market.audit_by_default(deal)
            seats.add(audit_view(market, deal_id)["seats"][0])
    assert len(seats) == 1


def _seat_after_move(market, sybil, deal, move: int) -> str:
    """The first seat of a default audit of `deal` after `sybil` moves its stake by `move` base units in the
    same epoch, just before the call (the chain is rolled back after)."""
    with boa.env.anchor():
        with boa.env.prank(sybil.address):
            if move > 0:
                market.stake(move)
            elif move < 0:
                market.unbond(-move)
        market.audit_by_default(deal)
        return audit_view(market, deal_id_of(dict(zip(_FIELDS, deal[0]))))["seats"][0]


def test_class1_stake_moved_after_the_randomness_is_known_changes_no_seat(token, market, requester, provider,
                                                                          auditors, make_terms):
    """Before: seats were drawn over the live stake tree from randomness public before the draw, so a
    cheating provider moved its sybil's stake by a few base units until the sybil was seated (measured: a
    1.6 % sybil seated after a 41-unit change). Now a draw reads the weights fixed when its epoch began and
    is seeded by the hash of the block before it, so every move the sybil makes seats the same auditor."""
    sybil = add_provider(token, market, 0x5B1, stake=STAKE // 60)
    fund(token, market, sybil.address, 10**6)
    deal = open_committed(market, make_terms(audit_bps=10_000), requester)
    last = deal[3] + BEACON_DELAY + DRAW_BLOCKS
    boa.env.time_travel(blocks=last + 1 - block_number(), block_delta=0)
    _absolute_block_hashes()
    # the default audit's randomness is public now: the attacker tries every move it can afford
    honest = _seat_after_move(market, sybil, deal, 0)
    seats = {_seat_after_move(market, sybil, deal, move) for move in (*range(1, 60), *range(-1, -60, -1), 10**6)}
    assert seats == {honest}
    assert honest != provider.address


def test_class1_a_stake_change_waits_for_the_next_epoch(token, market, requester, provider, auditors, make_terms):
    """The weight a draw uses is the one at the start of its epoch: a top-up (or a withdrawal) made during
    the epoch counts only from the next one, whose seed nobody knew when the change was made."""
    a = auditors[0]
    before = market.sortition_weight(a.address)
    fund(token, market, a.address, STAKE)
    with boa.env.prank(a.address):
        market.stake(STAKE)
    assert market.sortition_weight(a.address) == before
    boa.env.time_travel(blocks=EPOCH - 1 - block_number() % EPOCH, block_delta=0)
    assert market.sortition_weight(a.address) == before  # the epoch's last block
    boa.env.time_travel(blocks=1, block_delta=0)
    assert market.sortition_weight(a.address) == before + STAKE


def test_class5_a_dominant_provider_is_audited_by_someone_else(token, market, requester, provider, make_terms):
    """A provider holding 99 % of all stake used to be drawn as its own auditor 64 times in a row, and then
    the audit passed with nobody checking. Its interval is now cut out of the draw."""
    small = [add_provider(token, market, 0xD000 + i, stake=STAKE // 300) for i in range(3)]
    fund(token, market, provider.address, 290 * STAKE)
    with boa.env.prank(provider.address):
        market.stake(290 * STAKE)
    weights = [market.sortition_weight(a) for a in (provider.address, *(s.address for s in small))]
    share = weights[0] * 100 // sum(weights)
    assert share >= 99
    for lane in range(8):
        deal, deal_id = start_audit(market, make_terms(lane=lane, collateral=0), requester)
        seat = audit_view(market, deal_id)["seats"][0]
        assert seat in {s.address for s in small}
        assert audit_view(market, deal_id)["phase"] != PASSED


def test_class5_with_no_one_else_staked_the_audit_is_never_an_independent_pass(market, requester, provider,
                                                                                make_terms):
    """The only stake is the provider's: nobody independent exists. The audit ends PASSED with a zero claim,
    the mark of an unaudited deal (the SDK reports it as unaudited, never as audited)."""
    deal, deal_id = start_audit(market, make_terms(collateral=0), requester)
    (resolved,) = events(market, "AuditResolved")
    assert (resolved.outcome, resolved.claim) == (PASSED, b"\0" * 32)
    assert audit_view(market, deal_id)["seats"] == []
    assert market.audit_record(provider.address)[0] == 0  # a pass nobody checked counts for nothing


def test_class2_a_requester_and_provider_who_hide_the_job_gain_nothing_from_silent_auditors(
        market, requester, provider, auditors, make_terms):
    """The pair never serves the job, so every drawn auditor stays silent. Before, each silent auditor paid
    min(free, audit_fee) to the requester: a drain. Now the penalties are burned and the pair's books end
    exactly where they would have without the auditors."""
    deal, deal_id = start_audit(market, make_terms(), requester)
    seats, penalties = [], []
    for _ in range(MAX_AUDIT_ROUNDS):
        seats.append(audit_view(market, deal_id)["seats"][0])
        past_deadline(market, deal_id)
        market.advance(deal_id)
        penalties += [(m.auditor, m.penalty) for m in events(market, "AuditorMissed")]
    assert penalties == [(seat, AUDIT_FEE) for seat in seats]
    assert market.burned() == MAX_AUDIT_ROUNDS * AUDIT_FEE
    # the requester holds exactly what it holds once its audit fee came back: nothing more
    assert market.balance_of(requester.address) == DEPOSIT - PRICE
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    assert market.provider_info(provider.address)[8] == PRICE  # the provider: the price, nothing else
    assert all(market.provider_info(seat)[4] == STAKE - AUDIT_FEE for seat in seats)


def test_class9_free_and_self_deals_add_no_reputation(token, market, requester, provider, make_terms):
    """One free deal with 2**32 jobs used to set `completed` to its cap; a provider dealing with itself
    could farm it too. Reputation now counts jobs only of deals paying at least a base unit a job, with
    someone else."""
    free = make_terms(lane=0, jobs=2**32, price=0, audit_fee=0)
    drawn = [clear(market, open_and_commit(market, free, requester))]
    # a self-deal: the provider is its own requester
    fund(token, market, provider.address, PRICE)
    with boa.env.prank(provider.address):
        market.deposit(PRICE)
    selfish = make_terms(lane=1, requester=provider.address, audit_fee=0)
    drawn.append(clear(market, open_and_commit(market, selfish, provider)))
    drawn.append(clear(market, open_and_commit(market, make_terms(lane=2, jobs=3), requester)))
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize(drawn)
    completed, missed, slashed, volume = market.reputation(provider.address)
    assert completed == 3  # the paid deal's jobs only
    assert volume == 2 * PRICE  # earnings still count every price paid


def test_recut_nobody_but_the_court_reaches_money_and_nobody_but_the_market_opens_audits(market, requester, provider,
                                                                                          make_terms, auditors):
    """The re-cut's trust boundary: the court's doors into money (`penalize`, `close_audit`) and the
    Market's door into the court (`open_audit`) refuse every other caller, including the parties of a live
    audit, who would otherwise burn an auditor's stake, pay themselves a pool or restart an audit."""
    deal, deal_id = start_audit(market, make_terms(), requester)
    seat = audit_view(market, deal_id)["seats"][0]
    for attacker in (requester.address, provider.address, seat):
        with boa.env.prank(attacker):
            with boa.reverts("deals: not the court"):
                market.penalize(deal_id, seat, 10**30, True)
            with boa.reverts("deals: not the court"):
                market.close_audit(deal_id, attacker, provider.address, 0, 1, PRICE, 0, AUDIT_FEE, 4,
                                   [seat], [attacker], attacker)
            with boa.reverts("audits: not the market"):
                market.open_audit(deal_id, attacker, provider.address, 0, 1, b"\0" * 32, PRICE, 0, AUDIT_FEE,
                                  b"\1" * 32, b"\2" * 32)
            with boa.reverts("deals: not the court"):
                market.bond_seat(seat, 10**30)
            with boa.reverts("deals: not the court"):
                market.release_seat(seat, AUDIT_FEE)
    assert market.free_stake(seat) == STAKE - AUDIT_FEE  # its own bond, nothing more, nothing less
    assert audit_view(market, deal_id)["seats"][0] == seat


USDC = 10**6


def test_class4_zero_price_deals_no_longer_pad_the_bond(token, market, requester, make_terms):
    """Before: the bond rule counted open deals by number, so zero-price deals raised N and lowered the bond a
    stake had to post: 51 free deals let 200 USDC of stake open a 100 USDC deal whose rule alone needs
    5,556. The rule now counts deals on value (N_eff = max(1, V // m), m the largest price): the padding adds
    no value and no count, and the big deal is refused."""
    padder = add_provider(token, market, 0xBAD4, stake=200 * USDC)
    for lane in range(51):
        open_and_commit(market, make_terms(provider=padder.address, lane=lane, price=0, audit_fee=0, collateral=0),
                        requester)
    assert market.in_flight(padder.address) == (0, 51, 0)
    big = make_terms(provider=padder.address, lane=60, price=100 * USDC, audit_fee=0, collateral=0)
    with boa.reverts("deals: bond too small"):
        open_and_commit(market, big, requester)
    # the stake the rule needs for that one deal opens it, padding or not
    need = min_bond(100 * USDC, 1)
    assert 5_555 * USDC < need < 5_557 * USDC
    fund(token, market, padder.address, need - 200 * USDC)
    with boa.env.prank(padder.address):
        market.stake(need - 200 * USDC)
    open_and_commit(market, big, requester)
    assert market.in_flight(padder.address) == (100 * USDC, 52, 100 * USDC)


def test_class4_cheap_deals_add_value_not_count(token, market, requester, make_terms):
    """Padding with one-base-unit deals instead: each adds a unit of value and almost nothing to N_eff, so the
    big deal still needs (nearly) the stake it needs alone."""
    padder = add_provider(token, market, 0xBAD5, stake=200 * USDC)
    big = make_terms(provider=padder.address, lane=0, price=100 * USDC, audit_fee=0, collateral=0)
    for lane in range(1, 61):  # 60: by number, the old rule let 200 USDC carry them and the big deal
        open_and_commit(market, make_terms(provider=padder.address, lane=lane, price=1, audit_fee=0, collateral=0),
                        requester)
    with boa.reverts("deals: bond too small"):
        open_and_commit(market, big, requester)
    value, count, largest = market.in_flight(padder.address)
    assert (value, count, largest) == (60, 60, 1)


def _lock_all_free_stake(market, requester, make_terms, who: str, lane: int) -> None:
    """`who` opens a deal of its own whose collateral is every free unit of its stake."""
    open_and_commit(market, make_terms(provider=who, lane=lane, collateral=market.free_stake(who)), requester)
    assert market.free_stake(who) == 0


def test_class9_a_seat_that_locks_all_its_stake_still_pays_its_no_show(market, requester, auditors, make_terms):
    """Before: a silent auditor paid min(free stake, audit_fee), so one that locked all its stake as collateral
    of its own deals after being drawn paid nothing. A drawn seat now locks a fee-sized bond until it commits;
    the dodge leaves the bond in place and the no-show costs the fee."""
    deal, deal_id = start_audit(market, make_terms(), requester)
    seat = audit_view(market, deal_id)["seats"][0]
    assert market.free_stake(seat) == STAKE - AUDIT_FEE
    _lock_all_free_stake(market, requester, make_terms, seat, lane=7)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    (missed,) = events(market, "AuditorMissed")
    assert (missed.auditor, missed.penalty) == (seat, AUDIT_FEE)
    assert market.burned() == AUDIT_FEE and market.provider_info(seat)[4] == STAKE - AUDIT_FEE


def test_class9_an_auditor_with_no_free_stake_is_not_seated(market, requester, auditors, make_terms):
    """An auditor that cannot lock the bond (all its stake locked beforehand) is passed over: it can neither
    be seated for free nor block the draw."""
    for lane, a in enumerate(auditors[:5]):
        _lock_all_free_stake(market, requester, make_terms, a.address, lane=10 + lane)
    deal, deal_id = start_audit(market, make_terms(), requester)
    assert audit_view(market, deal_id)["seats"][0] == auditors[5].address
    # committing frees the bond again
    commit_as(market, auditors[5].address, deal_id)
    assert market.free_stake(auditors[5].address) == STAKE
