import boa

from contracts_kit import events, make_party


def test_register_then_update(market):
    bob = make_party(11)
    with boa.env.prank(bob.address):
        market.register("http://a", b"\x01" * 32, b"\x02" * 32)
        (log,) = events(market, "ProviderRegistered")
        assert log.endpoint == "http://a"
        market.register("http://b", b"\x03" * 32, b"\x04" * 32)
        (log,) = events(market, "ProviderUpdated")
        assert log.endpoint == "http://b"
    info = market.provider_info(bob.address)
    assert (info[0], info[1], info[2], info[3]) == (True, "http://b", b"\x03" * 32, b"\x04" * 32)


def test_empty_endpoint_reverts(market):
    with boa.reverts("staking: empty endpoint"):
        market.register("", b"\x01" * 32, b"\x02" * 32)
