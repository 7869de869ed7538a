import boa

from contracts_kit import DEPOSIT, WITHDRAWAL_DELAY, events, now


def test_request_moves_available_to_pending(market, requester):
    with boa.env.prank(requester.address):
        market.request_withdrawal(100)
    (log,) = events(market, "WithdrawalRequested")
    assert market.balance_of(requester.address) == DEPOSIT - 100
    assert market.pending_withdrawal(requester.address) == (100, now() + WITHDRAWAL_DELAY)
    assert (log.amount, log.pending, log.ready_at) == (100, 100, now() + WITHDRAWAL_DELAY)


def test_adding_restarts_the_timer(market, requester):
    with boa.env.prank(requester.address):
        market.request_withdrawal(100)
        boa.env.time_travel(seconds=20)
        market.request_withdrawal(50)
    assert market.pending_withdrawal(requester.address) == (150, now() + WITHDRAWAL_DELAY)


def test_zero_reverts(market, requester):
    with boa.env.prank(requester.address), boa.reverts("accounts: zero amount"):
        market.request_withdrawal(0)


def test_more_than_available_reverts(market, requester):
    with boa.env.prank(requester.address), boa.reverts("accounts: insufficient balance"):
        market.request_withdrawal(DEPOSIT + 1)


def test_pending_above_uint96_reverts(token, market):
    from contracts_kit import fund, make_party

    whale = make_party(99)
    fund(token, market, whale.address, 2**97)
    with boa.env.prank(whale.address):
        market.deposit(2**97)
        with boa.reverts("accounts: amount too large"):
            market.request_withdrawal(2**96)
