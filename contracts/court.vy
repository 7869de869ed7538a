# pragma version ~=0.4.3
"""
@title Mercato court
@custom:contract-name court
@license MIT
@notice The audit game of the Mercato settlement plane, beside the Market
        that holds the money: blind audits (commit, then reveal), disputes
        decided by a stake-weighted committee, and the verdicts the Market
        applies. The Market creates it at deployment from a blueprint and is
        its only caller for `open_audit`; it calls back only the Market's
        `seat_at`, `penalize` and `close_audit`. No owner, no admin: every
        parameter is fixed at deployment. See docs/SPEC.md §14.
"""

from .modules import sortition
from .modules import audits

initializes: sortition
initializes: audits[sortition := sortition]


exports: (
    # the Market hands an audited deal over (the Market only)
    audits.open_audit,
    # the Market reads an audit's phase and winning claim to pay a deal
    audits.verdict,
    # drawn auditors commit their blind result seal
    audits.commit_audit,
    # provider and auditors reveal their executions
    audits.reveal,
    # anyone moves an audit past a phase deadline
    audits.advance,
    # agents read an audit's phase, seats, seals and claims
    audits.audit,
    # clients rank providers and auditors by audit outcomes
    audits.audit_record,
    # clients avoid workloads found non-deterministic
    audits.is_flagged,
    # agents learn each audit phase's length (seconds)
    audits.audit_period,
    # clients learn the dispute committee size
    audits.committee_size,
    # clients learn the first-auditor rounds before a pass by default
    audits.MAX_AUDIT_ROUNDS,
    # clients find the Market this court serves
    audits.market,
    # the Market reports each change of a provider's stake (the Market only)
    audits.set_weight,
    # clients see each provider's weight in this epoch's auditor draws
    audits.sortition_weight,
    # providers see what their stake counts for from the next epoch
    audits.next_sortition_weight,
    # clients learn how long sortition weights stay fixed (blocks)
    sortition.epoch_blocks,
)


@deploy
def __init__(audit_period: uint256, committee_size: uint256, epoch_blocks: uint256):
    """
    @dev Deployed by the Market's constructor (from a blueprint): the
         deployer is the Market.
    @param audit_period Seconds for each commit and each reveal phase.
    @param committee_size Auditors drawn on a mismatch (1..5).
    @param epoch_blocks Blocks during which sortition weights stay fixed (1..256).
    """
    sortition.__init__(epoch_blocks)
    audits.__init__(audit_period, committee_size)
