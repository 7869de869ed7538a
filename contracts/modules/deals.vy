# pragma version ~=0.4.3
"""
@title Deals on provider lanes
@custom:contract-name deals
@license MIT
@notice A deal is agreed off-chain as `Terms` and signed with EIP-712:
        the provider signs a `Bid` (the requester opens with `open_deal`),
        or the requester signs an `Acceptance` (the provider opens and
        commits at once with `open_and_commit`). Each provider has lanes;
        `_lanes[provider][lane]` is one word:
            bits 64..255  the top 192 bits of keccak256(abi_encode(deal)) of
                          the open deal, zero when the lane is free
            bits  0..63   the nonce of the last deal opened on the lane
        The full `Deal` comes back as calldata and must hash to the word,
        so a deal costs no new storage once its lane has been used.

        A committed deal must go through the lottery (modules/audits.vy,
        which also settles deals with `finalize`) before it can be paid;
        the lane word carries the deal's status through its hash.

        Opening escrows price + audit_fee from the requester, locks the
        collateral and adds the price to the provider's value in flight
        under the bond rule (SPEC §14.6, modules/staking.vy).

        No function here calls out (ecrecover is a precompile), so none
        takes the reentrancy lock: the functions that call the token
        (accounts, staking) hold it and write their state before the call,
        so a deal function re-entered from a token callback sees settled state.
"""

from . import errors

from . import accounts
from . import staking
from snekmate.utils import eip712_domain_separator as eip712
uses: accounts
uses: staking
uses: eip712


struct Terms:
    requester: address
    provider: address
    lane: uint256
    nonce: uint256
    jobs_root: bytes32
    jobs: uint256
    price: uint256
    collateral: uint256
    deadline: uint256
    expiry: uint256
    seed_hash: bytes32
    audit_bps: uint256
    audit_fee: uint256


# status: UNDRAWN (committed, lottery not run), CLEARED (not audited), AUDITED
# (an audit record exists); each change of status rewrites the lane word
struct Deal:
    terms: Terms
    seal: bytes32
    committed_at: uint256
    committed_block: uint256
    status: uint256


# Every Terms field plus the seal: an indexer rebuilds the Deal from this one event
# (committed_at and committed_block = the block's timestamp and number when
# seal != 0, else 0; status 0). open_and_commit
# logs only this; ResultCommitted comes from commit_result alone.
event DealOpened:
    deal_id: indexed(bytes32)
    requester: indexed(address)
    provider: indexed(address)
    lane: uint256
    nonce: uint256
    jobs_root: bytes32
    jobs: uint256
    price: uint256
    collateral: uint256
    deadline: uint256
    expiry: uint256
    seed_hash: bytes32
    audit_bps: uint256
    audit_fee: uint256
    seal: bytes32


event ResultCommitted:
    deal_id: indexed(bytes32)
    seal: bytes32
    committed_at: uint256


event DealReclaimed:
    deal_id: indexed(bytes32)
    requester: indexed(address)
    provider: indexed(address)
    refund: uint256
    penalty: uint256


_BID_TYPEHASH: constant(bytes32) = keccak256(
    "Bid(address requester,address provider,uint256 lane,uint256 nonce,bytes32 jobs_root,uint256 jobs,uint256 price,uint256 collateral,uint256 deadline,uint256 expiry,bytes32 seed_hash,uint256 audit_bps,uint256 audit_fee)"
)
_ACCEPTANCE_TYPEHASH: constant(bytes32) = keccak256(
    "Acceptance(address requester,address provider,uint256 lane,uint256 nonce,bytes32 jobs_root,uint256 jobs,uint256 price,uint256 collateral,uint256 deadline,uint256 expiry,bytes32 seed_hash,uint256 audit_bps,uint256 audit_fee)"
)
_NONCE_MASK: constant(uint256) = 2**64 - 1
_HASH_MASK: constant(uint256) = max_value(uint256) - (2**64 - 1)
_U96: constant(uint256) = 2**96 - 1
# secp256k1n / 2: larger s values are the malleable twin of a valid signature
_MAX_S: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
_BPS: constant(uint256) = 10_000
_MAX_WINDOW: constant(uint256) = 365 * 86400
# vyper copies a calldata array of structs with addresses into memory and places the
# function's own locals after it at its full bound; the batch loops keep no Deal local
# and hash each deal in _hash_bits' frame (low in memory), so a short batch pays only
# for what it holds. 32 keeps a full batch's calldata and memory modest.
_MAX_BATCH: constant(uint256) = 32

UNDRAWN: constant(uint256) = 0
CLEARED: constant(uint256) = 1
AUDITED: constant(uint256) = 2


challenge_window: public(immutable(uint256))
miss_penalty_bps: public(immutable(uint256))

_lanes: HashMap[address, HashMap[uint256, uint256]]


@deploy
def __init__(challenge_window_: uint256, miss_penalty_bps_: uint256):
    """
    @dev Fixes the challenge window and the missed-deadline penalty forever.
    @param challenge_window_ Seconds between a commit and the earliest finalize.
    @param miss_penalty_bps_ Share of a missed deal's collateral burned from the provider's stake.
    """
    if challenge_window_ > _MAX_WINDOW:
        errors._fail("deals: window too long")
    if miss_penalty_bps_ > _BPS:
        errors._fail("deals: penalty above 100%")
    challenge_window = challenge_window_
    miss_penalty_bps = miss_penalty_bps_


@external
def open_deal(terms: Terms, bid_signature: Bytes[65]) -> bytes32:
    """
    @dev The requester opens a deal from the provider's signed `Bid`.
    @param terms The agreed terms; msg.sender must be `terms.requester`.
    @param bid_signature The provider's 65-byte EIP-712 signature over `Bid(terms)`.
    @return bytes32 The deal id, keccak256(abi_encode(provider, lane, nonce)).
    """
    if msg.sender != terms.requester:
        errors._fail("deals: not requester")
    self._check_terms(terms.jobs, terms.expiry, terms.deadline, terms.nonce, terms.price | terms.audit_fee)
    self._check_audit_terms(terms.seed_hash, terms.audit_bps)
    if block.timestamp > terms.expiry:
        errors._fail("deals: bid expired")
    self._check_signature(self._digest(_BID_TYPEHASH, terms), bid_signature, terms.provider)
    return self._open(terms, empty(bytes32), 0, 0)


@external
def open_and_commit(terms: Terms, acceptance_signature: Bytes[65], seal: bytes32) -> bytes32:
    """
    @dev The provider opens a deal from the requester's signed `Acceptance`
         and commits its result seal in the same call (optimistic start).
    @param terms The agreed terms; msg.sender must be `terms.provider`.
    @param acceptance_signature The requester's 65-byte EIP-712 signature over `Acceptance(terms)`.
    @param seal keccak256(abi_encode(provider, deal_id, result_root, fuel, salt)); must not be zero.
    @return bytes32 The deal id.
    """
    if msg.sender != terms.provider:
        errors._fail("deals: not provider")
    self._check_terms(terms.jobs, terms.expiry, terms.deadline, terms.nonce, terms.price | terms.audit_fee)
    self._check_audit_terms(terms.seed_hash, terms.audit_bps)
    if block.timestamp > terms.expiry:
        errors._fail("deals: acceptance expired")
    if seal == empty(bytes32):
        errors._fail("deals: empty seal")
    self._check_signature(self._digest(_ACCEPTANCE_TYPEHASH, terms), acceptance_signature, terms.requester)
    return self._open(terms, seal, block.timestamp, block.number)


@external
def commit_result(deal: Deal, seal: bytes32):
    """
    @dev The provider commits its result seal for an open deal before the deadline.
    @param deal The deal as opened (seal, committed_at, committed_block and status zero).
    @param seal keccak256(abi_encode(provider, deal_id, result_root, fuel, salt)); must not be zero.
    """
    if msg.sender != deal.terms.provider:
        errors._fail("deals: not provider")
    word: uint256 = self._lanes[deal.terms.provider][deal.terms.lane]
    self._require_open(word, deal.terms.nonce, self._hash_bits(deal))
    if deal.seal != empty(bytes32):
        errors._fail("deals: already committed")
    if block.timestamp > deal.terms.deadline:
        errors._fail("deals: deadline passed")
    if seal == empty(bytes32):
        errors._fail("deals: empty seal")
    committed: Deal = Deal(
        terms=deal.terms, seal=seal, committed_at=block.timestamp, committed_block=block.number, status=UNDRAWN
    )
    self._lanes[deal.terms.provider][deal.terms.lane] = self._hash_bits(committed) | (word & _NONCE_MASK)
    log ResultCommitted(deal_id=self._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce), seal=seal, committed_at=block.timestamp)


@external
def reclaim(deals: DynArray[Deal, _MAX_BATCH]):
    """
    @dev Unwinds deals whose deadline passed without a commit: refunds the
         price and the audit fee to the requester, burns
         collateral * miss_penalty_bps / 10000 of the provider's stake (nothing
         for a jailed provider, whose stake was forfeited; never paid to the
         requester, who could force the miss by opening at the expiry or
         withholding the inputs), unlocks the rest and frees the lane. Anyone
         may call; the refund always goes to the requester. Never reverts for
         a jailed provider.
    @param deals The deals as opened (uncommitted).
    """
    for i: uint256 in range(len(deals), bound=_MAX_BATCH):
        # as in finalize: no local copy of the Deal
        bits: uint256 = self._hash_bits(deals[i])
        word: uint256 = self._lanes[deals[i].terms.provider][deals[i].terms.lane]
        self._require_open(word, deals[i].terms.nonce, bits)
        if deals[i].seal != empty(bytes32):
            errors._fail("deals: already committed")
        if block.timestamp <= deals[i].terms.deadline:
            errors._fail("deals: deadline not passed")
        self._reclaim(deals[i], word)


@external
@view
def lane(provider: address, lane: uint256) -> uint256:
    """
    @dev The raw lane word: top 192 bits of the open deal's hash (0 = free) | last nonce.
    @param provider The provider.
    @param lane The lane index.
    @return uint256 The lane word.
    """
    return self._lanes[provider][lane]


@external
@pure
def deal_id(provider: address, lane: uint256, nonce: uint256) -> bytes32:
    """
    @dev The id events use for a deal.
    @param provider The provider.
    @param lane The lane index.
    @param nonce The deal's nonce.
    @return bytes32 keccak256(abi_encode(provider, lane, nonce)).
    """
    return self._deal_id(provider, lane, nonce)


@external
@view
def bid_digest(terms: Terms) -> bytes32:
    """
    @dev The EIP-712 digest a provider signs to bid `terms`.
    @param terms The terms.
    @return bytes32 The digest.
    """
    return self._digest(_BID_TYPEHASH, terms)


@external
@view
def acceptance_digest(terms: Terms) -> bytes32:
    """
    @dev The EIP-712 digest a requester signs to accept `terms`.
    @param terms The terms.
    @return bytes32 The digest.
    """
    return self._digest(_ACCEPTANCE_TYPEHASH, terms)


@external
@pure
def deal_hash(deal: Deal) -> bytes32:
    """
    @dev keccak256(abi_encode(deal)); its top 192 bits are what the lane stores.
    @param deal The deal.
    @return bytes32 The full hash.
    """
    return keccak256(abi_encode(deal))


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    """
    @dev The EIP-712 domain separator (name "Mercato", version "1").
    @return bytes32 The separator for this chain and contract.
    """
    return eip712._domain_separator_v4()


@internal
@view
def _check_terms(jobs: uint256, expiry: uint256, deadline: uint256, nonce: uint256, amounts: uint256):
    """
    @dev Checks on terms alone, shared by both ways of opening (fields, not
         the struct, so nothing is copied).
    @param jobs terms.jobs
    @param expiry terms.expiry
    @param deadline terms.deadline
    @param nonce terms.nonce
    @param amounts terms.price | terms.audit_fee (each must fit 96 bits: one check for both)
    """
    if jobs == 0:
        errors._fail("deals: no jobs")
    if expiry > deadline:
        errors._fail("deals: expiry after deadline")
    if nonce > _NONCE_MASK:
        errors._fail("deals: nonce out of range")
    if amounts > _U96:
        errors._fail("deals: amount out of range")


@internal
@view
def _check_audit_terms(seed_hash: bytes32, audit_bps: uint256):
    """
    @dev The audit terms (SPEC §14.2), checked after `_check_terms`.
    @param seed_hash terms.seed_hash: keccak256 of the requester's secret seed.
    @param audit_bps terms.audit_bps: the audit probability, floor..10000.
    """
    if seed_hash == empty(bytes32):
        errors._fail("deals: no seed")
    if not (audit_bps >= staking.audit_floor_bps and audit_bps <= _BPS):
        errors._fail("deals: audit probability out of range")


@internal
def _open(terms: Terms, seal: bytes32, committed_at: uint256, committed_block: uint256) -> bytes32:
    """
    @dev Checks the lane and both parties' funds, then escrows the price and
         the audit fee, locks the collateral (bond rule) and writes the lane word.
    @param terms Checked terms with a valid signature.
    @param seal The result seal (zero when opening without a commit).
    @param committed_at block.timestamp when committing, else zero.
    @param committed_block block.number when committing, else zero.
    @return bytes32 The deal id.
    """
    # abi_encode(terms, seal, committed_at, committed_block, UNDRAWN) is
    # abi_encode(Deal(...)) byte for byte (all static)
    stored: uint256 = (
        convert(keccak256(abi_encode(terms, seal, committed_at, committed_block, UNDRAWN)), uint256) & _HASH_MASK
    ) | terms.nonce
    # the lane is read and written back to back (one slot computation); a
    # failing check further down reverts the write with everything else
    word: uint256 = self._lanes[terms.provider][terms.lane]
    if word & _HASH_MASK != 0:
        errors._fail("deals: lane busy")
    if terms.nonce <= word & _NONCE_MASK:
        errors._fail("deals: bid replayed")
    self._lanes[terms.provider][terms.lane] = stored
    # both < 2**96 (checked): no overflow
    if not accounts._debit(terms.requester, unsafe_add(terms.price, terms.audit_fee)):
        errors._fail("deals: requester unfunded")
    locked: uint256 = staking._lock(terms.provider, terms.collateral, terms.price)
    if locked != staking.LOCK_OK:
        if locked == staking.LOCK_UNREGISTERED:
            errors._fail("deals: provider not registered")
        if locked == staking.LOCK_JAILED:
            errors._fail("deals: provider jailed")
        if locked == staking.LOCK_NO_FREE_STAKE:
            errors._fail("deals: insufficient free stake")
        errors._fail("deals: bond too small")
    deal_id: bytes32 = self._deal_id(terms.provider, terms.lane, terms.nonce)
    log DealOpened(
        deal_id=deal_id,
        requester=terms.requester,
        provider=terms.provider,
        lane=terms.lane,
        nonce=terms.nonce,
        jobs_root=terms.jobs_root,
        jobs=terms.jobs,
        price=terms.price,
        collateral=terms.collateral,
        deadline=terms.deadline,
        expiry=terms.expiry,
        seed_hash=terms.seed_hash,
        audit_bps=terms.audit_bps,
        audit_fee=terms.audit_fee,
        seal=seal,
    )
    return deal_id


@internal
def _reclaim(deal: Deal, word: uint256):
    """
    @dev Effects of reclaiming one open, uncommitted deal past its deadline:
         frees the lane, counts the miss, burns the penalty (none from a jailed
         provider; never paid to the requester, who can cause a miss by
         opening late or withholding the inputs) and refunds the price and the audit fee.
    @param deal The deal.
    @param word Its lane word.
    """
    self._lanes[deal.terms.provider][deal.terms.lane] = word & _NONCE_MASK
    penalty: uint256 = 0
    jailed: bool = staking._miss(deal.terms.provider, deal.terms.collateral, deal.terms.price, deal.terms.jobs)
    if not jailed:
        penalty = deal.terms.collateral * miss_penalty_bps // _BPS
        staking._slash(deal.terms.provider, penalty, empty(address))
    refund: uint256 = deal.terms.price + deal.terms.audit_fee
    accounts._credit(deal.terms.requester, refund)
    log DealReclaimed(
        deal_id=self._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce),
        requester=deal.terms.requester,
        provider=deal.terms.provider,
        refund=refund,
        penalty=penalty,
    )


@internal
@pure
def _require_open(word: uint256, nonce: uint256, bits: uint256):
    """
    @dev Reverts unless the deal whose hash bits are `bits` is the open deal
         in the lane word `word`: "already settled" when the lane is free at
         or past its nonce, else "unknown deal". Callers read the lane
         themselves so the read and the write share one slot computation.
    @param word The lane word.
    @param nonce The deal's nonce.
    @param bits _hash_bits(deal).
    """
    stored: uint256 = word & _HASH_MASK
    if stored != 0 and stored == bits:
        return
    last: uint256 = word & _NONCE_MASK
    settled: bool = nonce < last or (nonce == last and stored == 0)
    if settled:
        errors._fail("deals: already settled")
    errors._fail("deals: unknown deal")


@internal
@pure
def _check_signature(digest: bytes32, signature: Bytes[65], signer: address):
    """
    @dev Reverts "deals: bad signature" unless `signature` is `signer`'s
         canonical (low-s, v in {27, 28}) 65-byte signature of `digest`.
    @param digest The EIP-712 digest.
    @param signature r | s | v.
    @param signer The expected signer.
    """
    if len(signature) != 65:
        errors._fail("deals: bad signature")
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    # the word at offset 33 ends with the signature's last byte, v
    v: uint256 = extract32(signature, 33, output_type=uint256) & 255
    if not (s <= _MAX_S and (v == 27 or v == 28)):
        errors._fail("deals: bad signature")
    recovered: address = ecrecover(digest, v, r, s)
    if not (recovered != empty(address) and recovered == signer):
        errors._fail("deals: bad signature")


@internal
@view
def _digest(typehash: bytes32, terms: Terms) -> bytes32:
    """
    @dev The EIP-712 digest of `terms` under `typehash` (Bid or Acceptance).
    @param typehash The struct's type hash.
    @param terms The terms (its fields are the struct's fields, in order).
    @return bytes32 The digest to sign.
    """
    return eip712._hash_typed_data_v4(keccak256(abi_encode(typehash, terms)))


@internal
@pure
def _hash_bits(deal: Deal) -> uint256:
    """
    @dev The top 192 bits of keccak256(abi_encode(deal)), as stored in a lane.
    @param deal The deal.
    @return uint256 The hash with its low 64 bits cleared.
    """
    return convert(keccak256(abi_encode(deal)), uint256) & _HASH_MASK


@internal
@pure
def _deal_id(provider: address, lane: uint256, nonce: uint256) -> bytes32:
    """
    @dev keccak256(abi_encode(provider, lane, nonce)).
    @param provider The provider.
    @param lane The lane index.
    @param nonce The nonce.
    @return bytes32 The deal id.
    """
    return keccak256(abi_encode(provider, lane, nonce))
