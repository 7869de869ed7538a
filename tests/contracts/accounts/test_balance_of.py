from contracts_kit import DEPOSIT, make_party


def test_balance_of(market, requester):
    assert market.balance_of(requester.address) == DEPOSIT
    assert market.balance_of(make_party(5).address) == 0


def test_pending_withdrawal_default(market):
    assert market.pending_withdrawal(make_party(5).address) == (0, 0)


def test_parameters(market, token):
    assert market.token() == token.address
    assert market.withdrawal_delay() == 30
    assert market.unbond_delay() == 60
    assert market.challenge_window() == 5
    assert market.miss_penalty_bps() == 5000
