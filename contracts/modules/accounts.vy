# pragma version ~=0.4.3
"""
@title Requester escrow accounts
@custom:contract-name accounts
@license MIT
@notice Holds requesters' escrow in the one ERC-20 fixed at deployment.
        Withdrawals are two-step (request, then withdraw after
        `withdrawal_delay`) so a provider can rely on a balance it has
        seen for at least that long. Payments are pull-only.

        Storage: one word per account, so opening a deal touches one
        slot for the requester:
            bits   0..127  available  (spendable by deals, uint128)
            bits 128..223  pending    (on its way out, uint96)
            bits 224..255  ready_at   (unix time `withdraw` opens, uint32)
        Amounts above those bounds revert "accounts: amount too large";
        uint96 is ~7.9e28 base units, far beyond any 6-decimal stable.
"""

from . import errors

from ethereum.ercs import IERC20


event Deposited:
    account: indexed(address)
    amount: uint256
    available: uint256


event WithdrawalRequested:
    account: indexed(address)
    amount: uint256
    pending: uint256
    ready_at: uint256


event WithdrawalCancelled:
    account: indexed(address)
    amount: uint256


event Withdrawn:
    account: indexed(address)
    amount: uint256


_U32: constant(uint256) = 2**32 - 1
_U96: constant(uint256) = 2**96 - 1
_U128: constant(uint256) = 2**128 - 1
# longest delay accepted at deployment; keeps ready_at far inside uint32
_MAX_DELAY: constant(uint256) = 365 * 86400


token: public(immutable(IERC20))
withdrawal_delay: public(immutable(uint256))

_accounts: HashMap[address, uint256]


@deploy
def __init__(token_: IERC20, withdrawal_delay_: uint256):
    """
    @dev Fixes the settlement token and the withdrawal delay forever.
    @param token_ The ERC-20 every balance is denominated in.
    @param withdrawal_delay_ Seconds between `request_withdrawal` and `withdraw`.
    """
    if token_.address == empty(address):
        errors._fail("accounts: zero token")
    if withdrawal_delay_ > _MAX_DELAY:
        errors._fail("accounts: delay too long")
    token = token_
    withdrawal_delay = withdrawal_delay_


@external
@nonreentrant
def deposit(amount: uint256):
    """
    @dev Pulls `amount` tokens from the caller (needs an allowance) into its available balance.
    @param amount Token base units.
    """
    if amount == 0:
        errors._fail("accounts: zero amount")
    word: uint256 = self._accounts[msg.sender]
    available: uint256 = (word & _U128) + amount
    if available > _U128:
        errors._fail("accounts: amount too large")
    # available sits in the low bits and does not overflow them
    self._accounts[msg.sender] = word + amount
    self._pull(msg.sender, amount)
    log Deposited(account=msg.sender, amount=amount, available=available)


@external
@nonreentrant
def request_withdrawal(amount: uint256):
    """
    @dev Moves `amount` from available to pending; `withdraw` opens after
         `withdrawal_delay`. Adding to an existing pending amount restarts the timer.
    @param amount Token base units.
    """
    if amount == 0:
        errors._fail("accounts: zero amount")
    available: uint256 = 0
    pending: uint256 = 0
    ready_at: uint256 = 0
    available, pending, ready_at = self._unpack(self._accounts[msg.sender])
    if available < amount:
        errors._fail("accounts: insufficient balance")
    pending += amount
    if pending > _U96:
        errors._fail("accounts: amount too large")
    ready_at = block.timestamp + withdrawal_delay
    self._accounts[msg.sender] = self._pack(available - amount, pending, ready_at)
    log WithdrawalRequested(account=msg.sender, amount=amount, pending=pending, ready_at=ready_at)


@external
@nonreentrant
def cancel_withdrawal():
    """
    @dev Returns the whole pending amount to the caller's available balance.
    """
    available: uint256 = 0
    pending: uint256 = 0
    ready_at: uint256 = 0
    available, pending, ready_at = self._unpack(self._accounts[msg.sender])
    if pending == 0:
        errors._fail("accounts: nothing pending")
    available += pending
    if available > _U128:
        errors._fail("accounts: amount too large")
    self._accounts[msg.sender] = available
    log WithdrawalCancelled(account=msg.sender, amount=pending)


@external
@nonreentrant
def withdraw():
    """
    @dev Pays the caller its pending amount once `ready_at` has passed.
    """
    available: uint256 = 0
    pending: uint256 = 0
    ready_at: uint256 = 0
    available, pending, ready_at = self._unpack(self._accounts[msg.sender])
    if pending == 0:
        errors._fail("accounts: nothing pending")
    if block.timestamp < ready_at:
        errors._fail("accounts: withdrawal not ready")
    self._accounts[msg.sender] = available
    self._push(msg.sender, pending)
    log Withdrawn(account=msg.sender, amount=pending)


@external
@view
def balance_of(account: address) -> uint256:
    """
    @dev The available (deal-spendable) balance of `account`.
    @param account Any address.
    @return uint256 Token base units.
    """
    return self._accounts[account] & _U128


@external
@view
def pending_withdrawal(account: address) -> (uint256, uint256):
    """
    @dev The pending withdrawal of `account`.
    @param account Any address.
    @return uint256 The pending amount (0 when none).
    @return uint256 The unix time from which `withdraw` succeeds.
    """
    word: uint256 = self._accounts[account]
    return (word >> 128) & _U96, word >> 224


@internal
def _debit(account: address, amount: uint256) -> bool:
    """
    @dev Takes `amount` from `account`'s available balance if it is there
         (one read and one write of the account word).
    @param account The requester.
    @param amount Token base units.
    @return bool False, changing nothing, when available < amount.
    """
    word: uint256 = self._accounts[account]
    if word & _U128 < amount:
        return False
    # available is the low field and amount <= available: no borrow
    self._accounts[account] = unsafe_sub(word, amount)
    return True


@internal
def _credit(account: address, amount: uint256):
    """
    @dev Adds `amount` to `account`'s available balance (refunds, penalties).
    @param account The receiver.
    @param amount Token base units.
    """
    word: uint256 = self._accounts[account]
    if (word & _U128) + amount > _U128:
        errors._fail("accounts: amount too large")
    self._accounts[account] = word + amount


@internal
def _pull(sender: address, amount: uint256):
    """
    @dev Moves `amount` tokens from `sender` to the market (needs an allowance).
    @param sender The payer.
    @param amount Token base units.
    """
    if not extcall token.transferFrom(sender, self, amount, default_return_value=True):
        errors._fail("accounts: token transfer failed")


@internal
def _push(to: address, amount: uint256):
    """
    @dev Moves `amount` tokens from the market to `to`.
    @param to The payee.
    @param amount Token base units.
    """
    if not extcall token.transfer(to, amount, default_return_value=True):
        errors._fail("accounts: token transfer failed")


@internal
@pure
def _unpack(word: uint256) -> (uint256, uint256, uint256):
    """
    @dev Splits an account word into (available, pending, ready_at).
    @param word The packed account word.
    @return uint256 available
    @return uint256 pending
    @return uint256 ready_at
    """
    return word & _U128, (word >> 128) & _U96, word >> 224


@internal
@pure
def _pack(available: uint256, pending: uint256, ready_at: uint256) -> uint256:
    """
    @dev Joins (available, pending, ready_at) into an account word; callers keep the bounds.
    @param available uint128 field.
    @param pending uint96 field.
    @param ready_at uint32 field.
    @return uint256 The packed word.
    """
    return available | (pending << 128) | (ready_at << 224)
