# pragma version ~=0.4.3
# pragma experimental-codegen
"""
@title Mercato market
@custom:contract-name market
@license MIT
@notice The one deployed contract of the Mercato settlement plane:
        requester escrow (accounts), provider registry and stake
        (staking), and deals on provider lanes (deals), with EIP-712
        domain "Mercato" version "1". No owner, no admin: every
        parameter is fixed at deployment. See docs/SPEC.md.
"""

from ethereum.ercs import IERC20

from .modules import accounts
from .modules import staking
from .modules import deals
from snekmate.utils import eip712_domain_separator as eip712

initializes: accounts
initializes: staking[accounts := accounts]
initializes: eip712
initializes: deals[accounts := accounts, staking := staking, eip712 := eip712]


exports: (
    # requesters fund their escrow
    accounts.deposit,
    # requesters leave through a delay providers can rely on
    accounts.request_withdrawal,
    # requesters change their mind before withdrawing
    accounts.cancel_withdrawal,
    # requesters collect a matured withdrawal (pull payment)
    accounts.withdraw,
    # providers check a requester can pay before bidding
    accounts.balance_of,
    # providers see what is leaving and when
    accounts.pending_withdrawal,
    # clients learn the settlement token
    accounts.token,
    # clients learn the withdrawal delay
    accounts.withdrawal_delay,
    # providers publish their endpoint and keys
    staking.register,
    # providers post collateral
    staking.stake,
    # providers start taking free stake out
    staking.unbond,
    # providers collect unbonded stake (pull payment)
    staking.withdraw_stake,
    # providers collect earnings (pull payment)
    staking.claim_earnings,
    # requesters discover and judge providers
    staking.provider_info,
    # requesters check a provider can cover collateral
    staking.free_stake,
    # clients rank providers by on-chain outcomes
    staking.reputation,
    # clients learn the unbonding delay
    staking.unbond_delay,
    # requesters open a deal from a provider's signed bid
    deals.open_deal,
    # providers open and commit in one call (the gas-critical happy path)
    deals.open_and_commit,
    # providers commit a result seal for a deal opened by the requester
    deals.commit_result,
    # anyone settles committed deals after the challenge window
    deals.finalize,
    # anyone unwinds deals whose deadline passed uncommitted
    deals.reclaim,
    # clients read a lane to pick the next nonce and check state
    deals.lane,
    # clients compute deal ids exactly as events carry them
    deals.deal_id,
    # providers get the exact digest to sign for a bid
    deals.bid_digest,
    # requesters get the exact digest to sign for an acceptance
    deals.acceptance_digest,
    # clients check the Deal they hold matches the lane
    deals.deal_hash,
    # wallets and clients build EIP-712 signatures
    deals.DOMAIN_SEPARATOR,
    # EIP-5267: wallets discover the signing domain
    eip712.eip712Domain,
    # clients learn the challenge window
    deals.challenge_window,
    # clients learn the missed-deadline penalty
    deals.miss_penalty_bps,
)


@deploy
def __init__(
    token: IERC20,
    challenge_window: uint256,
    unbond_delay: uint256,
    withdrawal_delay: uint256,
    miss_penalty_bps: uint256,
):
    """
    @dev Deploys the market; every parameter is final.
    @param token The ERC-20 the market settles in.
    @param challenge_window Seconds between a commit and the earliest finalize.
    @param unbond_delay Seconds between `unbond` and `withdraw_stake`.
    @param withdrawal_delay Seconds between `request_withdrawal` and `withdraw`.
    @param miss_penalty_bps Share of a missed deal's collateral paid to the requester.
    """
    accounts.__init__(token, withdrawal_delay)
    staking.__init__(unbond_delay)
    eip712.__init__("Mercato", "1")
    deals.__init__(challenge_window, miss_penalty_bps)
