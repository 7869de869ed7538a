# pragma version ~=0.4.3
"""
@title Provider registry, stake, earnings and reputation
@custom:contract-name staking
@license MIT
@notice Providers register an endpoint, stake collateral, and are paid
        into earnings they claim later (pull payments). Collateral for
        open deals is `locked`; only free stake (stake - locked) can be
        unbonded, and unbonded stake leaves after `unbond_delay`.

        Storage is packed so the deal hot path is cheap: opening a deal
        and finalizing it each read and write slot A only.
            slot A `_work`:  free u96 | volume u96 << 96 | completed u32 << 192 | missed u31 << 224 | registered bit << 255
            slot B `_bond`:  stake u96 | withdrawn u96 << 96 | slashed u32 << 192
            slot C `_unbond`: unbonding u96 | unbond_ready_at u32 << 96
        free is stake not locked by open deals, so locked = stake - free;
        every change to stake (stake, unbond, slash) changes free by the
        same amount, and free <= stake always. volume is lifetime earnings
        and earnings = volume - withdrawn. Amounts are bounded by uint96
        (~7.9e28 base units); counters saturate (completed and slashed at
        2**32 - 1, missed at 2**31 - 1) so reputation can never block settlement.
"""

from . import accounts
uses: accounts


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


_U31: constant(uint256) = 2**31 - 1
_U32: constant(uint256) = 2**32 - 1
_U96: constant(uint256) = 2**96 - 1
_REGISTERED: constant(uint256) = 1 << 255
_MAX_DELAY: constant(uint256) = 365 * 86400


unbond_delay: public(immutable(uint256))

_work: HashMap[address, uint256]
_bond: HashMap[address, uint256]
_unbond: HashMap[address, uint256]
_profiles: HashMap[address, Profile]


@deploy
def __init__(unbond_delay_: uint256):
    """
    @dev Fixes the unbonding delay forever.
    @param unbond_delay_ Seconds between `unbond` and `withdraw_stake`.
    """
    assert unbond_delay_ <= _MAX_DELAY, "staking: delay too long"
    unbond_delay = unbond_delay_


@external
def register(endpoint: String[256], resources: bytes32, enc_key: bytes32):
    """
    @dev Registers the caller as a provider, or updates its entry.
    @param endpoint The provider agent's URL for RFQs.
    @param resources An off-chain resource descriptor's hash (or packed summary).
    @param enc_key The provider's X25519 public key for sealed inputs.
    """
    assert len(endpoint) != 0, "staking: empty endpoint"
    self._profiles[msg.sender] = Profile(endpoint=endpoint, resources=resources, enc_key=enc_key)
    work: uint256 = self._work[msg.sender]
    if work & _REGISTERED == 0:
        self._work[msg.sender] = work | _REGISTERED
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
    assert amount != 0, "staking: zero amount"
    bond: uint256 = self._bond[msg.sender]
    stake: uint256 = (bond & _U96) + amount
    assert stake <= _U96, "staking: amount too large"
    # stake and free are the low fields, free <= stake <= 2**96 - 1: no carry
    self._bond[msg.sender] = bond + amount
    self._work[msg.sender] += amount
    accounts._pull(msg.sender, amount)
    log Staked(provider=msg.sender, amount=amount, stake=stake)


@external
@nonreentrant
def unbond(amount: uint256):
    """
    @dev Moves `amount` of free stake to unbonding; `withdraw_stake` opens
         after `unbond_delay`. Adding to an unbonding amount restarts the timer.
    @param amount Token base units, at most stake - locked.
    """
    assert amount != 0, "staking: zero amount"
    work: uint256 = self._work[msg.sender]
    assert work & _U96 >= amount, "staking: insufficient free stake"
    unbonding: uint256 = (self._unbond[msg.sender] & _U96) + amount
    assert unbonding <= _U96, "staking: amount too large"
    ready_at: uint256 = block.timestamp + unbond_delay
    # stake >= free >= amount, both low fields: no borrow
    self._bond[msg.sender] -= amount
    self._work[msg.sender] = work - amount
    self._unbond[msg.sender] = unbonding | (ready_at << 96)
    log Unbonded(provider=msg.sender, amount=amount, unbonding=unbonding, ready_at=ready_at)


@external
@nonreentrant
def withdraw_stake():
    """
    @dev Pays the caller its unbonding stake once the unbond delay has passed.
    """
    word: uint256 = self._unbond[msg.sender]
    amount: uint256 = word & _U96
    assert amount != 0, "staking: nothing unbonding"
    assert block.timestamp >= word >> 96, "staking: unbond not ready"
    self._unbond[msg.sender] = 0
    accounts._push(msg.sender, amount)
    log StakeWithdrawn(provider=msg.sender, amount=amount)


@external
@nonreentrant
def claim_earnings():
    """
    @dev Pays the caller everything it has earned and not yet claimed.
    """
    volume: uint256 = (self._work[msg.sender] >> 96) & _U96
    bond: uint256 = self._bond[msg.sender]
    amount: uint256 = volume - ((bond >> 96) & _U96)
    assert amount != 0, "staking: no earnings"
    self._bond[msg.sender] = (bond & ~(_U96 << 96)) | (volume << 96)
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
        unbond_ready_at=unbond >> 96,
        earnings=((work >> 96) & _U96) - ((bond >> 96) & _U96),
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
    @return uint256 missed: jobs reclaimed after a missed deadline (saturates at 2**31 - 1).
    @return uint256 slashed: times stake was slashed (saturating).
    @return uint256 volume: lifetime earnings in token base units.
    """
    work: uint256 = self._work[provider]
    return (work >> 192) & _U32, (work >> 224) & _U31, (self._bond[provider] >> 192) & _U32, (work >> 96) & _U96


@internal
def _lock(provider: address, amount: uint256) -> (bool, bool):
    """
    @dev Locks `amount` of free stake as deal collateral if `provider` is
         registered and has that much free; reads and writes slot A only.
    @param provider The provider.
    @param amount Token base units.
    @return bool registered
    @return bool enough free stake (nothing is locked unless both hold)
    """
    work: uint256 = self._work[provider]
    registered: bool = work & _REGISTERED != 0
    enough: bool = work & _U96 >= amount
    if registered and enough:
        # free is the low field and amount <= free: no borrow
        self._work[provider] = unsafe_sub(work, amount)
    return registered, enough


@internal
def _settle(provider: address, collateral: uint256, price: uint256, jobs: uint256):
    """
    @dev Pays a finalized deal: frees `collateral`, adds `price` to lifetime
         volume (so to earnings) and `jobs` to completed. Writes slot A only.
    @param provider The provider.
    @param collateral The deal's locked collateral (free + collateral <= stake < 2**96).
    @param price The deal's escrowed price.
    @param jobs The deal's job count.
    """
    work: uint256 = self._work[provider]
    assert ((work >> 96) & _U96) + price <= _U96, "staking: amount too large"
    completed: uint256 = self._saturate((work >> 192) & _U32, jobs, _U32)
    # neither field carries (free stays <= stake, volume checked above)
    work = unsafe_add(work, collateral | (price << 96))
    self._work[provider] = (work & ~(_U32 << 192)) | (completed << 192)


@internal
def _miss(provider: address, collateral: uint256, jobs: uint256):
    """
    @dev Records a missed deal: frees `collateral` and adds `jobs` to missed.
    @param provider The provider.
    @param collateral The deal's locked collateral.
    @param jobs The deal's job count.
    """
    work: uint256 = self._work[provider]
    missed: uint256 = self._saturate((work >> 224) & _U31, jobs, _U31)
    self._work[provider] = ((work & ~(_U31 << 224)) + collateral) | (missed << 224)


@internal
def _slash(provider: address, amount: uint256, to: address):
    """
    @dev Moves `amount` of `provider`'s free stake to `to`'s escrow balance and counts a slash.
         Callers free the collateral first.
    @param provider The provider.
    @param amount Token base units.
    @param to The account credited (requester, auditor, ...).
    """
    work: uint256 = self._work[provider]
    assert work & _U96 >= amount, "staking: insufficient free stake"
    bond: uint256 = self._bond[provider]
    slashed: uint256 = self._saturate((bond >> 192) & _U32, 1, _U32)
    # stake >= free >= amount, both low fields: no borrow
    self._bond[provider] = ((bond & ~(_U32 << 192)) - amount) | (slashed << 192)
    self._work[provider] = work - amount
    accounts._credit(to, amount)
    log ProviderSlashed(provider=provider, to=to, amount=amount)


@internal
@pure
def _saturate(counter: uint256, add: uint256, cap: uint256) -> uint256:
    """
    @dev counter + add, capped at `cap` (counters must never block settlement).
    @param counter A counter <= cap.
    @param add The increment (any size).
    @param cap The counter's largest value (2**32 - 1 or 2**31 - 1).
    @return uint256 The new counter.
    """
    return min(counter + min(add, cap), cap)
