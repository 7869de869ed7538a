# pragma version ~=0.4.3
"""
@title The lottery, settlement, and the court's doors into money
@custom:contract-name settlement
@license MIT
@notice The Market's half of verification (SPEC §14). Every committed deal
        goes through a lottery before it can be paid: `draw` reveals the
        requester's seed and, with the beacon (the hash of block
        committed_block + beacon_delay), decides whether the deal is audited.
        `audit_by_default` and `challenge` start audits too. An audited deal
        is handed to the court (contracts/court.vy), a second contract this
        one creates at deployment from a blueprint and trusts by address
        alone; `finalize` pays CLEARED deals, and AUDITED deals whose audit
        the court reports PASSED, once the challenge window is over.

        The court holds no money. It reaches money through four doors,
        each callable by the court only:
            bond_seat     lock a drawn auditor's fee-sized bond (refused when
                          its free stake is smaller: it is not seated)
            release_seat  free the bond once the seat committed
            penalize      burn a seat's penalty (min(free stake, fee), or the
                          whole stake of a seat that committed and went silent)
            close_audit   apply a verdict: forfeit the losers' stake, split the
                          pool, pay the audit fee, refund and free the lane on
                          FAILED and VOID
        Deal figures passed to `close_audit` are those the Market handed the
        court in `open_audit`; forfeits are bounded by what each loser holds.

        Nothing here calls the token. The court is called only after the
        Market's own writes for the deal (the status change), and its calls
        back in touch only the loser's and the parties' balances.
"""

from . import errors

from . import accounts
from . import staking
from . import deals as book
uses: accounts
uses: staking
uses: book


struct AuditParams:
    audit_floor_bps: uint256
    collusion_bps: uint256
    bond_lambda_bps: uint256
    beacon_delay: uint256
    draw_blocks: uint256
    audit_period: uint256
    committee_size: uint256
    epoch_blocks: uint256


interface Court:
    def open_audit(deal_id: bytes32, requester: address, provider: address, lane: uint256, nonce: uint256, jobs_root: bytes32, price: uint256, collateral: uint256, fee: uint256, seal: bytes32, randomness: bytes32): nonpayable
    def verdict(deal_id: bytes32) -> (uint256, bytes32): view


event DealDrawn:
    deal_id: indexed(bytes32)
    audited: bool
    # 0 lottery, 1 default (seed withheld), 2 challenge
    reason: uint256


# every payment to an auditor (the audit fee, a prover's share) or to the
# requester from a forfeited pool
event BountyPaid:
    deal_id: indexed(bytes32)
    to: indexed(address)
    amount: uint256


event Burned:
    deal_id: indexed(bytes32)
    amount: uint256


event DealFinalized:
    deal_id: indexed(bytes32)


# audit phases as the court reports them (contracts/modules/audits.vy)
PHASE_PASSED: constant(uint256) = 3
PHASE_FAILED: constant(uint256) = 4
PHASE_VOID: constant(uint256) = 5

REASON_LOTTERY: constant(uint256) = 0
REASON_DEFAULT: constant(uint256) = 1
REASON_CHALLENGE: constant(uint256) = 2

# the court's seats (first auditor + committee of up to 5); losers add the provider
_SEATS: constant(uint256) = 6
_LOSERS: constant(uint256) = _SEATS + 1
_MAX_DRAW_BLOCKS: constant(uint256) = 240
_BPS: constant(uint256) = 10_000
_NONCE_MASK: constant(uint256) = 2**64 - 1
_HASH_MASK: constant(uint256) = max_value(uint256) - (2**64 - 1)
_MAX_BATCH: constant(uint256) = 32


beacon_delay: public(immutable(uint256))
draw_blocks: public(immutable(uint256))
court: public(immutable(Court))


@deploy
def __init__(beacon_delay_: uint256, draw_blocks_: uint256, court_: address):
    """
    @dev Fixes the lottery's timing and the court forever.
    @param beacon_delay_ k: the lottery's beacon is the hash of block committed_block + k.
    @param draw_blocks_ Blocks after the beacon block during which `draw` is accepted (1..240).
    @param court_ The court, created by the Market's constructor.
    """
    if not (draw_blocks_ != 0 and draw_blocks_ <= _MAX_DRAW_BLOCKS):
        errors._fail("audits: draw window out of range")
    beacon_delay = beacon_delay_
    draw_blocks = draw_blocks_
    court = Court(court_)


@external
def draw(deals: DynArray[book.Deal, _MAX_BATCH], seeds: DynArray[bytes32, _MAX_BATCH]):
    """
    @dev Runs the lottery of committed, undrawn deals: with
         r = keccak256(abi_encode(seed, blockhash(committed_block + k), deal_id))
         a deal is audited iff r mod 10000 < audit_bps (status AUDITED, an
         audit starts with randomness r), else CLEARED. Anyone may call once
         the beacon block is past and within `draw_blocks` after it. All or nothing.
    @param deals The deals as stored (committed, status UNDRAWN).
    @param seeds The requester's secret seed of each deal (keccak256(seed) = seed_hash).
    """
    if len(deals) != len(seeds):
        errors._fail("deals: length mismatch")
    for i: uint256 in range(len(deals), bound=_MAX_BATCH):
        # index, no local copy of the Deal (see deals._MAX_BATCH)
        word: uint256 = self._committed_word(deals[i])
        if deals[i].status != book.UNDRAWN:
            errors._fail("deals: already drawn")
        if keccak256(seeds[i]) != deals[i].terms.seed_hash:
            errors._fail("deals: bad seed")
        beacon_block: uint256 = deals[i].committed_block + beacon_delay
        if block.number <= beacon_block:
            errors._fail("deals: beacon not ready")
        if block.number > beacon_block + draw_blocks:
            errors._fail("deals: draw window over")
        deal_id: bytes32 = book._deal_id(deals[i].terms.provider, deals[i].terms.lane, deals[i].terms.nonce)
        # draw_blocks <= 240: the beacon block is inside blockhash's 256-block window
        r: bytes32 = keccak256(abi_encode(seeds[i], blockhash(beacon_block), deal_id))
        if convert(r, uint256) % _BPS < deals[i].terms.audit_bps:
            self._restatus(deals[i], word, book.AUDITED)
            log DealDrawn(deal_id=deal_id, audited=True, reason=REASON_LOTTERY)
            self._start(deals[i], deal_id, r)
        else:
            self._restatus(deals[i], word, book.CLEARED)
            log DealDrawn(deal_id=deal_id, audited=False, reason=REASON_LOTTERY)


@external
def audit_by_default(deal: book.Deal):
    """
    @dev Starts an audit of a committed deal nobody drew in time (a requester
         withholding its seed gains nothing). Anyone, once
         block.number > committed_block + k + draw_blocks. The audit's
         randomness is keccak256(abi_encode(deal_id, 1)): its seats come
         from the court's epoch beacon (the hash of the block before the
         epoch began), so a caller picks at most which epoch, never which block.
    @param deal The deal as stored (committed, status UNDRAWN).
    """
    word: uint256 = self._committed_word(deal)
    if deal.status != book.UNDRAWN:
        errors._fail("deals: already drawn")
    last: uint256 = deal.committed_block + beacon_delay + draw_blocks
    if block.number <= last:
        errors._fail("deals: draw window open")
    deal_id: bytes32 = book._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce)
    r: bytes32 = keccak256(abi_encode(deal_id, REASON_DEFAULT))
    self._restatus(deal, word, book.AUDITED)
    log DealDrawn(deal_id=deal_id, audited=True, reason=REASON_DEFAULT)
    self._start(deal, deal_id, r)


@external
def challenge(deal: book.Deal):
    """
    @dev The requester starts an audit (paid by the escrowed fee) of a
         committed deal that is UNDRAWN or CLEARED, while
         now < committed_at + challenge_window, once the deal's beacon block
         (committed_block + k) is past. The audit's randomness is
         keccak256(abi_encode(deal_id, 2)): its seats come from the court's
         epoch beacon, so the requester chooses whether to challenge, and at
         most in which epoch, never which block seats its auditor.
    @param deal The deal as stored.
    """
    if msg.sender != deal.terms.requester:
        errors._fail("deals: not requester")
    word: uint256 = self._committed_word(deal)
    if deal.status == book.AUDITED:
        errors._fail("deals: already audited")
    if block.timestamp >= deal.committed_at + book.challenge_window:
        errors._fail("deals: challenge window over")
    beacon_block: uint256 = deal.committed_block + beacon_delay
    if block.number <= beacon_block:
        errors._fail("deals: beacon not ready")
    deal_id: bytes32 = book._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce)
    r: bytes32 = keccak256(abi_encode(deal_id, REASON_CHALLENGE))
    self._restatus(deal, word, book.AUDITED)
    log DealDrawn(deal_id=deal_id, audited=True, reason=REASON_CHALLENGE)
    self._start(deal, deal_id, r)


@external
def finalize(deals: DynArray[book.Deal, _MAX_BATCH]):
    """
    @dev Settles committed deals whose challenge window is over and which are
         CLEARED (the audit fee goes back to the requester) or AUDITED with
         the court's audit PASSED (the fee was paid at resolution): pays each provider
         the price (into earnings), unlocks the collateral and frees the lane
         (keeping its nonce). Anyone may call; all or nothing.
    @param deals The deals as stored.
    """
    for i: uint256 in range(len(deals), bound=_MAX_BATCH):
        # index, not `for deal in deals`, and no local copy of the Deal: the
        # hash is taken in _hash_bits' frame, low in memory (see deals._MAX_BATCH)
        provider: address = deals[i].terms.provider
        lane: uint256 = deals[i].terms.lane
        nonce: uint256 = deals[i].terms.nonce
        bits: uint256 = book._hash_bits(deals[i])
        word: uint256 = book._lanes[provider][lane]
        # written right after the read (one slot computation); a failing check reverts it
        book._lanes[provider][lane] = word & _NONCE_MASK
        book._require_open(word, nonce, bits)
        if deals[i].seal == empty(bytes32):
            errors._fail("deals: not committed")
        status: uint256 = deals[i].status
        deal_id: bytes32 = book._deal_id(provider, lane, nonce)
        claim: bytes32 = empty(bytes32)
        if status == book.AUDITED:
            phase: uint256 = 0
            phase, claim = staticcall court.verdict(deal_id)
            if phase != PHASE_PASSED:
                errors._fail("deals: audit pending")
        else:
            if status != book.CLEARED:
                errors._fail("deals: not drawn")
        # committed_at is a past block's timestamp (the hash proves it), the window at most a year: no overflow
        if block.timestamp < unsafe_add(deals[i].committed_at, book.challenge_window):
            errors._fail("deals: challenge window open")
        jobs: uint256 = deals[i].terms.jobs
        if deals[i].terms.requester == provider:
            jobs = 0
        refund: uint256 = 0
        upheld: bool = False
        if status == book.CLEARED:
            refund = deals[i].terms.audit_fee
        else:
            upheld = claim != empty(bytes32)
        # jail means stop: a provider proven wrong is paid only for deals an auditor upheld
        if not staking._settle(provider, deals[i].terms.collateral, deals[i].terms.price, jobs, upheld):
            refund += deals[i].terms.price
        if refund != 0:
            accounts._credit(deals[i].terms.requester, refund)
        log DealFinalized(deal_id=deal_id)


@external
def bond_seat(seat: address, fee: uint256) -> bool:
    """
    @dev The court only, for each auditor it draws: locks `fee` of the
         seat's free stake until it commits (`release_seat`) or misses
         (`penalize` takes it); False when its free stake is smaller (the
         court then draws someone else).
    @param seat The drawn auditor.
    @param fee The deal's audit fee.
    @return bool Locked.
    """
    if msg.sender != court.address:
        errors._fail("deals: not the court")
    return staking._bond_seat(seat, fee)


@external
def release_seat(seat: address, fee: uint256):
    """
    @dev The court only: a seat committed; its bond is free again (its
         silence from now on costs its whole stake instead).
    @param seat The auditor.
    @param fee The deal's audit fee.
    """
    if msg.sender != court.address:
        errors._fail("deals: not the court")
    staking._unlock(seat, fee)


@external
def penalize(deal_id: bytes32, seat: address, fee: uint256, whole: bool) -> uint256:
    """
    @dev The court only: a seat missed its phase. It pays its whole stake
         (`whole`: it committed and went silent, as a liar would) or the bond
         locked when it was drawn (it never committed: the fee, unless it was
         jailed since); either way burned, never paid to a party of the deal,
         who could cause the miss.
    @param deal_id The audited deal (for the event).
    @param seat The seat that missed.
    @param fee The deal's audit fee.
    @param whole Forfeit the whole stake.
    @return uint256 The penalty.
    """
    if msg.sender != court.address:
        errors._fail("deals: not the court")
    penalty: uint256 = 0
    if whole:
        penalty = staking._forfeit_all(seat)
        staking.burned += penalty
    else:
        # the bond comes back to free stake and is taken from there (nothing when jailed)
        staking._unlock(seat, fee)
        penalty = min(staking._free(seat), fee)
        if penalty != 0:
            staking._slash(seat, penalty, empty(address))
    if penalty != 0:
        log Burned(deal_id=deal_id, amount=penalty)
    return penalty


@external
def close_audit(
    deal_id: bytes32,
    requester: address,
    provider: address,
    lane: uint256,
    nonce: uint256,
    price: uint256,
    collateral: uint256,
    fee: uint256,
    outcome: uint256,
    losers: DynArray[address, _LOSERS],
    provers: DynArray[address, _SEATS],
    fee_to: address,
):
    """
    @dev The court only: applies a verdict. Each loser forfeits its whole
         stake and is jailed; the pool P splits P/2 among the provers (equal
         shares), P/4 to the requester, the rest burned (the provers' half
         goes to the requester when there is none). The audit fee goes to
         `fee_to` (the first auditor, when it held the winning claim), else
         back to the requester. FAILED and VOID refund the price and free the
         lane; VOID also unlocks the collateral. PASSED waits for `finalize`.
    @param deal_id The audited deal.
    @param requester The deal's requester.
    @param provider The deal's provider.
    @param lane The deal's lane.
    @param nonce The deal's nonce.
    @param price The deal's price.
    @param collateral The deal's collateral.
    @param fee The deal's audit fee.
    @param outcome PHASE_PASSED, PHASE_FAILED or PHASE_VOID.
    @param losers Accounts that forfeit (the provider first on FAILED).
    @param provers Seats that held the winning claim.
    @param fee_to Who earned the audit fee, or the zero address.
    """
    if msg.sender != court.address:
        errors._fail("deals: not the court")
    pool: uint256 = 0
    for loser: address in losers:
        pool += staking._forfeit_all(loser)
    to_requester: uint256 = 0
    if fee_to != empty(address):
        self._pay(deal_id, fee_to, fee)
    else:
        to_requester = fee
    if pool != 0:
        half: uint256 = pool // 2
        quarter: uint256 = pool // 4
        paid: uint256 = quarter
        if len(provers) == 0:
            paid += half
            self._pay(deal_id, requester, half + quarter)
        else:
            share: uint256 = half // len(provers)
            for prover: address in provers:
                self._pay(deal_id, prover, share)
            paid += share * len(provers)
            self._pay(deal_id, requester, quarter)
        burnt: uint256 = pool - paid
        staking.burned += burnt
        log Burned(deal_id=deal_id, amount=burnt)
    if outcome != PHASE_PASSED:
        to_requester += price
        book._lanes[provider][lane] = nonce
        staking._leave(provider, price)
        if outcome == PHASE_VOID:
            staking._unlock(provider, collateral)
    if to_requester != 0:
        accounts._credit(requester, to_requester)



@internal
@view
def _committed_word(deal: book.Deal) -> uint256:
    """
    @dev Reverts unless `deal` is its lane's open deal and committed.
    @param deal The deal.
    @return uint256 Its lane word.
    """
    word: uint256 = book._lanes[deal.terms.provider][deal.terms.lane]
    book._require_open(word, deal.terms.nonce, book._hash_bits(deal))
    if deal.seal == empty(bytes32):
        errors._fail("deals: not committed")
    return word


@internal
def _restatus(deal: book.Deal, word: uint256, status: uint256):
    """
    @dev Rewrites the lane word for `deal` with a new status (the hash of
         the Deal changes with it; the nonce stays).
    @param deal The deal as stored.
    @param word Its lane word.
    @param status CLEARED or AUDITED.
    """
    # abi_encode of the fields is abi_encode(Deal(...)) byte for byte (all static)
    bits: uint256 = convert(
        keccak256(abi_encode(deal.terms, deal.seal, deal.committed_at, deal.committed_block, status)), uint256
    ) & _HASH_MASK
    book._lanes[deal.terms.provider][deal.terms.lane] = bits | (word & _NONCE_MASK)


@internal
def _start(deal: book.Deal, deal_id: bytes32, randomness: bytes32):
    """
    @dev Hands an AUDITED deal to the court, which records it and draws the
         first auditor. The audit fee stays in the Market until the verdict.
    @param deal The deal (now AUDITED).
    @param deal_id Its id.
    @param randomness The audit's randomness (sortition seed).
    """
    extcall court.open_audit(
        deal_id,
        deal.terms.requester,
        deal.terms.provider,
        deal.terms.lane,
        deal.terms.nonce,
        deal.terms.jobs_root,
        deal.terms.price,
        deal.terms.collateral,
        deal.terms.audit_fee,
        deal.seal,
        randomness,
    )



@internal
def _pay(deal_id: bytes32, to: address, amount: uint256):
    """
    @dev Credits `amount` to `to`'s escrow account (withdrawable like a requester's balance).
    @param deal_id The audited deal (for the event).
    @param to The receiver.
    @param amount Token base units.
    """
    if amount == 0:
        return
    accounts._credit(to, amount)
    log BountyPaid(deal_id=deal_id, to=to, amount=amount)
