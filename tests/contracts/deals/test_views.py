import boa
from eth_abi import encode
from eth_utils import keccak

from contracts_kit import as_tuple, sign


def test_deal_id(market, provider):
    assert market.deal_id(provider.address, 3, 9) == keccak(encode(["address", "uint256", "uint256"], [provider.address, 3, 9]))


def test_digests_match_eth_account(market, requester, provider, make_terms):
    from eth_account import Account
    from eth_account.messages import _hash_eip191_message  # noqa: F401  (presence check)

    terms = make_terms()
    for kind, fn, party in (("Bid", market.bid_digest, provider), ("Acceptance", market.acceptance_digest, requester)):
        sig = sign(market, kind, terms, party.key)
        assert Account._recover_hash(fn(as_tuple(terms)), signature=sig) == party.address


def test_domain(market):
    fields, name, version, chain_id, contract, _, _ = market.eip712Domain()
    assert (name, version, contract) == ("Mercato", "1", market.address)
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
             keccak(b"Mercato"), keccak(b"1"), chain_id, market.address],
        )
    )
    assert market.DOMAIN_SEPARATOR() == expected
