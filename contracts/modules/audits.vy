# pragma version ~=0.4.3
"""
@title Blind audits, disputes and verdicts
@custom:contract-name audits
@license MIT
@notice The court's game (SPEC §14): an AUDITED deal, handed over by the
        Market (`open_audit`), is re-executed blind by a stake-weighted
        auditor (commit, then reveal); a mismatch goes to a committee; the
        minority of all executions forfeits its whole stake and is jailed.
        The court holds no money: penalties and verdicts are applied by the
        Market (`penalize`, `close_audit`), which alone may call
        `open_audit`, and which reads `verdict` to pay a deal that PASSED.

        Storage (the audited path is rare; it favours clarity over packing):
            _audits[deal_id]      one `Audit` record per audited deal: the deal's
                                  money fields as the Market handed them over,
                                  the phase machine and up to six seats
                                  (seat 0 = the first auditor of the current
                                  round, seats 1.. = the dispute committee),
                                  each with its committed seal and revealed claim
            _drawn[deal_id][a]    true once `a` was drawn for the deal (never twice)
            _records[a]           audit_record counters, u32 each, saturating:
                                  passed | failed << 32 | disputes_lost << 64 |
                                  audits_done << 96 | no_shows << 128
            _flagged[jobs_root]   true once an audit of that workload was VOID

        The only calls out go to the Market, whose code is fixed.
"""

from . import errors
from . import sortition
uses: sortition


interface Market:
    def bond_seat(seat: address, fee: uint256) -> bool: nonpayable
    def release_seat(seat: address, fee: uint256): nonpayable
    def penalize(deal_id: bytes32, seat: address, fee: uint256, whole: bool) -> uint256: nonpayable
    def close_audit(deal_id: bytes32, requester: address, provider: address, lane: uint256, nonce: uint256, price: uint256, collateral: uint256, fee: uint256, outcome: uint256, losers: DynArray[address, 7], provers: DynArray[address, 6], fee_to: address): nonpayable


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


event WorkloadFlagged:
    jobs_root: indexed(bytes32)
    deal_id: bytes32


PHASE_NONE: constant(uint256) = 0
PHASE_COMMIT: constant(uint256) = 1
PHASE_REVEAL: constant(uint256) = 2
PHASE_PASSED: constant(uint256) = 3
PHASE_FAILED: constant(uint256) = 4
PHASE_VOID: constant(uint256) = 5

# first-auditor draws before an unanswered audit passes by default
MAX_AUDIT_ROUNDS: public(constant(uint256)) = 3

_MAX_COMMITTEE: constant(uint256) = 5
_SEATS: constant(uint256) = _MAX_COMMITTEE + 1
_MAX_TRIES: constant(uint256) = 64
_MAX_PERIOD: constant(uint256) = 365 * 86400
_BPS: constant(uint256) = 10_000
_U32: constant(uint256) = 2**32 - 1

# the claim of a seat that could not obtain the job: keccak256(abi_encode(bytes32(0), 0)), revealed as
# result_root = 0, fuel = 0. It differs from any provider claim, so it opens a dispute whose committee
# fetches the job itself: if a majority cannot either, the provider (who ran the job and must serve it)
# fails; an outvoted "unavailable" seat loses nothing
_UNAVAILABLE: constant(bytes32) = 0xad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5

# audit_record fields (bit offsets)
_PASSED: constant(uint256) = 0
_FAILED: constant(uint256) = 32
_LOST: constant(uint256) = 64
_DONE: constant(uint256) = 96
_NO_SHOW: constant(uint256) = 128


market: public(immutable(Market))
audit_period: public(immutable(uint256))
committee_size: public(immutable(uint256))

_audits: HashMap[bytes32, Audit]
_drawn: HashMap[bytes32, HashMap[address, bool]]
_records: HashMap[address, uint256]
_flagged: HashMap[bytes32, bool]


@deploy
def __init__(audit_period_: uint256, committee_size_: uint256):
    """
    @dev Fixes the audit timing forever; the deployer (the Market's
         constructor, through its blueprint) is the Market.
    @param audit_period_ Seconds for each commit and each reveal phase (<= 365 days).
    @param committee_size_ Auditors drawn on a mismatch (1..5).
    """
    if audit_period_ > _MAX_PERIOD:
        errors._fail("audits: period too long")
    if not (committee_size_ != 0 and committee_size_ <= _MAX_COMMITTEE):
        errors._fail("audits: committee out of range")
    market = Market(msg.sender)
    audit_period = audit_period_
    committee_size = committee_size_


@external
def open_audit(
    deal_id: bytes32,
    requester: address,
    provider: address,
    lane: uint256,
    nonce: uint256,
    jobs_root: bytes32,
    price: uint256,
    collateral: uint256,
    fee: uint256,
    seal: bytes32,
    randomness: bytes32,
):
    """
    @dev The Market only: creates the audit record of a deal it just marked
         AUDITED and draws the first auditor (round 1).
    @param deal_id The deal's id.
    @param requester The deal's requester.
    @param provider The deal's provider.
    @param lane The deal's lane.
    @param nonce The deal's nonce.
    @param jobs_root The deal's jobs root.
    @param price The deal's price.
    @param collateral The deal's collateral.
    @param fee The deal's audit fee.
    @param seal The provider's committed seal.
    @param randomness The audit's randomness (sortition seed).
    """
    if msg.sender != market.address:
        errors._fail("audits: not the market")
    self._audits[deal_id].requester = requester
    self._audits[deal_id].provider = provider
    self._audits[deal_id].lane = lane
    self._audits[deal_id].nonce = nonce
    self._audits[deal_id].jobs_root = jobs_root
    self._audits[deal_id].price = price
    self._audits[deal_id].collateral = collateral
    self._audits[deal_id].fee = fee
    self._audits[deal_id].seal = seal
    self._audits[deal_id].randomness = randomness
    self._audits[deal_id].round = 1
    self._open_round(deal_id)


@external
@view
def verdict(deal_id: bytes32) -> (uint256, bytes32):
    """
    @dev What the Market needs to pay a deal: the audit's phase and winning
         claim (zero for a pass by default: nobody upheld the result).
    @param deal_id The deal.
    @return uint256 The phase (PHASE_PASSED = 3 once passed).
    @return bytes32 The winning claim.
    """
    return self._audits[deal_id].phase, self._audits[deal_id].claim


@external
def set_weight(provider: address, stake: uint256):
    """
    @dev The Market only, on every change of a provider's stake: its
         sortition weight from the next epoch on (sortition.vy).
    @param provider The provider.
    @param stake Its stake (zero when unregistered or jailed).
    """
    if msg.sender != market.address:
        errors._fail("audits: not the market")
    sortition._set_weight(provider, stake)


@external
@view
def sortition_weight(provider: address) -> uint256:
    """
    @dev The provider's weight in auditor draws this epoch.
    @param provider Any address.
    @return uint256 Token base units (zero for a non-member).
    """
    return sortition._weight(provider)


@external
@view
def next_sortition_weight(provider: address) -> uint256:
    """
    @dev The provider's weight in auditor draws from the next epoch on
         (what its stake counts for once this epoch's draws are over).
    @param provider Any address.
    @return uint256 Token base units (zero for a non-member).
    """
    return sortition._next_weight(provider)



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
    fee: uint256 = self._audits[deal_id].fee
    if fee != 0:
        extcall market.release_seat(msg.sender, fee)
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
        # the provider ran the job: "unavailable" is no answer from it (it would pass a job it withheld)
        if seal != self._audits[deal_id].seal or claim == _UNAVAILABLE:
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
    @dev Stake-weighted sortition over the current epoch's weights, all but
         the deal's provider's: a point
         keccak256(abi_encode(randomness, counter, beacon)) mod
         (total - the provider's weight), with beacon the hash of the block
         before the epoch began, is read on the line with the provider's
         interval cut out. So no stake share, however large, lets a provider
         be drawn for its own deal or make the draw fail, and no stake moved
         after the randomness is known changes the seat. Up to
         64 candidates are tried only to skip the requester, those already
         drawn for the deal and those whose free stake cannot lock the
         fee-sized bond a seat owes until it commits (`bond_seat`).
    @param deal_id The audited deal.
    @return address The auditor, or the zero address when none was found
            (nobody else holds stake: the audit cannot be done independently).
    """
    start: uint256 = 0
    length: uint256 = 0
    start, length = sortition._interval(self._audits[deal_id].provider)
    # the provider's interval lies inside the total
    total: uint256 = sortition._total() - length
    if total == 0:
        return empty(address)
    randomness: bytes32 = self._audits[deal_id].randomness
    beacon: bytes32 = sortition._beacon()
    counter: uint256 = self._audits[deal_id].draws
    requester: address = self._audits[deal_id].requester
    fee: uint256 = self._audits[deal_id].fee
    found: address = empty(address)
    for _: uint256 in range(_MAX_TRIES):
        point: uint256 = convert(keccak256(abi_encode(randomness, counter, beacon)), uint256) % total
        counter += 1
        if point >= start:
            point += length
        candidate: address = sortition._member_at(point)
        if candidate != requester and not self._drawn[deal_id][candidate]:
            self._drawn[deal_id][candidate] = True
            # a seat owes a fee-sized bond until it commits: one that cannot lock it is passed over
            if fee == 0 or extcall market.bond_seat(candidate, fee):
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
         would be a free option); a seat that never committed pays the
         fee-sized bond locked when it was drawn.
    @param deal_id The audited deal.
    @param j The seat index.
    """
    seat: address = self._audits[deal_id].seats[j]
    penalty: uint256 = extcall market.penalize(
        deal_id, seat, self._audits[deal_id].fee, self._audits[deal_id].seals[j] != empty(bytes32)
    )
    self._count(seat, _NO_SHOW)
    log AuditorMissed(deal_id=deal_id, auditor=seat, penalty=penalty)


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
         is jailed, and the Market splits the pool among the provers (seats
         holding the winning claim), the requester and the burn
         (`close_audit`). The audit fee goes to the first auditor if it held
         the winning claim, else back to the requester. FAILED refunds the
         price and frees the lane; PASSED waits for `finalize`.
    @param deal_id The audited deal.
    @param outcome PHASE_PASSED or PHASE_FAILED.
    @param winner The winning claim (zero on FAILED when nobody revealed).
    """
    provider: address = self._audits[deal_id].provider
    seats: uint256 = len(self._audits[deal_id].seats)
    losers: DynArray[address, _SEATS + 1] = []
    provers: DynArray[address, _SEATS] = []
    if outcome == PHASE_FAILED:
        losers.append(provider)
        self._count(provider, _FAILED)
        if self._audits[deal_id].dispute:
            self._count(provider, _LOST)
    else:
        self._count(provider, _PASSED)
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
        elif claim != _UNAVAILABLE:
            losers.append(seat)
            self._count(seat, _LOST)
        # a seat that reported the job unavailable and was outvoted lied about no result: it loses
        # nothing (a provider may withhold the job from one seat and serve the others)
    fee_to: address = empty(address)
    if seats != 0 and winner != empty(bytes32) and self._audits[deal_id].claims[0] == winner:
        fee_to = self._audits[deal_id].seats[0]
    self._close(deal_id, outcome, losers, provers, fee_to)
    self._audits[deal_id].claim = winner
    log AuditResolved(deal_id=deal_id, outcome=outcome, claim=winner)


@internal
def _void(deal_id: bytes32):
    """
    @dev No majority: price and audit fee back to the requester, collateral
         unlocked, nobody slashed for the mismatch, lane freed, jobs_root flagged.
    @param deal_id The audited deal.
    """
    jobs_root: bytes32 = self._audits[deal_id].jobs_root
    self._close(deal_id, PHASE_VOID, [], [], empty(address))
    self._flagged[jobs_root] = True
    log WorkloadFlagged(jobs_root=jobs_root, deal_id=deal_id)
    log AuditResolved(deal_id=deal_id, outcome=PHASE_VOID, claim=empty(bytes32))


@internal
def _pass_by_default(deal_id: bytes32):
    """
    @dev Nobody answered (or could be drawn): the audit passes with no
         upheld claim and the fee goes back to the requester; the deal
         finalizes normally (a jailed provider is not paid for it).
    @param deal_id The audited deal.
    """
    self._close(deal_id, PHASE_PASSED, [], [], empty(address))
    log AuditResolved(deal_id=deal_id, outcome=PHASE_PASSED, claim=empty(bytes32))


@internal
def _close(deal_id: bytes32, outcome: uint256, losers: DynArray[address, _SEATS + 1], provers: DynArray[address, _SEATS], fee_to: address):
    """
    @dev Records the outcome (before the call out), then has the Market apply it.
    @param deal_id The audited deal.
    @param outcome PHASE_PASSED, PHASE_FAILED or PHASE_VOID.
    @param losers Accounts that forfeit their stake.
    @param provers Seats that held the winning claim.
    @param fee_to Who earned the audit fee, or the zero address.
    """
    self._audits[deal_id].phase = outcome
    extcall market.close_audit(
        deal_id,
        self._audits[deal_id].requester,
        self._audits[deal_id].provider,
        self._audits[deal_id].lane,
        self._audits[deal_id].nonce,
        self._audits[deal_id].price,
        self._audits[deal_id].collateral,
        self._audits[deal_id].fee,
        outcome,
        losers,
        provers,
        fee_to,
    )


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
