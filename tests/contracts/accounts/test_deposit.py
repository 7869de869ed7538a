import boa

from contracts_kit import AUDIT_PARAMS, events, fund, make_party


def test_deposit_credits_available_and_pulls_tokens(token, market):
    alice = make_party(7)
    fund(token, market, alice.address, 500)
    with boa.env.prank(alice.address):
        market.deposit(200)
        market.deposit(300)
    (log,) = events(market, "Deposited")
    assert market.balance_of(alice.address) == 500
    assert token.balanceOf(market.address) == 500
    assert token.balanceOf(alice.address) == 0
    assert (log.account, log.amount, log.available) == (alice.address, 300, 500)


def test_deposit_zero_reverts(market):
    with boa.reverts("accounts: zero amount"):
        market.deposit(0)


def test_deposit_without_allowance_reverts(token, market):
    alice = make_party(7)
    token.mint(alice.address, 10)
    with boa.env.prank(alice.address), boa.reverts("erc20: insufficient allowance"):
        market.deposit(10)


def test_deposit_above_uint128_reverts(token, market):
    alice = make_party(7)
    fund(token, market, alice.address, 2**128)
    with boa.env.prank(alice.address), boa.reverts("accounts: amount too large"):
        market.deposit(2**128)


def test_token_returning_false_reverts(market_deployer, court_blueprint):
    bad = boa.loads(
        """
@external
def transferFrom(a: address, b: address, c: uint256) -> bool:
    return False
"""
    )
    m = market_deployer.deploy(bad.address, 5, 60, 30, 5000, AUDIT_PARAMS, court_blueprint)
    with boa.reverts("accounts: token transfer failed"):
        m.deposit(1)


def test_constructor_checks(market_deployer, court_blueprint, token):
    with boa.reverts("accounts: zero token"):
        market_deployer.deploy(boa.eval("empty(address)"), 5, 60, 30, 5000, AUDIT_PARAMS, court_blueprint)
    with boa.reverts("accounts: delay too long"):
        market_deployer.deploy(token.address, 5, 60, 365 * 86400 + 1, 5000, AUDIT_PARAMS, court_blueprint)
    with boa.reverts("staking: delay too long"):
        market_deployer.deploy(token.address, 5, 365 * 86400 + 1, 30, 5000, AUDIT_PARAMS, court_blueprint)
    with boa.reverts("deals: window too long"):
        market_deployer.deploy(token.address, 365 * 86400 + 1, 60, 30, 5000, AUDIT_PARAMS, court_blueprint)
    with boa.reverts("deals: penalty above 100%"):
        market_deployer.deploy(token.address, 5, 60, 30, 10_001, AUDIT_PARAMS, court_blueprint)
