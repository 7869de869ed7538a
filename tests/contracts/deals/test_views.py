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


def test_domain(market, make_terms):
    fields, name, version, chain_id, contract, _, _ = market.eip712Domain()
    assert (name, version, contract) == ("Mercato", "1", market.address)
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
             keccak(b"Mercato"), keccak(b"1"), chain_id, market.address],
        )
    )
    # the market no longer exports DOMAIN_SEPARATOR (eip712Domain says the same, EIP-5267): the off-chain
    # separator is this one, and the digest test above shows the market recovers signers with it
    from eth_account.messages import encode_typed_data

    from mercato.chain import eip712
    from mercato.domain.deals import Terms
    signed = encode_typed_data(full_message=eip712.typed_data("Bid", Terms(**make_terms()), chain_id, market.address))
    assert signed.header == expected
