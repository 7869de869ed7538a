"""EIP-712 Bid/Acceptance: digests match a hand-built encoding, signatures round-trip."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from mercato.chain import eip712
from mercato.chain.deployment import dev_accounts
from mercato.domain.deals import Terms

KEYS = dev_accounts()
MARKET = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"  # the devnet market's address
PROVIDER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TERMS = Terms(REQUESTER, PROVIDER, 0, 1, b"\x11" * 32, 1, 2_000_000, 38_000_000, 1_800_000_600, 1_800_000_060)
FIELDS = ("address requester,address provider,uint256 lane,uint256 nonce,bytes32 jobs_root,uint256 jobs,"
          "uint256 price,uint256 collateral,uint256 deadline,uint256 expiry")


def _by_hand(kind: str, terms: Terms, chain_id: int, market: str) -> bytes:
    domain_type = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    separator = keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                              [domain_type, keccak(b"Mercato"), keccak(b"1"), chain_id, market]))
    typehash = keccak(f"{kind}({FIELDS})".encode())
    struct = keccak(encode(["bytes32", "address", "address", "uint256", "uint256", "bytes32", "uint256",
                            "uint256", "uint256", "uint256", "uint256"], [typehash, *terms.to_tuple()]))
    return keccak(b"\x19\x01" + separator + struct)


def test_dev_accounts_are_anvils() -> None:
    assert Account.from_key(KEYS["deployer"]).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert Account.from_key(KEYS["provider1"]).address == PROVIDER
    assert Account.from_key(KEYS["requester1"]).address == REQUESTER


@pytest.mark.parametrize("kind", ["Bid", "Acceptance"])
def test_digest_matches_hand_encoding(kind: eip712.Kind) -> None:
    assert eip712.digest(kind, TERMS, 31337, MARKET) == _by_hand(kind, TERMS, 31337, MARKET)


def test_known_vectors() -> None:
    assert eip712.digest("Bid", TERMS, 31337, MARKET).hex() == (
        "1216903f5655394beef1fcde8c1f6ddd42b0e7a780ba3db2da2de79b4fcf7d70")
    assert eip712.digest("Acceptance", TERMS, 31337, MARKET).hex() == (
        "5d6b9544be39271cdda11a4024d162cf3fe744df9b941961b23ddd9f9c233a23")
    assert eip712.sign_bid(TERMS, KEYS["provider1"], chain_id=31337, market=MARKET).hex() == (
        "200869c0ddbda3d4d1639bd12fab9a9ec65ff015c968daa3c7036dea65ee888c"
        "37ab3062464c86ddaedb04b13a1226caef6bb008f6f9ef9e79dee61f0c08f64a1c")


def test_sign_recover_round_trip_and_v_low_s() -> None:
    bid = eip712.sign_bid(TERMS, KEYS["provider1"], chain_id=31337, market=MARKET)
    acc = eip712.sign_acceptance(TERMS, KEYS["requester1"], chain_id=31337, market=MARKET)
    assert len(bid) == 65 and bid[64] in (27, 28)
    assert int.from_bytes(bid[32:64], "big") <= 2**255  # low-s, as the contract demands
    assert eip712.recover_bid(TERMS, bid, chain_id=31337, market=MARKET) == PROVIDER
    assert eip712.recover_acceptance(TERMS, acc, chain_id=31337, market=MARKET) == REQUESTER


def test_domain_binds_chain_market_and_kind() -> None:
    bid = eip712.sign_bid(TERMS, KEYS["provider1"], chain_id=31337, market=MARKET)
    assert eip712.recover_bid(TERMS, bid, chain_id=1, market=MARKET) != PROVIDER
    assert eip712.recover_bid(TERMS, bid, chain_id=31337, market="0x" + "00" * 20) != PROVIDER
    assert eip712.recover_acceptance(TERMS, bid, chain_id=31337, market=MARKET) != PROVIDER
