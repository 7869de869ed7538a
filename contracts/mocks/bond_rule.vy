# pragma version ~=0.4.3
"""
@title The bond rule, for tests
@custom:contract-name bond_rule
@license MIT
@notice Test-only: the staking module's bond rule (SPEC §14.6) on its own, so
        tests check the off-chain copy (mercato.verification.bond) against the
        contract's own code over many values. The market does not export it
        (deployed bytes are kept for the protocol); `open_deal` applies it.
"""

from ethereum.ercs import IERC20

from ..modules import accounts
from ..modules import staking

initializes: accounts
initializes: staking[accounts := accounts]

exports: staking.bond_allows


@deploy
def __init__(audit_floor_bps_: uint256, collusion_bps_: uint256, bond_lambda_bps_: uint256):
    """
    @dev The rule's three parameters, as the market takes them.
    @param audit_floor_bps_ p_min.
    @param collusion_bps_ d.
    @param bond_lambda_bps_ lambda.
    """
    # any non-zero token: the rule never moves money
    accounts.__init__(IERC20(self), 0)
    staking.__init__(0, audit_floor_bps_, collusion_bps_, bond_lambda_bps_, empty(address))


@external
@pure
def price_code(price: uint256) -> uint256:
    """
    @dev The code the market stores for the largest price in flight (test-only export).
    @param price Token base units (< 2**96).
    @return uint256 The 32-bit code.
    """
    return staking._code(price)
