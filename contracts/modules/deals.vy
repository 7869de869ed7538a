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

        No function here calls out (ecrecover is a precompile), so none
        takes the reentrancy lock: the functions that call the token
        (accounts, staking) hold it and write their state before the call,
        so a deal function re-entered from a token callback sees settled state.
"""

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


struct Deal:
    terms: Terms
    seal: bytes32
    committed_at: uint256


# Every Terms field plus the seal: an indexer rebuilds the Deal from this one event
# (committed_at = the block's timestamp when seal != 0, else 0). open_and_commit
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
    seal: bytes32


event ResultCommitted:
    deal_id: indexed(bytes32)
    seal: bytes32
    committed_at: uint256


event DealFinalized:
    deal_id: indexed(bytes32)


event DealReclaimed:
    deal_id: indexed(bytes32)
    requester: indexed(address)
    provider: indexed(address)
    refund: uint256
    penalty: uint256


_BID_TYPEHASH: constant(bytes32) = keccak256(
    "Bid(address requester,address provider,uint256 lane,uint256 nonce,bytes32 jobs_root,uint256 jobs,uint256 price,uint256 collateral,uint256 deadline,uint256 expiry)"
)
_ACCEPTANCE_TYPEHASH: constant(bytes32) = keccak256(
    "Acceptance(address requester,address provider,uint256 lane,uint256 nonce,bytes32 jobs_root,uint256 jobs,uint256 price,uint256 collateral,uint256 deadline,uint256 expiry)"
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


challenge_window: public(immutable(uint256))
miss_penalty_bps: public(immutable(uint256))

_lanes: HashMap[address, HashMap[uint256, uint256]]


@deploy
def __init__(challenge_window_: uint256, miss_penalty_bps_: uint256):
    """
    @dev Fixes the challenge window and the missed-deadline penalty forever.
    @param challenge_window_ Seconds between a commit and the earliest finalize.
    @param miss_penalty_bps_ Share of a missed deal's collateral paid to the requester.
    """
    assert challenge_window_ <= _MAX_WINDOW, "deals: window too long"
    assert miss_penalty_bps_ <= _BPS, "deals: penalty above 100%"
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
    assert msg.sender == terms.requester, "deals: not requester"
    self._check_terms(terms.jobs, terms.expiry, terms.deadline, terms.nonce, terms.price)
    assert block.timestamp <= terms.expiry, "deals: bid expired"
    self._check_signature(self._digest(_BID_TYPEHASH, terms), bid_signature, terms.provider)
    return self._open(terms, empty(bytes32), 0)


@external
def open_and_commit(terms: Terms, acceptance_signature: Bytes[65], seal: bytes32) -> bytes32:
    """
    @dev The provider opens a deal from the requester's signed `Acceptance`
         and commits its result seal in the same call (optimistic start).
    @param terms The agreed terms; msg.sender must be `terms.provider`.
    @param acceptance_signature The requester's 65-byte EIP-712 signature over `Acceptance(terms)`.
    @param seal keccak256(result_root, salt); must not be zero.
    @return bytes32 The deal id.
    """
    assert msg.sender == terms.provider, "deals: not provider"
    self._check_terms(terms.jobs, terms.expiry, terms.deadline, terms.nonce, terms.price)
    assert block.timestamp <= terms.expiry, "deals: acceptance expired"
    assert seal != empty(bytes32), "deals: empty seal"
    self._check_signature(self._digest(_ACCEPTANCE_TYPEHASH, terms), acceptance_signature, terms.requester)
    return self._open(terms, seal, block.timestamp)


@external
def commit_result(deal: Deal, seal: bytes32):
    """
    @dev The provider commits its result seal for an open deal before the deadline.
    @param deal The deal as opened (seal and committed_at zero).
    @param seal keccak256(result_root, salt); must not be zero.
    """
    assert msg.sender == deal.terms.provider, "deals: not provider"
    word: uint256 = self._lanes[deal.terms.provider][deal.terms.lane]
    self._require_open(word, deal.terms.nonce, self._hash_bits(deal))
    assert deal.seal == empty(bytes32), "deals: already committed"
    assert block.timestamp <= deal.terms.deadline, "deals: deadline passed"
    assert seal != empty(bytes32), "deals: empty seal"
    committed: Deal = Deal(terms=deal.terms, seal=seal, committed_at=block.timestamp)
    self._lanes[deal.terms.provider][deal.terms.lane] = self._hash_bits(committed) | (word & _NONCE_MASK)
    log ResultCommitted(deal_id=self._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce), seal=seal, committed_at=block.timestamp)


@external
def finalize(deals: DynArray[Deal, _MAX_BATCH]):
    """
    @dev Settles committed deals whose challenge window is over: pays each
         provider the price (into earnings), unlocks the collateral and frees
         the lane (keeping its nonce). Anyone may call; all or nothing.
    @param deals The deals as stored (committed).
    """
    for i: uint256 in range(len(deals), bound=_MAX_BATCH):
        # index, not `for deal in deals`, and no local copy of the Deal: the
        # hash is taken in _hash_bits' frame, low in memory (see _MAX_BATCH)
        provider: address = deals[i].terms.provider
        lane: uint256 = deals[i].terms.lane
        nonce: uint256 = deals[i].terms.nonce
        bits: uint256 = self._hash_bits(deals[i])
        word: uint256 = self._lanes[provider][lane]
        # written right after the read (one slot computation); a failing check reverts it
        self._lanes[provider][lane] = word & _NONCE_MASK
        self._require_open(word, nonce, bits)
        assert deals[i].seal != empty(bytes32), "deals: not committed"
        assert self._may_finalize(deals[i].committed_at), "deals: challenge window open"
        staking._settle(provider, deals[i].terms.collateral, deals[i].terms.price, deals[i].terms.jobs)
        log DealFinalized(deal_id=self._deal_id(provider, lane, nonce))


@external
def reclaim(deals: DynArray[Deal, _MAX_BATCH]):
    """
    @dev Unwinds deals whose deadline passed without a commit: refunds the
         price to the requester, moves collateral * miss_penalty_bps / 10000
         of the provider's stake to the requester, unlocks the rest and
         frees the lane. Anyone may call; the money always goes to the requester.
    @param deals The deals as opened (uncommitted).
    """
    for i: uint256 in range(len(deals), bound=_MAX_BATCH):
        # as in finalize: no local copy of the Deal
        bits: uint256 = self._hash_bits(deals[i])
        word: uint256 = self._lanes[deals[i].terms.provider][deals[i].terms.lane]
        self._require_open(word, deals[i].terms.nonce, bits)
        assert deals[i].seal == empty(bytes32), "deals: already committed"
        assert block.timestamp > deals[i].terms.deadline, "deals: deadline not passed"
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
def _may_finalize(committed_at: uint256) -> bool:
    """
    @dev The one rule deciding whether a committed deal may finalize now
         (audits and disputes will add their conditions here).
    @param committed_at The deal's commit time.
    @return bool True once the challenge window is over.
    """
    return block.timestamp >= committed_at + challenge_window


@internal
@view
def _check_terms(jobs: uint256, expiry: uint256, deadline: uint256, nonce: uint256, price: uint256):
    """
    @dev Checks on terms alone, shared by both ways of opening (fields, not
         the struct, so nothing is copied).
    @param jobs terms.jobs
    @param expiry terms.expiry
    @param deadline terms.deadline
    @param nonce terms.nonce
    @param price terms.price
    """
    assert jobs != 0, "deals: no jobs"
    assert expiry <= deadline, "deals: expiry after deadline"
    assert nonce <= _NONCE_MASK, "deals: nonce out of range"
    assert price <= _U96, "deals: amount out of range"


@internal
def _open(terms: Terms, seal: bytes32, committed_at: uint256) -> bytes32:
    """
    @dev Checks the lane and both parties' funds, then escrows the price,
         locks the collateral and writes the lane word.
    @param terms Checked terms with a valid signature.
    @param seal The result seal (zero when opening without a commit).
    @param committed_at block.timestamp when committing, else zero.
    @return bytes32 The deal id.
    """
    # abi_encode(terms, seal, committed_at) is abi_encode(Deal(...)) byte for byte (all static)
    stored: uint256 = (convert(keccak256(abi_encode(terms, seal, committed_at)), uint256) & _HASH_MASK) | terms.nonce
    # the lane is read and written back to back (one slot computation); a
    # failing check further down reverts the write with everything else
    word: uint256 = self._lanes[terms.provider][terms.lane]
    assert word & _HASH_MASK == 0, "deals: lane busy"
    assert terms.nonce > word & _NONCE_MASK, "deals: bid replayed"
    self._lanes[terms.provider][terms.lane] = stored
    assert accounts._debit(terms.requester, terms.price), "deals: requester unfunded"
    registered: bool = False
    enough: bool = False
    registered, enough = staking._lock(terms.provider, terms.collateral)
    assert registered, "deals: provider not registered"
    assert enough, "deals: insufficient free stake"
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
        seal=seal,
    )
    return deal_id


@internal
def _reclaim(deal: Deal, word: uint256):
    """
    @dev Effects of reclaiming one open, uncommitted deal past its deadline:
         frees the lane, counts the miss, slashes the penalty to the requester
         and refunds the price.
    @param deal The deal.
    @param word Its lane word.
    """
    self._lanes[deal.terms.provider][deal.terms.lane] = word & _NONCE_MASK
    penalty: uint256 = deal.terms.collateral * miss_penalty_bps // _BPS
    staking._miss(deal.terms.provider, deal.terms.collateral, deal.terms.jobs)
    staking._slash(deal.terms.provider, penalty, deal.terms.requester)
    accounts._credit(deal.terms.requester, deal.terms.price)
    log DealReclaimed(
        deal_id=self._deal_id(deal.terms.provider, deal.terms.lane, deal.terms.nonce),
        requester=deal.terms.requester,
        provider=deal.terms.provider,
        refund=deal.terms.price,
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
    assert not settled, "deals: already settled"
    raise "deals: unknown deal"


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
    assert len(signature) == 65, "deals: bad signature"
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    # the word at offset 33 ends with the signature's last byte, v
    v: uint256 = extract32(signature, 33, output_type=uint256) & 255
    assert s <= _MAX_S and (v == 27 or v == 28), "deals: bad signature"
    recovered: address = ecrecover(digest, v, r, s)
    assert recovered != empty(address) and recovered == signer, "deals: bad signature"


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
