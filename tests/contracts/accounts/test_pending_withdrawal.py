import boa

from contracts_kit import DEPOSIT, make_party, now


def test_pending_withdrawal_reports_amount_and_ready_time(market, requester):
    assert market.pending_withdrawal(requester.address) == (0, 0)
    with boa.env.prank(requester.address):
        market.request_withdrawal(DEPOSIT // 4)
    assert market.pending_withdrawal(requester.address) == (DEPOSIT // 4, now() + market.withdrawal_delay())
    with boa.env.prank(requester.address):
        market.cancel_withdrawal()
    assert market.pending_withdrawal(requester.address)[0] == 0
    assert market.balance_of(requester.address) == DEPOSIT


def test_pending_withdrawal_of_a_stranger_is_empty(market):
    assert market.pending_withdrawal(make_party(42).address) == (0, 0)
