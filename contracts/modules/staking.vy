# pragma version ~=0.4.3
"""
@title Provider registry, stake, earnings, reputation and bond rule
@custom:contract-name staking
@license MIT
@notice Providers register an endpoint, stake collateral, and are paid
        into earnings they claim later (pull payments). Collateral for
        open deals is `locked`; only free stake (stake - locked) can be
        unbonded, and unbonded stake leaves after `unbond_delay`.

        Storage is packed so the deal hot path is cheap: opening a deal
        and finalizing it each read and write slots A and B only.
            slot A `_work`:   free u96 | volume u96 << 96 | completed u32 << 192 | missed u30 << 224
                              | jailed bit << 254 | registered bit << 255
            slot B `_bond`:   stake u96 | value in flight u96 << 96 | largest price code u32 << 192
                              | deals in flight u32 << 224
            slot C `_unbond`: unbonding u96 | unbond_ready_at u32 << 96 | withdrawn u96 << 128
                              | slashed u32 << 224
        free is stake not locked by open deals, so locked = stake - free;
        every change to stake (stake, unbond, slash, forfeit) changes free by
        the same amount, and free <= stake always. volume is lifetime earnings
        and earnings = volume - withdrawn. Amounts are bounded by uint96
        (~7.9e28 base units); counters saturate (completed and slashed at
        2**32 - 1, missed at 2**30 - 1) so reputation can never block settlement.

        Value in flight (SPEC §14.6): V (total price) and N (count) of the
        provider's open deals live in slot B beside the stake the bond rule
        weighs them against, so opening reads one more slot and never makes
        a zero slot non-zero (stake is non-zero while deals are in flight).
        The rule counts deals on value, not by number (attack class 4: zero-
        price self-deals used to raise N and lower the bond): with m the
        largest price opened since the value in flight was last zero (kept
        in slot B as a 32-bit code, a 24-bit mantissa and an exponent,
        rounded up, so m is never below the true largest price; a stale
        code is ignored when the value in flight is zero), N_eff =
        max(1, V // m). Opening requires
        B * (1 - (1 - p_min * d)^N_eff) >= lambda * V in 18-decimal fixed
        point; `unbond` must keep it for what is in flight. A deal of price
        zero adds nothing to V and so nothing to N_eff.

        A provider whose whole stake is forfeited (`_forfeit_all`) is jailed
        for good: stake, free and unbonding go to zero, it cannot stake or
        open deals, and its other open deals settle without giving their
        collateral back (so locked <= stake and free <= stake stay true).

        Sortition lives in the court (modules/sortition.vy): every change of
        a registered provider's stake (register, stake, unbond, slash,
        forfeit) is reported to it (`_weigh`), and it applies the member
        minimum and fixes weights per epoch. A registration alone weighs nothing.
"""

from . import errors

from . import accounts
uses: accounts


interface Court:
    def set_weight(provider: address, stake: uint256): nonpayable


struct ProviderInfo:
    registered: bool
    endpoint: String[256]
    resources: bytes32
    enc_key: bytes32
    stake: uint256
    locked: uint256
    unbonding: uint256
    unbond_ready_at: uint256
    earnings: uint256


struct Profile:
    endpoint: String[256]
    resources: bytes32
    enc_key: bytes32


event ProviderRegistered:
    provider: indexed(address)
    endpoint: String[256]
    resources: bytes32
    enc_key: bytes32


event ProviderUpdated:
    provider: indexed(address)
    endpoint: String[256]
    resources: bytes32
    enc_key: bytes32


event Staked:
    provider: indexed(address)
    amount: uint256
    stake: uint256


event Unbonded:
    provider: indexed(address)
    amount: uint256
    unbonding: uint256
    ready_at: uint256


event StakeWithdrawn:
    provider: indexed(address)
    amount: uint256


event EarningsClaimed:
    provider: indexed(address)
    amount: uint256


event ProviderSlashed:
    provider: indexed(address)
    to: indexed(address)
    amount: uint256


# the jailing full slash: stake (free and locked) and unbonding, all of it
event StakeForfeited:
    provider: indexed(address)
    amount: uint256


_U30: constant(uint256) = 2**30 - 1
_U32: constant(uint256) = 2**32 - 1
_U96: constant(uint256) = 2**96 - 1
_U24: constant(uint256) = 2**24 - 1
_REGISTERED: constant(uint256) = 1 << 255
_JAILED: constant(uint256) = 1 << 254
_MAX_DELAY: constant(uint256) = 365 * 86400
_BPS: constant(uint256) = 10_000
_ONE: constant(uint256) = 10**18
# largest safety margin accepted (100x): keeps lambda * V * 1e18 far inside uint256
_MAX_LAMBDA_BPS: constant(uint256) = 1_000_000

# _lock results, checked by deals in this order
LOCK_OK: constant(uint256) = 0
LOCK_UNREGISTERED: constant(uint256) = 1
LOCK_JAILED: constant(uint256) = 2
LOCK_NO_FREE_STAKE: constant(uint256) = 3
LOCK_BOND_TOO_SMALL: constant(uint256) = 4


unbond_delay: public(immutable(uint256))
audit_floor_bps: public(immutable(uint256))
collusion_bps: public(immutable(uint256))
bond_lambda_bps: public(immutable(uint256))
# 1 - p_min * d in 18-decimal fixed point
_MISS_ONE: immutable(uint256)
# the court, told of every change of stake (its sortition weights)
_court: immutable(Court)

# forfeited and penalty stake kept by the contract forever (audit forfeits, no-show and miss penalties)
burned: public(uint256)

_work: HashMap[address, uint256]
_bond: HashMap[address, uint256]
_unbond: HashMap[address, uint256]
_profiles: HashMap[address, Profile]


@deploy
def __init__(unbond_delay_: uint256, audit_floor_bps_: uint256, collusion_bps_: uint256, bond_lambda_bps_: uint256,
             court_: address):
    """
    @dev Fixes the unbonding delay and the bond rule's parameters forever.
    @param unbond_delay_ Seconds between `unbond` and `withdraw_stake`.
    @param audit_floor_bps_ p_min: the lowest audit probability a deal may ask for (1..10000).
    @param collusion_bps_ d: the share of audit capacity assumed honest (<= 10000).
    @param bond_lambda_bps_ lambda: the bond rule's safety margin (10000..1000000).
    @param court_ The court (its sortition weights follow stake).
    """
    if unbond_delay_ > _MAX_DELAY:
        errors._fail("staking: delay too long")
    if not (audit_floor_bps_ != 0 and audit_floor_bps_ <= _BPS):
        errors._fail("staking: audit floor out of range")
    if collusion_bps_ > _BPS:
        errors._fail("staking: collusion out of range")
    if not (bond_lambda_bps_ >= _BPS and bond_lambda_bps_ <= _MAX_LAMBDA_BPS):
        errors._fail("staking: lambda out of range")
    unbond_delay = unbond_delay_
    audit_floor_bps = audit_floor_bps_
    collusion_bps = collusion_bps_
    bond_lambda_bps = bond_lambda_bps_
    # p_min * d = floor/1e4 * d/1e4, scaled to 1e18
    _MISS_ONE = _ONE - audit_floor_bps_ * collusion_bps_ * 10**10
    _court = Court(court_)


@external
def register(endpoint: String[256], resources: bytes32, enc_key: bytes32):
    """
    @dev Registers the caller as a provider, or updates its entry. Its stake
         counts in sortition from its first registration on (`_weigh`).
    @param endpoint The provider agent's URL for RFQs.
    @param resources An off-chain resource descriptor's hash (or packed summary).
    @param enc_key The provider's X25519 public key for sealed inputs.
    """
    if len(endpoint) == 0:
        errors._fail("staking: empty endpoint")
    self._profiles[msg.sender] = Profile(endpoint=endpoint, resources=resources, enc_key=enc_key)
    work: uint256 = self._work[msg.sender]
    if work & _REGISTERED == 0:
        self._work[msg.sender] = work | _REGISTERED
        # stake posted before registering starts counting now
        self._weigh(msg.sender)
        log ProviderRegistered(provider=msg.sender, endpoint=endpoint, resources=resources, enc_key=enc_key)
    else:
        log ProviderUpdated(provider=msg.sender, endpoint=endpoint, resources=resources, enc_key=enc_key)


@external
@nonreentrant
def stake(amount: uint256):
    """
    @dev Pulls `amount` tokens from the caller into its stake (needs an allowance).
    @param amount Token base units.
    """
    if amount == 0:
        errors._fail("staking: zero amount")
    work: uint256 = self._work[msg.sender]
    if work & _JAILED != 0:
        errors._fail("staking: jailed")
    bond: uint256 = self._bond[msg.sender]
    stake: uint256 = (bond & _U96) + amount
    if stake > _U96:
        errors._fail("staking: amount too large")
    # stake and free are the low fields, free <= stake <= 2**96 - 1: no carry
    self._bond[msg.sender] = bond + amount
    self._work[msg.sender] = work + amount
    self._weigh(msg.sender)
    accounts._pull(msg.sender, amount)
    log Staked(provider=msg.sender, amount=amount, stake=stake)


@external
@nonreentrant
def unbond(amount: uint256):
    """
    @dev Moves `amount` of free stake to unbonding; `withdraw_stake` opens
         after `unbond_delay`. Adding to an unbonding amount restarts the timer.
         The stake left must still satisfy the bond rule for the deals in flight.
    @param amount Token base units, at most stake - locked.
    """
    if amount == 0:
        errors._fail("staking: zero amount")
    work: uint256 = self._work[msg.sender]
    if work & _U96 < amount:
        errors._fail("staking: insufficient free stake")
    bond: uint256 = self._bond[msg.sender]
    # stake >= free >= amount: no borrow
    flight: uint256 = (bond >> 96) & _U96
    if not self._bond_ok(unsafe_sub(bond & _U96, amount), flight, self._deals_on_value(flight, (bond >> 192) & _U32)):
        errors._fail("staking: bond in use")
    unbond: uint256 = self._unbond[msg.sender]
    unbonding: uint256 = (unbond & _U96) + amount
    if unbonding > _U96:
        errors._fail("staking: amount too large")
    ready_at: uint256 = block.timestamp + unbond_delay
    self._bond[msg.sender] = unsafe_sub(bond, amount)
    self._work[msg.sender] = unsafe_sub(work, amount)
    self._unbond[msg.sender] = (unbond & ~(_U96 | (_U32 << 96))) | unbonding | (ready_at << 96)
    self._weigh(msg.sender)
    log Unbonded(provider=msg.sender, amount=amount, unbonding=unbonding, ready_at=ready_at)


@external
@nonreentrant
def withdraw_stake():
    """
    @dev Pays the caller its unbonding stake once the unbond delay has passed.
    """
    word: uint256 = self._unbond[msg.sender]
    amount: uint256 = word & _U96
    if amount == 0:
        errors._fail("staking: nothing unbonding")
    if block.timestamp < (word >> 96) & _U32:
        errors._fail("staking: unbond not ready")
    self._unbond[msg.sender] = word & ~_U96
    accounts._push(msg.sender, amount)
    log StakeWithdrawn(provider=msg.sender, amount=amount)


@external
@nonreentrant
def claim_earnings():
    """
    @dev Pays the caller everything it has earned and not yet claimed.
    """
    volume: uint256 = (self._work[msg.sender] >> 96) & _U96
    unbond: uint256 = self._unbond[msg.sender]
    amount: uint256 = volume - ((unbond >> 128) & _U96)
    if amount == 0:
        errors._fail("staking: no earnings")
    self._unbond[msg.sender] = (unbond & ~(_U96 << 128)) | (volume << 128)
    accounts._push(msg.sender, amount)
    log EarningsClaimed(provider=msg.sender, amount=amount)


@external
@view
def provider_info(provider: address) -> ProviderInfo:
    """
    @dev Everything a requester needs to judge a provider, in one call.
    @param provider Any address.
    @return ProviderInfo The registry entry, stake and earnings of `provider`.
    """
    work: uint256 = self._work[provider]
    bond: uint256 = self._bond[provider]
    unbond: uint256 = self._unbond[provider]
    profile: Profile = self._profiles[provider]
    return ProviderInfo(
        registered=work & _REGISTERED != 0,
        endpoint=profile.endpoint,
        resources=profile.resources,
        enc_key=profile.enc_key,
        stake=bond & _U96,
        # checked: reverts if free ever exceeded stake
        locked=(bond & _U96) - (work & _U96),
        unbonding=unbond & _U96,
        unbond_ready_at=(unbond >> 96) & _U32,
        earnings=((work >> 96) & _U96) - ((unbond >> 128) & _U96),
    )


@external
@view
def free_stake(provider: address) -> uint256:
    """
    @dev Stake not locked by open deals: what new deals can lock and `unbond` can take.
    @param provider Any address.
    @return uint256 Token base units.
    """
    return self._work[provider] & _U96


@external
@view
def reputation(provider: address) -> (uint256, uint256, uint256, uint256):
    """
    @dev On-chain outcome counters of `provider`.
    @param provider Any address.
    @return uint256 completed: jobs finalized (saturates at 2**32 - 1).
    @return uint256 missed: jobs reclaimed after a missed deadline (saturates at 2**30 - 1).
    @return uint256 slashed: times stake was slashed or forfeited (saturating).
    @return uint256 volume: lifetime earnings in token base units.
    """
    work: uint256 = self._work[provider]
    return (work >> 192) & _U32, (work >> 224) & _U30, self._unbond[provider] >> 224, (work >> 96) & _U96


@external
@view
def in_flight(provider: address) -> (uint256, uint256, uint256):
    """
    @dev What the bond rule weighs against the provider's stake.
    @param provider Any address.
    @return uint256 V: total price of its open deals.
    @return uint256 N: number of its open deals.
    @return uint256 m: the largest price the rule counts (rounded up; zero when V is zero);
            the rule uses N_eff = max(1, V // m) deals.
    """
    bond: uint256 = self._bond[provider]
    flight: uint256 = (bond >> 96) & _U96
    # the code left from before the value in flight was last zero is stale
    code: uint256 = 0
    if flight != 0:
        code = (bond >> 192) & _U32
    return flight, bond >> 224, self._decode(code)


@external
@view
def jailed(provider: address) -> bool:
    """
    @dev True once `provider` forfeited its stake; it stays jailed forever.
    @param provider Any address.
    @return bool Jailed.
    """
    return self._work[provider] & _JAILED != 0


@external
@view
def bond_allows(stake: uint256, in_flight: uint256, deals: uint256) -> bool:
    """
    @dev The bond rule: stake * (1 - (1 - p_min * d)^deals) >= lambda * value, 18 decimals.
    @param stake B, token base units.
    @param in_flight V, the total price in flight (including a new deal).
    @param deals N, the number of deals in flight (including a new deal).
    @return bool True when a provider with that stake may carry that much.
    """
    return self._bond_ok(stake, in_flight, deals)


@internal
def _lock(provider: address, collateral: uint256, price: uint256) -> uint256:
    """
    @dev For a new deal: locks `collateral` of free stake and adds `price` to
         the value in flight if `provider` is registered, not jailed, has that
         much free stake and its stake satisfies the bond rule with the new
         deal; reads and writes slots A and B only.
    @param provider The provider.
    @param collateral Token base units to lock.
    @param price The deal's price (< 2**96).
    @return uint256 LOCK_OK, or the first failing LOCK_* condition (nothing changes then).
    """
    work: uint256 = self._work[provider]
    if work & _REGISTERED == 0:
        return LOCK_UNREGISTERED
    if work & _JAILED != 0:
        return LOCK_JAILED
    if work & _U96 < collateral:
        return LOCK_NO_FREE_STAKE
    bond: uint256 = self._bond[provider]
    before: uint256 = (bond >> 96) & _U96
    # both below 2**96 (price checked by deals), the count below 2**32: no overflow; range checked below
    flight: uint256 = unsafe_add(before, price)
    count: uint256 = unsafe_add(bond >> 224, 1)
    # the largest price m counts from when the value in flight was last zero; N_eff = max(1, V // m)
    deals: uint256 = 1
    if before != 0 or price > _U24:
        bond, deals = self._count_on_value(bond, before, price, flight)
    else:
        bond = (bond & ~(_U32 << 192)) | (price << 192)
    if flight > _U96 or count > _U32 or not self._bond_ok(bond & _U96, flight, deals):
        return LOCK_BOND_TOO_SMALL
    # free is the low field and collateral <= free: no borrow
    self._work[provider] = unsafe_sub(work, collateral)
    self._bond[provider] = (bond & (_U96 | (_U32 << 192))) | (flight << 96) | (count << 224)
    return LOCK_OK


@internal
def _settle(provider: address, collateral: uint256, price: uint256, jobs: uint256, upheld: bool) -> bool:
    """
    @dev Pays a finalized deal: frees `collateral` (not for a jailed
         provider: it was forfeited), adds `price` to lifetime volume (so to
         earnings) and `jobs` to completed, and takes the deal out of the
         value in flight. Writes slots A and B. Reputation is on value: a
         deal paying less than one base unit a job counts no jobs (a free
         deal cannot push `completed` to its cap), nor does a self-deal
         (the caller passes jobs = 0 then). Jail means stop: a jailed
         provider is paid only for a deal an auditor upheld; otherwise the
         deal only leaves the value in flight and the caller refunds the price.
    @param provider The provider.
    @param collateral The deal's locked collateral (free + collateral <= stake < 2**96).
    @param price The deal's escrowed price.
    @param jobs The deal's job count.
    @param upheld True when an auditor re-ran the deal and agreed (PASSED with a claim).
    @return bool True when the provider was paid, False when the price goes back to the requester.
    """
    work: uint256 = self._work[provider]
    if work & _JAILED != 0:
        if not upheld:
            self._leave(provider, price)
            return False
        collateral = 0
    # both below 2**96: no overflow
    if unsafe_add((work >> 96) & _U96, price) > _U96:
        errors._fail("staking: amount too large")
    counted: uint256 = jobs
    if price < jobs:
        counted = 0
    completed: uint256 = self._saturate((work >> 192) & _U32, counted, _U32)
    # neither field carries (free stays <= stake, volume checked above)
    work = unsafe_add(work, collateral | (price << 96))
    self._work[provider] = (work & ~(_U32 << 192)) | (completed << 192)
    self._leave(provider, price)
    return True


@internal
def _leave(provider: address, price: uint256):
    """
    @dev Takes one deal of `price` out of the provider's value in flight
         (the largest price's code stays; `_lock` ignores it once V is zero).
    @param provider The provider.
    @param price The deal's price (counted in when it opened).
    """
    bond: uint256 = self._bond[provider]
    # both fields hold at least this deal (added when it opened, taken out once): no borrow
    flight: uint256 = unsafe_sub((bond >> 96) & _U96, price)
    count: uint256 = unsafe_sub(bond >> 224, 1)
    self._bond[provider] = (bond & (_U96 | (_U32 << 192))) | (flight << 96) | (count << 224)


@internal
def _unlock(provider: address, collateral: uint256):
    """
    @dev Frees a deal's collateral without paying anything (voided audits);
         nothing for a jailed provider, whose collateral was forfeited.
    @param provider The provider.
    @param collateral The deal's locked collateral.
    """
    work: uint256 = self._work[provider]
    if work & _JAILED == 0:
        # free + collateral <= stake < 2**96: no carry
        self._work[provider] = unsafe_add(work, collateral)


@internal
def _bond_seat(seat: address, fee: uint256) -> bool:
    """
    @dev Locks `fee` of a drawn auditor's free stake until it commits (class
         9: an auditor whose stake is all locked in its own deals used to owe
         nothing when it stayed silent); False, and nothing locked, when its
         free stake is smaller.
    @param seat The drawn auditor.
    @param fee The deal's audit fee.
    @return bool Locked.
    """
    work: uint256 = self._work[seat]
    if work & _U96 < fee:
        return False
    # free is the low field and fee <= free: no borrow
    self._work[seat] = unsafe_sub(work, fee)
    return True


@internal
def _miss(provider: address, collateral: uint256, price: uint256, jobs: uint256) -> bool:
    """
    @dev Records a missed deal: frees `collateral` (unless jailed), adds
         `jobs` to missed and takes the deal out of the value in flight.
    @param provider The provider.
    @param collateral The deal's locked collateral.
    @param price The deal's price.
    @param jobs The deal's job count.
    @return bool True when the provider is jailed (nothing left to slash).
    """
    work: uint256 = self._work[provider]
    jailed: bool = work & _JAILED != 0
    if jailed:
        collateral = 0
    missed: uint256 = self._saturate((work >> 224) & _U30, jobs, _U30)
    self._work[provider] = ((work & ~(_U30 << 224)) + collateral) | (missed << 224)
    self._leave(provider, price)
    return jailed


@internal
def _slash(provider: address, amount: uint256, to: address):
    """
    @dev Takes `amount` of `provider`'s free stake and counts a slash; the
         amount goes to `to`'s escrow balance, or is burned (kept forever,
         counted in `burned`) when `to` is the zero address. Callers free the collateral first.
    @param provider The provider.
    @param amount Token base units.
    @param to The account credited, or the zero address to burn.
    """
    work: uint256 = self._work[provider]
    if work & _U96 < amount:
        errors._fail("staking: insufficient free stake")
    unbond: uint256 = self._unbond[provider]
    self._unbond[provider] = (unbond & ~(_U32 << 224)) | (self._saturate(unbond >> 224, 1, _U32) << 224)
    # stake >= free >= amount, both low fields: no borrow
    self._bond[provider] = self._bond[provider] - amount
    self._work[provider] = work - amount
    self._weigh(provider)
    if to == empty(address):
        self.burned += amount
    else:
        accounts._credit(to, amount)
    log ProviderSlashed(provider=provider, to=to, amount=amount)


@internal
def _forfeit_all(provider: address) -> uint256:
    """
    @dev The jailing full slash: takes the provider's whole stake (free and
         locked), its unbonding stake and its unclaimed earnings (jail means
         stop: a provider proven wrong claims nothing more of what it was
         paid before), jails it for good and drops its sortition weight to
         zero. The caller distributes the amount.
    @param provider The provider (or auditor) in the minority.
    @return uint256 The amount taken (zero when already jailed).
    """
    work: uint256 = self._work[provider]
    bond: uint256 = self._bond[provider]
    unbond: uint256 = self._unbond[provider]
    stake: uint256 = bond & _U96
    volume: uint256 = (work >> 96) & _U96
    # earnings = volume - withdrawn: all of it, by marking everything withdrawn
    amount: uint256 = stake + (unbond & _U96) + volume - ((unbond >> 128) & _U96)
    slashed: uint256 = self._saturate(unbond >> 224, 1, _U32)
    self._work[provider] = (work & ~_U96) | _JAILED
    self._bond[provider] = bond & ~_U96
    self._unbond[provider] = (volume << 128) | (slashed << 224)
    self._weigh(provider)
    log StakeForfeited(provider=provider, amount=amount)
    return amount


@internal
@view
def _free(provider: address) -> uint256:
    """
    @dev Free stake of `provider`.
    @param provider Any address.
    @return uint256 Token base units.
    """
    return self._work[provider] & _U96


@internal
def _weigh(provider: address):
    """
    @dev Tells the court the provider's stake as sortition weighs it: its
         stake while registered and not jailed, else zero (the court applies
         the member minimum and the epoch delay).
    @param provider The provider.
    """
    work: uint256 = self._work[provider]
    weight: uint256 = 0
    if work & _REGISTERED != 0 and work & _JAILED == 0:
        weight = self._bond[provider] & _U96
    extcall _court.set_weight(provider, weight)


@internal
@view
def _bond_ok(stake: uint256, in_flight: uint256, deals: uint256) -> bool:
    """
    @dev stake * (1 - (1 - p_min * d)^deals) >= lambda * value, with the power
         taken in 18-decimal fixed point by squaring (each product rounded up, so
         the power is never too small and the rule never more permissive than
         the exact formula; verification/bond.py computes the same integers).
    @param stake B, token base units (< 2**96).
    @param in_flight V, token base units (< 2**96).
    @param deals N (< 2**32).
    @return bool True when the rule holds (always when nothing is in flight).
    """
    if in_flight == 0:
        return True
    cover: uint256 = _ONE - self._pow(_MISS_ONE, deals)
    return stake * cover * _BPS >= bond_lambda_bps * in_flight * _ONE


@internal
@pure
def _count_on_value(bond: uint256, before: uint256, price: uint256, flight: uint256) -> (uint256, uint256):
    """
    @dev Slot B with the largest price's code raised to cover `price` (a code
         left from before the value in flight was last zero is ignored), and
         N_eff = max(1, V // m) for the value in flight `flight`.
    @param bond Slot B before the deal.
    @param before V before the deal.
    @param price The new deal's price.
    @param flight V with the new deal.
    @return uint256 Slot B with the new code (other fields unchanged).
    @return uint256 N_eff.
    """
    code: uint256 = 0
    if before != 0:
        code = (bond >> 192) & _U32
    if price > self._decode(code):
        code = self._code(price)
    return (bond & ~(_U32 << 192)) | (code << 192), self._deals_on_value(flight, code)


@internal
@pure
def _deals_on_value(flight: uint256, code: uint256) -> uint256:
    """
    @dev N_eff: how many deals of the largest price the value in flight is
         worth, at least one (zero-price and cheap deals add no count).
    @param flight V, token base units.
    @param code The largest price's code.
    @return uint256 max(1, V // m) (1 when m is zero).
    """
    m: uint256 = self._decode(code)
    if m == 0 or flight < 2 * m:
        return 1
    return flight // m


@internal
@pure
def _decode(code: uint256) -> uint256:
    """
    @dev The price a code stands for: mantissa (bits 0..23) << exponent (bits 24..31).
    @param code A price code.
    @return uint256 Token base units.
    """
    return (code & _U24) << (code >> 24)


@internal
@pure
def _code(price: uint256) -> uint256:
    """
    @dev The code of the smallest mantissa-and-exponent value at least
         `price` (exact below 2**24; relative error below 2**-23 above).
         verification/bond.py mirrors it.
    @param price Token base units (< 2**96).
    @return uint256 The code.
    """
    if price <= _U24:
        return price
    # bit length of price, by halving
    bits: uint256 = 1
    rest: uint256 = price
    if rest >> 64 != 0:
        rest >>= 64
        bits += 64
    if rest >> 32 != 0:
        rest >>= 32
        bits += 32
    if rest >> 16 != 0:
        rest >>= 16
        bits += 16
    if rest >> 8 != 0:
        rest >>= 8
        bits += 8
    if rest >> 4 != 0:
        rest >>= 4
        bits += 4
    if rest >> 2 != 0:
        rest >>= 2
        bits += 2
    if rest >> 1 != 0:
        bits += 1
    exponent: uint256 = bits - 24
    mantissa: uint256 = (price + (1 << exponent) - 1) >> exponent
    if mantissa == 2**24:
        mantissa = 2**23
        exponent += 1
    return mantissa | (exponent << 24)


@internal
@pure
def _pow(base: uint256, exponent: uint256) -> uint256:
    """
    @dev base^exponent in 18-decimal fixed point by squaring, lowest bit first;
         every product is rounded up. verification/bond.py mirrors it exactly.
    @param base A fixed-point number <= 1e18.
    @param exponent Any exponent < 2**32.
    @return uint256 The power, <= 1e18.
    """
    result: uint256 = _ONE
    b: uint256 = base
    e: uint256 = exponent
    for _: uint256 in range(32):
        if e == 0:
            break
        if e & 1 != 0:
            result = (result * b + _ONE - 1) // _ONE
        b = (b * b + _ONE - 1) // _ONE
        e >>= 1
    return result


@internal
@pure
def _saturate(counter: uint256, add: uint256, cap: uint256) -> uint256:
    """
    @dev counter + add, capped at `cap` (counters must never block settlement).
    @param counter A counter <= cap.
    @param add The increment (any size).
    @param cap The counter's largest value (2**32 - 1 or 2**30 - 1).
    @return uint256 The new counter.
    """
    # counter <= cap < 2**32 and min(add, cap) <= cap: no overflow
    return min(unsafe_add(counter, min(add, cap)), cap)
