# pragma version ~=0.4.3
# pragma experimental-codegen
"""
@title Mercato market
@custom:contract-name market
@license MIT
@notice The money core of the Mercato settlement plane: requester escrow
        (accounts), provider registry, stake, bond rule and sortition
        (staking), deals on provider lanes (deals), and the lottery and
        settlement (settlement), with EIP-712 domain "Mercato" version "1".
        The audit game lives beside it in the court (court.vy), which this
        constructor creates from a blueprint and which reaches money only
        through `penalize` and `close_audit`. No owner, no admin: every
        parameter is fixed at deployment. See docs/SPEC.md.
"""

from ethereum.ercs import IERC20

from .modules import accounts
from .modules import staking
from .modules import deals
from .modules import settlement
from snekmate.utils import eip712_domain_separator as eip712

initializes: accounts
initializes: staking[accounts := accounts]
initializes: eip712
initializes: deals[accounts := accounts, staking := staking, eip712 := eip712]
initializes: settlement[accounts := accounts, staking := staking, book := deals]


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
    # requesters check the value a provider may still carry (bond rule)
    staking.in_flight,
    # clients see who forfeited its stake for good
    staking.jailed,
    # clients learn the lowest audit probability a deal may ask for
    staking.audit_floor_bps,
    # clients learn the bond rule's honest-capacity share
    staking.collusion_bps,
    # clients learn the bond rule's safety margin
    staking.bond_lambda_bps,
    # requesters open a deal from a provider's signed bid
    deals.open_deal,
    # providers open and commit in one call (the gas-critical happy path)
    deals.open_and_commit,
    # providers commit a result seal for a deal opened by the requester
    deals.commit_result,
    # anyone settles drawn deals after the challenge window
    settlement.finalize,
    # anyone runs the lottery with the requester's seeds
    settlement.draw,
    # anyone audits a deal nobody drew in time
    settlement.audit_by_default,
    # requesters have a deal audited within the challenge window
    settlement.challenge,
    # clients learn the lottery's beacon delay (blocks)
    settlement.beacon_delay,
    # clients learn how long draw is accepted (blocks)
    settlement.draw_blocks,
    # clients find the court that runs the audit game
    settlement.court,
    # the court locks a drawn auditor's bond (the court only)
    settlement.bond_seat,
    # the court frees a seat's bond once it committed (the court only)
    settlement.release_seat,
    # the court burns a missed seat's penalty (the court only)
    settlement.penalize,
    # the court applies a verdict (the court only)
    settlement.close_audit,
    # clients read how much forfeited stake was burned
    staking.burned,
    # anyone unwinds deals whose deadline passed uncommitted
    deals.reclaim,
    # clients read a lane to pick the next nonce and check state
    deals.lane,
    # clients compute deal ids exactly as events carry them
    deals.deal_id,
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
    audit: settlement.AuditParams,
    court_blueprint: address,
):
    """
    @dev Deploys the market; every parameter is final.
    @param token The ERC-20 the market settles in.
    @param challenge_window Seconds between a commit and the earliest finalize.
    @param unbond_delay Seconds between `unbond` and `withdraw_stake`.
    @param withdrawal_delay Seconds between `request_withdrawal` and `withdraw`.
    @param miss_penalty_bps Share of a missed deal's collateral paid to the requester.
    @param audit The lottery, audit and bond-rule parameters (SPEC §14.1).
    @param court_blueprint An EIP-5202 blueprint of court.vy; the court is created from it here.
    """
    court: address = create_from_blueprint(court_blueprint, audit.audit_period, audit.committee_size, audit.epoch_blocks)
    accounts.__init__(token, withdrawal_delay)
    staking.__init__(unbond_delay, audit.audit_floor_bps, audit.collusion_bps, audit.bond_lambda_bps, court)
    eip712.__init__("Mercato", "1")
    deals.__init__(challenge_window, miss_penalty_bps)
    settlement.__init__(audit.beacon_delay, audit.draw_blocks, court)
