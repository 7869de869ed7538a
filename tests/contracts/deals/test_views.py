import boa
from eth_abi import encode
from eth_utils import keccak

from contracts_kit import open_deal, sign


def test_deal_id(market, provider):
    assert market.deal_id(provider.address, 3, 9) == keccak(encode(["address", "uint256", "uint256"], [provider.address, 3, 9]))


def test_digests_match_eth_account(market, requester, provider, make_terms):
    """The off-chain EIP-712 digest (mercato.chain.eip712) is what eth_account signs, and the market
    accepts the signature: it recovers the same signer from its own digest when the deal opens."""
    from eth_account import Account

    from mercato.chain import eip712
    from mercato.domain.deals import Terms

    terms = make_terms()
    t = Terms(**terms)
    for kind, party in (("Bid", provider), ("Acceptance", requester)):
        sig = sign(market, kind, terms, party.key)
        digest = eip712.digest(kind, t, boa.env.evm.patch.chain_id, market.address)
        assert Account._recover_hash(digest, signature=sig) == party.address
    open_deal(market, terms, provider)  # the market's own digest recovers the same signer


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
