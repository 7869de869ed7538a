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
        reads slot B and writes slot A; finalizing writes only slot A.
            slot A `_work`:  locked u96 | volume u96 << 96 | completed u32 << 192 | missed u32 << 224
            slot B `_bond`:  stake u96 | withdrawn u96 << 96 | slashed u32 << 192 | registered bit << 224
            slot C `_unbond`: unbonding u96 | unbond_ready_at u32 << 96
        volume is lifetime earnings and earnings = volume - withdrawn.
        Amounts are bounded by uint96 (~7.9e28 base units); counters
        saturate at 2**32 - 1 so reputation can never block settlement.
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


_U32: constant(uint256) = 2**32 - 1
_U96: constant(uint256) = 2**96 - 1
_REGISTERED: constant(uint256) = 1 << 224
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
    bond: uint256 = self._bond[msg.sender]
    if bond & _REGISTERED == 0:
        self._bond[msg.sender] = bond | _REGISTERED
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
    # stake is the low field and stays inside it
    self._bond[msg.sender] = bond + amount
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
    bond: uint256 = self._bond[msg.sender]
    assert (bond & _U96) - (self._work[msg.sender] & _U96) >= amount, "staking: insufficient free stake"
    unbonding: uint256 = (self._unbond[msg.sender] & _U96) + amount
    assert unbonding <= _U96, "staking: amount too large"
    ready_at: uint256 = block.timestamp + unbond_delay
    self._bond[msg.sender] = bond - amount
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
        registered=bond & _REGISTERED != 0,
        endpoint=profile.endpoint,
        resources=profile.resources,
        enc_key=profile.enc_key,
        stake=bond & _U96,
        locked=work & _U96,
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
    return (self._bond[provider] & _U96) - (self._work[provider] & _U96)


@external
@view
def reputation(provider: address) -> (uint256, uint256, uint256, uint256):
    """
    @dev On-chain outcome counters of `provider`.
    @param provider Any address.
    @return uint256 completed: jobs finalized (saturates at 2**32 - 1).
    @return uint256 missed: jobs reclaimed after a missed deadline (saturating).
    @return uint256 slashed: times stake was slashed (saturating).
    @return uint256 volume: lifetime earnings in token base units.
    """
    work: uint256 = self._work[provider]
    return (work >> 192) & _U32, work >> 224, (self._bond[provider] >> 192) & _U32, (work >> 96) & _U96


@internal
@view
def _lockable(provider: address) -> (bool, uint256):
    """
    @dev Whether `provider` is registered, and its free stake.
    @param provider Any address.
    @return bool registered
    @return uint256 free stake
    """
    bond: uint256 = self._bond[provider]
    return bond & _REGISTERED != 0, (bond & _U96) - (self._work[provider] & _U96)


@internal
def _lock(provider: address, amount: uint256):
    """
    @dev Locks `amount` of free stake as deal collateral; the caller checked it is free.
    @param provider The provider.
    @param amount Token base units, <= free stake (so locked stays <= stake < 2**96).
    """
    # locked is the low field and stays below stake, so no carry
    self._work[provider] += amount


@internal
def _settle(provider: address, collateral: uint256, price: uint256, jobs: uint256):
    """
    @dev Pays a finalized deal: unlocks `collateral`, adds `price` to lifetime
         volume (so to earnings) and `jobs` to completed. Writes slot A only.
    @param provider The provider.
    @param collateral The deal's locked collateral.
    @param price The deal's escrowed price.
    @param jobs The deal's job count.
    """
    work: uint256 = self._work[provider]
    volume: uint256 = ((work >> 96) & _U96) + price
    assert volume <= _U96, "staking: amount too large"
    completed: uint256 = self._saturate((work >> 192) & _U32, jobs)
    self._work[provider] = ((work & _U96) - collateral) | (volume << 96) | (completed << 192) | ((work >> 224) << 224)


@internal
def _miss(provider: address, collateral: uint256, jobs: uint256):
    """
    @dev Records a missed deal: unlocks `collateral` and adds `jobs` to missed.
    @param provider The provider.
    @param collateral The deal's locked collateral.
    @param jobs The deal's job count.
    """
    work: uint256 = self._work[provider]
    missed: uint256 = self._saturate(work >> 224, jobs)
    self._work[provider] = ((work & ~(_U32 << 224)) - collateral) | (missed << 224)


@internal
def _slash(provider: address, amount: uint256, to: address):
    """
    @dev Moves `amount` of `provider`'s stake to `to`'s escrow balance and counts a slash.
         Callers unlock collateral first; `amount` must not exceed stake - locked afterwards.
    @param provider The provider.
    @param amount Token base units.
    @param to The account credited (requester, auditor, ...).
    """
    bond: uint256 = self._bond[provider]
    stake: uint256 = bond & _U96
    assert stake - (self._work[provider] & _U96) >= amount, "staking: insufficient free stake"
    slashed: uint256 = self._saturate((bond >> 192) & _U32, 1)
    self._bond[provider] = ((bond & ~(_U32 << 192)) - amount) | (slashed << 192)
    accounts._credit(to, amount)
    log ProviderSlashed(provider=provider, to=to, amount=amount)


@internal
@pure
def _saturate(counter: uint256, add: uint256) -> uint256:
    """
    @dev counter + add, capped at 2**32 - 1 (counters must never block settlement).
    @param counter A uint32 counter.
    @param add The increment (any size).
    @return uint256 The new counter.
    """
    return min(counter + min(add, _U32), _U32)
