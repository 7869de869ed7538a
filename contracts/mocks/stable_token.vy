# pragma version ~=0.4.3
"""
@title Mock stable token (devnet only)
@custom:contract-name stable_token
@license MIT
@notice A 6-decimal ERC-20 built on snekmate's `erc20` whose `mint`
        anyone may call. It exists so the devnet and the tests can fund
        accounts; never deploy it where the token must have value.
"""

from ethereum.ercs import IERC20
implements: IERC20

from ethereum.ercs import IERC20Detailed
implements: IERC20Detailed

from snekmate.auth import ownable
initializes: ownable

from snekmate.tokens import erc20
initializes: erc20[ownable := ownable]


exports: (
    # the standard ERC-20 surface the market and wallets call
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.allowance,
    erc20.transfer,
    erc20.transferFrom,
    erc20.approve,
    # metadata wallets and the SDK display
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    # EIP-2612 so tests can exercise gasless approvals
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
)


@deploy
def __init__():
    """
    @dev Deploys "Mock USD" (mUSD) with 6 decimals, like the stables it stands in for.
    """
    ownable.__init__()
    erc20.__init__("Mock USD", "mUSD", 6, "Mock USD", "1")


@external
def mint(to: address, amount: uint256):
    """
    @dev Creates `amount` tokens for `to`. Deliberately open to anyone: devnet faucet.
    @param to The receiver of the new tokens.
    @param amount The amount in base units (6 decimals).
    """
    erc20._mint(to, amount)
