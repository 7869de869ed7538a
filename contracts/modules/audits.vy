# pragma version ~=0.4.3
"""
@title Lottery, blind audits, disputes, slashing and settlement
@custom:contract-name audits
@license MIT
@notice Every committed deal goes through a lottery before it can be paid
        (SPEC §14). `draw` reveals the requester's seed; with the beacon
        (the hash of block committed_block + beacon_delay) it decides whether
        the deal is audited. An audited deal is re-executed blind by a
        stake-weighted auditor (commit, then reveal); a mismatch goes to a
        committee; the minority of all executions forfeits its whole stake
        and is jailed. `finalize` pays CLEARED deals and deals whose audit
        PASSED once the challenge window is over.

        Storage (the audited path is rare; it favours clarity over packing):
            _audits[deal_id]      one `Audit` record per audited deal: the deal's
                                  money fields (so commit/reveal/advance take only
                                  the id), the phase machine and up to six seats
                                  (seat 0 = the first auditor of the current
                                  round, seats 1.. = the dispute committee),
                                  each with its committed seal and revealed claim
            _drawn[deal_id][a]    true once `a` was drawn for the deal (never twice)
            _records[a]           audit_record counters, u32 each, saturating:
                                  passed | failed << 32 | disputes_lost << 64 |
                                  audits_done << 96 | no_shows << 128
            _flagged[jobs_root]   true once an audit of that workload was VOID
            (staking.burned       forfeited and penalty stake kept by the contract forever)

        Like the deal functions, nothing here calls out (blockhash and
        keccak are not calls), so no function takes the reentrancy lock.
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


struct Audit:
    requester: address
    provider: address
    lane: uint256
    nonce: uint256
    jobs_root: bytes32
    price: uint256
    collateral: uint256
    fee: uint256
    # the provider's committed seal (the deal's)
    seal: bytes32
    randomness: bytes32
    # sortition candidates tried so far (the draw counter)
    draws: uint256
    phase: uint256
    dispute: bool
    round: uint256
    deadline: uint256
    provider_claim: bytes32
    # the winning claim once resolved (zero for VOID and for a pass by default)
    claim: bytes32
    seats: DynArray[address, _SEATS]
    seals: bytes32[_SEATS]
    claims: bytes32[_SEATS]


# What an agent needs: am I a seat (seats), may I act now (phase, dispute:
# seat 0 acts outside a dispute, seats 1.. in it), have I committed (seals[i] != 0),
# must I reveal (phase REVEAL, seals[i] != 0, claims[i] == 0; the provider:
# provider_claim == 0), and by when (deadline).
struct AuditView:
    phase: uint256
    dispute: bool
    round: uint256
    deadline: uint256
    requester: address
    provider: address
    jobs_root: bytes32
    fee: uint256
    provider_seal: bytes32
    provider_claim: bytes32
    claim: bytes32
    seats: DynArray[address, _SEATS]
    seals: DynArray[bytes32, _SEATS]
    claims: DynArray[bytes32, _SEATS]


event DealDrawn:
    deal_id: indexed(bytes32)
    audited: bool
    # 0 lottery, 1 default (seed withheld), 2 challenge
    reason: uint256


event AuditorDrawn:
    deal_id: indexed(bytes32)
    auditor: indexed(address)
    seat: uint256
    deadline: uint256


event AuditCommitted:
    deal_id: indexed(bytes32)
    auditor: indexed(address)
    seal: bytes32


event ClaimRevealed:
    deal_id: indexed(bytes32)
    executor: indexed(address)
    result_root: bytes32
    fuel: uint256


event AuditorMissed:
    deal_id: indexed(bytes32)
    auditor: indexed(address)
    penalty: uint256


event AuditResolved:
    deal_id: indexed(bytes32)
    # 3 PASSED, 4 FAILED, 5 VOID (as phases)
    outcome: uint256
    claim: bytes32


# every payment to an auditor (the audit fee, a prover's share) or to the
# requester from a forfeited pool
event BountyPaid:
    deal_id: indexed(bytes32)
    to: indexed(address)
    amount: uint256


event Burned:
    deal_id: indexed(bytes32)
    amount: uint256


event WorkloadFlagged:
    jobs_root: indexed(bytes32)
    deal_id: bytes32


event DealFinalized:
    deal_id: indexed(bytes32)


PHASE_NONE: constant(uint256) = 0
PHASE_COMMIT: constant(uint256) = 1
PHASE_REVEAL: constant(uint256) = 2
PHASE_PASSED: constant(uint256) = 3
PHASE_FAILED: constant(uint256) = 4
PHASE_VOID: constant(uint256) = 5

REASON_LOTTERY: constant(uint256) = 0
REASON_DEFAULT: constant(uint256) = 1
REASON_CHALLENGE: constant(uint256) = 2

# first-auditor draws before an unanswered audit passes by default
MAX_AUDIT_ROUNDS: public(constant(uint256)) = 3

_MAX_COMMITTEE: constant(uint256) = 5
_SEATS: constant(uint256) = _MAX_COMMITTEE + 1
_MAX_TRIES: constant(uint256) = 64
_MAX_DRAW_BLOCKS: constant(uint256) = 240
_MAX_PERIOD: constant(uint256) = 365 * 86400
_BPS: constant(uint256) = 10_000
_NONCE_MASK: constant(uint256) = 2**64 - 1
_HASH_MASK: constant(uint256) = max_value(uint256) - (2**64 - 1)
_U32: constant(uint256) = 2**32 - 1
_MAX_BATCH: constant(uint256) = 32

# audit_record fields (bit offsets)
_PASSED: constant(uint256) = 0
_FAILED: constant(uint256) = 32
_LOST: constant(uint256) = 64
_DONE: constant(uint256) = 96
_NO_SHOW: constant(uint256) = 128


beacon_delay: public(immutable(uint256))
draw_blocks: public(immutable(uint256))
audit_period: public(immutable(uint256))
committee_size: public(immutable(uint256))

_audits: HashMap[bytes32, Audit]
_drawn: HashMap[bytes32, HashMap[address, bool]]
_records: HashMap[address, uint256]
_flagged: HashMap[bytes32, bool]


@deploy
def __init__(beacon_delay_: uint256, draw_blocks_: uint256, audit_period_: uint256, committee_size_: uint256):
    """
    @dev Fixes the lottery and audit timing forever (the bond rule's
         parameters live in staking).
    @param beacon_delay_ k: the lottery's beacon is the hash of block committed_block + k.
    @param draw_blocks_ Blocks after the beacon block during which `draw` is accepted (1..240).
    @param audit_period_ Seconds for each commit and each reveal phase (<= 365 days).
    @param committee_size_ Auditors drawn on a mismatch (1..5).
    """
    if not (draw_blocks_ != 0 and draw_blocks_ <= _MAX_DRAW_BLOCKS):
        errors._fail("audits: draw window out of range")
    if audit_period_ > _MAX_PERIOD:
        errors._fail("audits: period too long")
    if not (committee_size_ != 0 and committee_size_ <= _MAX_COMMITTEE):
        errors._fail("audits: committee out of range")
    beacon_delay = beacon_delay_
    draw_blocks = draw_blocks_
    audit_period = audit_period_
    committee_size = committee_size_


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
         block.number > committed_block + k + draw_blocks. Randomness is
         keccak256(abi_encode(blockhash(s), deal_id)) with s the latest block
         of the schedule committed_block + k + draw_blocks + 256 * m that is
         below block.number (`_anchor`): fixed in advance, not picked by the caller.
    @param deal The deal as stored (committed, status UNDRAWN).
    """
    word: uint256 = self._committed_word(deal)
    if deal.status != book.UNDRAWN:
        errors._fail("deals: already drawn")
    last: uint256 = deal.committed_block + beacon_delay + draw_blocks
    if block.number <= last:
        errors._fail("deals: draw window open")
    deal_id: bytes32 = book._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce)
    r: bytes32 = keccak256(abi_encode(blockhash(self._anchor(last)), deal_id))
    self._restatus(deal, word, book.AUDITED)
    log DealDrawn(deal_id=deal_id, audited=True, reason=REASON_DEFAULT)
    self._start(deal, deal_id, r)


@external
def challenge(deal: book.Deal):
    """
    @dev The requester starts an audit (paid by the escrowed fee) of a
         committed deal that is UNDRAWN or CLEARED, while
         now < committed_at + challenge_window, once the deal's beacon block
         (committed_block + k) is past. Randomness is
         keccak256(abi_encode(blockhash(s), deal_id, 2)) with s the latest
         block of the schedule committed_block + k + 256 * m below
         block.number (`_anchor`): the requester chooses whether to
         challenge, not which block seats its auditor.
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
    r: bytes32 = keccak256(abi_encode(blockhash(self._anchor(beacon_block)), deal_id, REASON_CHALLENGE))
    self._restatus(deal, word, book.AUDITED)
    log DealDrawn(deal_id=deal_id, audited=True, reason=REASON_CHALLENGE)
    self._start(deal, deal_id, r)


@external
def commit_audit(deal_id: bytes32, seal: bytes32):
    """
    @dev A drawn seat commits the seal of its blind re-execution,
         keccak256(abi_encode(auditor, deal_id, result_root, fuel, salt)).
         When every seat of the phase has committed, the reveal phase starts.
    @param deal_id The audited deal.
    @param seal The auditor's seal; not zero.
    """
    if self._audits[deal_id].phase != PHASE_COMMIT:
        errors._fail("audits: wrong phase")
    if block.timestamp > self._audits[deal_id].deadline:
        errors._fail("audits: phase over")
    if seal == empty(bytes32):
        errors._fail("audits: empty seal")
    i: uint256 = self._seat_index(deal_id, msg.sender)
    if self._audits[deal_id].seals[i] != empty(bytes32):
        errors._fail("audits: already committed")
    self._audits[deal_id].seals[i] = seal
    log AuditCommitted(deal_id=deal_id, auditor=msg.sender, seal=seal)
    if self._all_committed(deal_id):
        self._audits[deal_id].phase = PHASE_REVEAL
        self._audits[deal_id].deadline = block.timestamp + audit_period


@external
def reveal(deal_id: bytes32, result_root: bytes32, fuel: uint256, salt: bytes32):
    """
    @dev The provider or a committed seat reveals its execution; it must
         reproduce its seal (which names the executor and the deal, so a
         copied seal cannot be revealed by anyone else). When everyone due
         has revealed, the audit moves on in the same call.
    @param deal_id The audited deal.
    @param result_root The result root of the execution.
    @param fuel The total fuel the deal's jobs consumed.
    @param salt The seal's salt.
    """
    if self._audits[deal_id].phase != PHASE_REVEAL:
        errors._fail("audits: wrong phase")
    if block.timestamp > self._audits[deal_id].deadline:
        errors._fail("audits: phase over")
    seal: bytes32 = self._seal_of(msg.sender, deal_id, result_root, fuel, salt)
    claim: bytes32 = self._claim_of(result_root, fuel)
    if msg.sender == self._audits[deal_id].provider:
        if self._audits[deal_id].provider_claim != empty(bytes32):
            errors._fail("audits: already revealed")
        if seal != self._audits[deal_id].seal:
            errors._fail("audits: bad reveal")
        self._audits[deal_id].provider_claim = claim
    else:
        i: uint256 = self._seat_index(deal_id, msg.sender)
        committed: bytes32 = self._audits[deal_id].seals[i]
        # a seat that did not commit is out
        if committed == empty(bytes32):
            errors._fail("audits: not a seat")
        if self._audits[deal_id].claims[i] != empty(bytes32):
            errors._fail("audits: already revealed")
        if seal != committed:
            errors._fail("audits: bad reveal")
        self._audits[deal_id].claims[i] = claim
    log ClaimRevealed(deal_id=deal_id, executor=msg.sender, result_root=result_root, fuel=fuel)
    if self._all_revealed(deal_id):
        self._conclude(deal_id)


@external
def advance(deal_id: bytes32):
    """
    @dev Anyone, after a phase's deadline: seats that did not commit (commit
         phase) pay min(free stake, audit_fee), seats that committed and did
         not reveal (reveal phase) forfeit their stake, both burned, and are
         out (`_miss_seat`); then the audit moves on (new round, reveal
         phase, dispute or resolution).
    @param deal_id The audited deal.
    """
    phase: uint256 = self._audits[deal_id].phase
    if not (phase == PHASE_COMMIT or phase == PHASE_REVEAL):
        errors._fail("audits: wrong phase")
    if block.timestamp <= self._audits[deal_id].deadline:
        errors._fail("audits: phase not over")
    dispute: bool = self._audits[deal_id].dispute
    seats: uint256 = len(self._audits[deal_id].seats)
    if phase == PHASE_COMMIT:
        if not dispute:
            # outside a dispute the commit phase ends early once seat 0 commits
            self._miss_seat(deal_id, 0)
            self._next_round(deal_id)
            return
        committed: bool = False
        for j: uint256 in range(1, _SEATS):
            if j >= seats:
                break
            if self._audits[deal_id].seals[j] == empty(bytes32):
                self._miss_seat(deal_id, j)
            else:
                committed = True
        if committed:
            self._audits[deal_id].phase = PHASE_REVEAL
            self._audits[deal_id].deadline = block.timestamp + audit_period
        else:
            self._resolve_dispute(deal_id)
        return
    first: uint256 = 0
    if dispute:
        first = 1
    for j: uint256 in range(_SEATS):
        if j >= seats:
            break
        if j >= first and self._audits[deal_id].seals[j] != empty(bytes32) and self._audits[deal_id].claims[j] == empty(bytes32):
            self._miss_seat(deal_id, j)
    self._conclude(deal_id)


@external
def finalize(deals: DynArray[book.Deal, _MAX_BATCH]):
    """
    @dev Settles committed deals whose challenge window is over and which are
         CLEARED (the audit fee goes back to the requester) or AUDITED with
         the audit PASSED (the fee was paid at resolution): pays each provider
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
        if status == book.AUDITED:
            if self._audits[deal_id].phase != PHASE_PASSED:
                errors._fail("deals: audit pending")
        else:
            if status != book.CLEARED:
                errors._fail("deals: not drawn")
        if block.timestamp < deals[i].committed_at + book.challenge_window:
            errors._fail("deals: challenge window open")
        jobs: uint256 = deals[i].terms.jobs
        if deals[i].terms.requester == provider:
            jobs = 0
        refund: uint256 = 0
        upheld: bool = False
        if status == book.CLEARED:
            refund = deals[i].terms.audit_fee
        else:
            upheld = self._audits[deal_id].claim != empty(bytes32)
        # jail means stop: a provider proven wrong is paid only for deals an auditor upheld
        if not staking._settle(provider, deals[i].terms.collateral, deals[i].terms.price, jobs, upheld):
            refund += deals[i].terms.price
        if refund != 0:
            accounts._credit(deals[i].terms.requester, refund)
        log DealFinalized(deal_id=deal_id)


@external
@view
def audit(deal_id: bytes32) -> AuditView:
    """
    @dev The audit of a deal, for agents and clients (phase 0 when none).
    @param deal_id The deal.
    @return AuditView Phase, round, deadline, parties, seats with their seals and claims.
    """
    seats: uint256 = len(self._audits[deal_id].seats)
    seals: DynArray[bytes32, _SEATS] = []
    claims: DynArray[bytes32, _SEATS] = []
    for j: uint256 in range(_SEATS):
        if j >= seats:
            break
        seals.append(self._audits[deal_id].seals[j])
        claims.append(self._audits[deal_id].claims[j])
    return AuditView(
        phase=self._audits[deal_id].phase,
        dispute=self._audits[deal_id].dispute,
        round=self._audits[deal_id].round,
        deadline=self._audits[deal_id].deadline,
        requester=self._audits[deal_id].requester,
        provider=self._audits[deal_id].provider,
        jobs_root=self._audits[deal_id].jobs_root,
        fee=self._audits[deal_id].fee,
        provider_seal=self._audits[deal_id].seal,
        provider_claim=self._audits[deal_id].provider_claim,
        claim=self._audits[deal_id].claim,
        seats=self._audits[deal_id].seats,
        seals=seals,
        claims=claims,
    )


@external
@view
def audit_record(provider: address) -> (uint256, uint256, uint256, uint256, uint256):
    """
    @dev Audit outcome counters of an account (u32, saturating).
    @param provider Any address.
    @return uint256 audits_passed: its deals whose audit passed on a matching claim.
    @return uint256 audits_failed: its deals whose audit failed.
    @return uint256 disputes_lost: times it revealed a minority claim in a dispute.
    @return uint256 audits_done: times it revealed the winning (matching) claim as auditor.
    @return uint256 no_shows: times it was drawn and did not commit or reveal in time.
    """
    word: uint256 = self._records[provider]
    return (
        (word >> _PASSED) & _U32,
        (word >> _FAILED) & _U32,
        (word >> _LOST) & _U32,
        (word >> _DONE) & _U32,
        (word >> _NO_SHOW) & _U32,
    )


@external
@view
def is_flagged(jobs_root: bytes32) -> bool:
    """
    @dev True once an audit of `jobs_root` ended VOID (no majority: the
         workload is treated as non-deterministic).
    @param jobs_root The deal's jobs root.
    @return bool Flagged.
    """
    return self._flagged[jobs_root]


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
@view
def _anchor(first: uint256) -> uint256:
    """
    @dev The block whose hash seeds an audit started late: the latest of
         first, first + 256, first + 512, ... below block.number, always
         inside blockhash's 256-block window. The schedule is fixed when the
         deal commits, so a caller can at best wait 256 blocks for another
         candidate instead of choosing among every block.
    @param first The schedule's first block (< block.number).
    @return uint256 The block number.
    """
    return first + (block.number - 1 - first) // 256 * 256


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
    @dev Creates the audit record and draws the first auditor (round 1).
    @param deal The deal (now AUDITED).
    @param deal_id Its id.
    @param randomness The audit's randomness (sortition seed).
    """
    self._audits[deal_id].requester = deal.terms.requester
    self._audits[deal_id].provider = deal.terms.provider
    self._audits[deal_id].lane = deal.terms.lane
    self._audits[deal_id].nonce = deal.terms.nonce
    self._audits[deal_id].jobs_root = deal.terms.jobs_root
    self._audits[deal_id].price = deal.terms.price
    self._audits[deal_id].collateral = deal.terms.collateral
    self._audits[deal_id].fee = deal.terms.audit_fee
    self._audits[deal_id].seal = deal.seal
    self._audits[deal_id].randomness = randomness
    self._audits[deal_id].round = 1
    self._open_round(deal_id)


@internal
def _open_round(deal_id: bytes32):
    """
    @dev Draws a (new) first auditor into seat 0 and opens its commit phase;
         when nobody can be drawn the audit passes by default.
    @param deal_id The audited deal.
    """
    seat: address = self._draw_seat(deal_id)
    if seat == empty(address):
        self._pass_by_default(deal_id)
        return
    if len(self._audits[deal_id].seats) == 0:
        self._audits[deal_id].seats.append(seat)
    else:
        self._audits[deal_id].seats[0] = seat
        self._audits[deal_id].seals[0] = empty(bytes32)
        self._audits[deal_id].claims[0] = empty(bytes32)
    deadline: uint256 = block.timestamp + audit_period
    self._audits[deal_id].phase = PHASE_COMMIT
    self._audits[deal_id].deadline = deadline
    log AuditorDrawn(deal_id=deal_id, auditor=seat, seat=0, deadline=deadline)


@internal
def _draw_seat(deal_id: bytes32) -> address:
    """
    @dev Stake-weighted sortition over everyone's stake but the deal's
         provider's: a point keccak256(abi_encode(randomness, counter)) mod
         (total - the provider's weight) is read on the line with the
         provider's interval cut out, so no stake share, however large, lets
         a provider be drawn for its own deal or make the draw fail. Up to
         64 candidates are tried only to skip the requester and those
         already drawn for the deal.
    @param deal_id The audited deal.
    @return address The auditor, or the zero address when none was found
            (nobody else holds stake: the audit cannot be done independently).
    """
    start: uint256 = 0
    length: uint256 = 0
    start, length = staking._interval(self._audits[deal_id].provider)
    # the provider's interval lies inside the total
    total: uint256 = staking._total_weight() - length
    if total == 0:
        return empty(address)
    randomness: bytes32 = self._audits[deal_id].randomness
    counter: uint256 = self._audits[deal_id].draws
    requester: address = self._audits[deal_id].requester
    found: address = empty(address)
    for _: uint256 in range(_MAX_TRIES):
        point: uint256 = convert(keccak256(abi_encode(randomness, counter)), uint256) % total
        counter += 1
        if point >= start:
            point += length
        candidate: address = staking._member_at(point)
        if candidate != requester and not self._drawn[deal_id][candidate]:
            self._drawn[deal_id][candidate] = True
            found = candidate
            break
    self._audits[deal_id].draws = counter
    return found


@internal
@view
def _seat_index(deal_id: bytes32, who: address) -> uint256:
    """
    @dev The seat `who` holds in the current step: seat 0 outside a dispute,
         seats 1.. in it; reverts "audits: not a seat" otherwise.
    @param deal_id The audited deal.
    @param who The caller.
    @return uint256 The seat index.
    """
    seats: uint256 = len(self._audits[deal_id].seats)
    if not self._audits[deal_id].dispute:
        if not (seats != 0 and self._audits[deal_id].seats[0] == who):
            errors._fail("audits: not a seat")
        return 0
    for j: uint256 in range(1, _SEATS):
        if j >= seats:
            break
        if self._audits[deal_id].seats[j] == who:
            return j
    errors._fail("audits: not a seat")
    return 0


@internal
@view
def _all_committed(deal_id: bytes32) -> bool:
    """
    @dev True when every seat of the current step has committed.
    @param deal_id The audited deal.
    @return bool All committed.
    """
    if not self._audits[deal_id].dispute:
        return self._audits[deal_id].seals[0] != empty(bytes32)
    seats: uint256 = len(self._audits[deal_id].seats)
    for j: uint256 in range(1, _SEATS):
        if j >= seats:
            break
        if self._audits[deal_id].seals[j] == empty(bytes32):
            return False
    return True


@internal
@view
def _all_revealed(deal_id: bytes32) -> bool:
    """
    @dev True when everyone due in the reveal phase has revealed: the
         provider and seat 0 outside a dispute, every committed committee
         seat in one.
    @param deal_id The audited deal.
    @return bool All revealed.
    """
    if not self._audits[deal_id].dispute:
        return self._audits[deal_id].provider_claim != empty(bytes32) and self._audits[deal_id].claims[0] != empty(bytes32)
    seats: uint256 = len(self._audits[deal_id].seats)
    for j: uint256 in range(1, _SEATS):
        if j >= seats:
            break
        if self._audits[deal_id].seals[j] != empty(bytes32) and self._audits[deal_id].claims[j] == empty(bytes32):
            return False
    return True


@internal
def _miss_seat(deal_id: bytes32, j: uint256):
    """
    @dev A seat missed its phase and is out; it counts a no-show and pays,
         burned (never to a party of the deal, who could cause the miss):
         a seat that committed and then did not reveal forfeits its whole
         stake, as a liar does (else silence after seeing the other claims
         would be a free option); a seat that never committed pays
         min(free stake, audit_fee).
    @param deal_id The audited deal.
    @param j The seat index.
    """
    seat: address = self._audits[deal_id].seats[j]
    penalty: uint256 = 0
    if self._audits[deal_id].seals[j] != empty(bytes32):
        penalty = staking._forfeit_all(seat)
        staking.burned += penalty
    else:
        penalty = min(staking._free(seat), self._audits[deal_id].fee)
        if penalty != 0:
            staking._slash(seat, penalty, empty(address))
    self._count(seat, _NO_SHOW)
    log AuditorMissed(deal_id=deal_id, auditor=seat, penalty=penalty)
    if penalty != 0:
        log Burned(deal_id=deal_id, amount=penalty)


@internal
def _conclude(deal_id: bytes32):
    """
    @dev After a reveal phase (everyone revealed, or the deadline passed and
         the no-shows paid): first round: provider silent -> FAILED; auditor
         silent -> next round; same claim -> PASSED; different -> dispute.
         In a dispute: the majority rule.
    @param deal_id The audited deal.
    """
    if self._audits[deal_id].dispute:
        self._resolve_dispute(deal_id)
        return
    provider_claim: bytes32 = self._audits[deal_id].provider_claim
    auditor_claim: bytes32 = self._audits[deal_id].claims[0]
    if provider_claim == empty(bytes32):
        self._resolve(deal_id, PHASE_FAILED, auditor_claim)
    elif auditor_claim == empty(bytes32):
        self._next_round(deal_id)
    elif provider_claim == auditor_claim:
        self._resolve(deal_id, PHASE_PASSED, provider_claim)
    else:
        self._start_dispute(deal_id)


@internal
def _next_round(deal_id: bytes32):
    """
    @dev The first auditor failed to answer: draw another, or pass by default
         after MAX_AUDIT_ROUNDS rounds.
    @param deal_id The audited deal.
    """
    round: uint256 = self._audits[deal_id].round
    if round >= MAX_AUDIT_ROUNDS:
        self._pass_by_default(deal_id)
        return
    self._audits[deal_id].round = round + 1
    self._open_round(deal_id)


@internal
def _start_dispute(deal_id: bytes32):
    """
    @dev Claims differ: draw up to committee_size fresh auditors into seats
         1.. and open their commit phase (resolve at once if none was found).
    @param deal_id The audited deal.
    """
    self._audits[deal_id].dispute = True
    deadline: uint256 = block.timestamp + audit_period
    for k: uint256 in range(_MAX_COMMITTEE):
        if k >= committee_size:
            break
        seat: address = self._draw_seat(deal_id)
        if seat == empty(address):
            break
        self._audits[deal_id].seats.append(seat)
        log AuditorDrawn(deal_id=deal_id, auditor=seat, seat=k + 1, deadline=deadline)
    if len(self._audits[deal_id].seats) == 1:
        self._resolve_dispute(deal_id)
        return
    self._audits[deal_id].phase = PHASE_COMMIT
    self._audits[deal_id].deadline = deadline


@internal
def _resolve_dispute(deal_id: bytes32):
    """
    @dev Among all revealed executions (provider, first auditor, committee)
         a claim held by a strict majority, with at least 3 revealed, wins:
         the provider's -> PASSED, another -> FAILED, none -> VOID.
    @param deal_id The audited deal.
    """
    provider_claim: bytes32 = self._audits[deal_id].provider_claim
    winner: bytes32 = self._majority(deal_id)
    if winner == empty(bytes32):
        self._void(deal_id)
    elif winner == provider_claim:
        self._resolve(deal_id, PHASE_PASSED, winner)
    else:
        self._resolve(deal_id, PHASE_FAILED, winner)


@internal
@view
def _majority(deal_id: bytes32) -> bytes32:
    """
    @dev The claim held by a strict majority of the revealed executions, with
         at least 3 revealed; zero when there is none.
    @param deal_id The audited deal.
    @return bytes32 The winning claim, or zero.
    """
    n: uint256 = self._votes(deal_id, empty(bytes32))
    if n < 3:
        return empty(bytes32)
    # a strict majority holder is among the candidates: the provider's claim, then each seat's
    candidate: bytes32 = self._audits[deal_id].provider_claim
    if candidate != empty(bytes32) and 2 * self._votes(deal_id, candidate) > n:
        return candidate
    seats: uint256 = len(self._audits[deal_id].seats)
    for j: uint256 in range(_SEATS):
        if j >= seats:
            break
        candidate = self._audits[deal_id].claims[j]
        if candidate != empty(bytes32) and 2 * self._votes(deal_id, candidate) > n:
            return candidate
    return empty(bytes32)


@internal
@view
def _votes(deal_id: bytes32, claim: bytes32) -> uint256:
    """
    @dev How many revealed executions (provider and seats) hold `claim`;
         with `claim` zero, how many revealed at all.
    @param deal_id The audited deal.
    @param claim A claim, or zero to count every revealed execution.
    @return uint256 The count.
    """
    votes: uint256 = 0
    held: bytes32 = self._audits[deal_id].provider_claim
    if held != empty(bytes32) and (claim == empty(bytes32) or held == claim):
        votes = 1
    seats: uint256 = len(self._audits[deal_id].seats)
    for j: uint256 in range(_SEATS):
        if j >= seats:
            break
        held = self._audits[deal_id].claims[j]
        if held != empty(bytes32) and (claim == empty(bytes32) or held == claim):
            votes += 1
    return votes


@internal
def _resolve(deal_id: bytes32, outcome: uint256, winner: bytes32):
    """
    @dev PASSED or FAILED with `winner`: every revealed seat whose claim
         differs (and, on FAILED, the provider) forfeits its whole stake and
         is jailed; the pool P splits P/2 among the provers (seats holding
         the winning claim, equal shares), P/4 to the requester, the rest
         burned (the provers' half goes to the requester when there is none).
         The audit fee goes to the first auditor if it held the winning
         claim, else back to the requester. FAILED refunds the price and
         frees the lane; PASSED waits for `finalize`.
    @param deal_id The audited deal.
    @param outcome PHASE_PASSED or PHASE_FAILED.
    @param winner The winning claim (zero on FAILED when nobody revealed).
    """
    requester: address = self._audits[deal_id].requester
    provider: address = self._audits[deal_id].provider
    seats: uint256 = len(self._audits[deal_id].seats)
    pool: uint256 = 0
    provers: DynArray[address, _SEATS] = []
    for j: uint256 in range(_SEATS):
        if j >= seats:
            break
        claim: bytes32 = self._audits[deal_id].claims[j]
        if claim == empty(bytes32):
            continue
        seat: address = self._audits[deal_id].seats[j]
        if claim == winner:
            provers.append(seat)
            self._count(seat, _DONE)
        else:
            pool += staking._forfeit_all(seat)
            self._count(seat, _LOST)
    if outcome == PHASE_FAILED:
        pool += staking._forfeit_all(provider)
        self._count(provider, _FAILED)
        if self._audits[deal_id].dispute:
            self._count(provider, _LOST)
    else:
        self._count(provider, _PASSED)

    to_requester: uint256 = 0
    fee: uint256 = self._audits[deal_id].fee
    if seats != 0 and winner != empty(bytes32) and self._audits[deal_id].claims[0] == winner:
        self._pay(deal_id, self._audits[deal_id].seats[0], fee)
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
    if outcome == PHASE_FAILED:
        price: uint256 = self._audits[deal_id].price
        to_requester += price
        book._lanes[provider][self._audits[deal_id].lane] = self._audits[deal_id].nonce
        staking._leave(provider, price)
    if to_requester != 0:
        accounts._credit(requester, to_requester)
    self._audits[deal_id].phase = outcome
    self._audits[deal_id].claim = winner
    log AuditResolved(deal_id=deal_id, outcome=outcome, claim=winner)


@internal
def _void(deal_id: bytes32):
    """
    @dev No majority: price and audit fee back to the requester, collateral
         unlocked, nobody slashed for the mismatch, lane freed, jobs_root flagged.
    @param deal_id The audited deal.
    """
    requester: address = self._audits[deal_id].requester
    provider: address = self._audits[deal_id].provider
    price: uint256 = self._audits[deal_id].price
    jobs_root: bytes32 = self._audits[deal_id].jobs_root
    accounts._credit(requester, price + self._audits[deal_id].fee)
    staking._unlock(provider, self._audits[deal_id].collateral)
    staking._leave(provider, price)
    book._lanes[provider][self._audits[deal_id].lane] = self._audits[deal_id].nonce
    self._flagged[jobs_root] = True
    self._audits[deal_id].phase = PHASE_VOID
    log WorkloadFlagged(jobs_root=jobs_root, deal_id=deal_id)
    log AuditResolved(deal_id=deal_id, outcome=PHASE_VOID, claim=empty(bytes32))


@internal
def _pass_by_default(deal_id: bytes32):
    """
    @dev Nobody answered (or could be drawn): the audit passes and the fee
         goes back to the requester; the deal finalizes normally.
    @param deal_id The audited deal.
    """
    fee: uint256 = self._audits[deal_id].fee
    if fee != 0:
        accounts._credit(self._audits[deal_id].requester, fee)
    self._audits[deal_id].phase = PHASE_PASSED
    log AuditResolved(deal_id=deal_id, outcome=PHASE_PASSED, claim=empty(bytes32))


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


@internal
def _count(who: address, offset: uint256):
    """
    @dev Adds one to an audit_record counter, saturating at 2**32 - 1.
    @param who The account.
    @param offset The counter's bit offset (_PASSED, _FAILED, _LOST, _DONE, _NO_SHOW).
    """
    word: uint256 = self._records[who]
    if (word >> offset) & _U32 != _U32:
        self._records[who] = word + (1 << offset)


@internal
@pure
def _seal_of(executor: address, deal_id: bytes32, result_root: bytes32, fuel: uint256, salt: bytes32) -> bytes32:
    """
    @dev keccak256(abi_encode(executor, deal_id, result_root, fuel, salt)).
    @param executor The committing address.
    @param deal_id The deal.
    @param result_root The result root.
    @param fuel The fuel.
    @param salt The salt.
    @return bytes32 The seal.
    """
    return keccak256(abi_encode(executor, deal_id, result_root, fuel, salt))


@internal
@pure
def _claim_of(result_root: bytes32, fuel: uint256) -> bytes32:
    """
    @dev keccak256(abi_encode(result_root, fuel)).
    @param result_root The result root.
    @param fuel The fuel.
    @return bytes32 The claim.
    """
    return keccak256(abi_encode(result_root, fuel))
