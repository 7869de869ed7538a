import boa

from contracts_kit import AUDIT_PARAMS, DEPOSIT, WITHDRAWAL_DELAY, events


def test_withdraw_pays_after_delay(token, market, requester):
    with boa.env.prank(requester.address):
        market.request_withdrawal(100)
        boa.env.time_travel(seconds=WITHDRAWAL_DELAY)
        market.withdraw()
    (log,) = events(market, "Withdrawn")
    assert token.balanceOf(requester.address) == 100
    assert market.pending_withdrawal(requester.address) == (0, 0)
    assert market.balance_of(requester.address) == DEPOSIT - 100
    assert (log.account, log.amount) == (requester.address, 100)


def test_nothing_pending_reverts(market, requester):
    with boa.env.prank(requester.address), boa.reverts("accounts: nothing pending"):
        market.withdraw()


def test_before_ready_reverts(market, requester):
    with boa.env.prank(requester.address):
        market.request_withdrawal(100)
        boa.env.time_travel(seconds=WITHDRAWAL_DELAY - 1)
        with boa.reverts("accounts: withdrawal not ready"):
            market.withdraw()


def test_token_transfer_failure_reverts(market_deployer, court_blueprint):
    bad = boa.loads(
        """
@external
def transferFrom(a: address, b: address, c: uint256) -> bool:
    return True

@external
def transfer(a: address, c: uint256) -> bool:
    return False
"""
    )
    m = market_deployer.deploy(bad.address, 5, 60, 0, 5000, AUDIT_PARAMS, court_blueprint)
    m.deposit(5)
    m.request_withdrawal(5)
    with boa.reverts("accounts: token transfer failed"):
        m.withdraw()
