import boa

from contracts_kit import DEPOSIT, events


def test_cancel_returns_pending(market, requester):
    with boa.env.prank(requester.address):
        market.request_withdrawal(100)
        market.cancel_withdrawal()
    (log,) = events(market, "WithdrawalCancelled")
    assert market.balance_of(requester.address) == DEPOSIT
    assert market.pending_withdrawal(requester.address) == (0, 0)
    assert (log.account, log.amount) == (requester.address, 100)


def test_nothing_pending_reverts(market, requester):
    with boa.env.prank(requester.address), boa.reverts("accounts: nothing pending"):
        market.cancel_withdrawal()
