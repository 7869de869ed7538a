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
TERMS = Terms(REQUESTER, PROVIDER, 0, 1, b"\x11" * 32, 1, 2_000_000, 38_000_000, 1_800_000_600, 1_800_000_060,
              keccak(b"\x42" * 32), 300, 2_000_000)
FIELDS = ("address requester,address provider,uint256 lane,uint256 nonce,bytes32 jobs_root,uint256 jobs,"
          "uint256 price,uint256 collateral,uint256 deadline,uint256 expiry,bytes32 seed_hash,uint256 audit_bps,"
          "uint256 audit_fee")


def _by_hand(kind: str, terms: Terms, chain_id: int, market: str) -> bytes:
    domain_type = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    separator = keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                              [domain_type, keccak(b"Mercato"), keccak(b"1"), chain_id, market]))
    typehash = keccak(f"{kind}({FIELDS})".encode())
    values = [terms.requester, terms.provider, terms.lane, terms.nonce, terms.jobs_root, terms.jobs, terms.price,
              terms.collateral, terms.deadline, terms.expiry, terms.seed_hash, terms.audit_bps, terms.audit_fee]
    struct = keccak(encode(["bytes32", "address", "address", "uint256", "uint256", "bytes32", "uint256",
                            "uint256", "uint256", "uint256", "uint256", "bytes32", "uint256", "uint256"],
                           [typehash, *values]))
    return keccak(b"\x19\x01" + separator + struct)


def test_dev_accounts_are_anvils() -> None:
    assert Account.from_key(KEYS["deployer"]).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert Account.from_key(KEYS["provider1"]).address == PROVIDER
    assert Account.from_key(KEYS["requester1"]).address == REQUESTER


@pytest.mark.parametrize("kind", ["Bid", "Acceptance"])
def test_digest_matches_hand_encoding(kind: eip712.Kind) -> None:
    assert eip712.digest(kind, TERMS, 31337, MARKET) == _by_hand(kind, TERMS, 31337, MARKET)


@pytest.mark.parametrize("field", ["seed_hash", "audit_bps", "audit_fee"])
def test_verification_terms_are_signed(field: str) -> None:
    changed = {"seed_hash": keccak(b"\x43" * 32), "audit_bps": 301, "audit_fee": 2_000_001}[field]
    other = Terms(**(TERMS.as_message() | {field: changed}))  # type: ignore[arg-type]
    kinds: tuple[eip712.Kind, ...] = ("Bid", "Acceptance")
    for kind in kinds:
        assert eip712.digest(kind, other, 31337, MARKET) != eip712.digest(kind, TERMS, 31337, MARKET)
    bid = eip712.sign_bid(TERMS, KEYS["provider1"], chain_id=31337, market=MARKET)
    assert eip712.recover_bid(other, bid, chain_id=31337, market=MARKET) != PROVIDER


def test_known_vectors() -> None:
    # computed independently: the hand encoding above, cross-checked with eth_account's
    # encode_typed_data over the full type string, signed with Account.unsafe_sign_hash
    assert eip712.digest("Bid", TERMS, 31337, MARKET).hex() == (
        "bce5cf78bbd16f4f9eb17014860bc32b6a41c83f621e9837b05b6360ff60daf7")
    assert eip712.digest("Acceptance", TERMS, 31337, MARKET).hex() == (
        "60661faf27de27a474be4d693d7ad5c29f448059d6d494e2a6a354cfb974249c")
    assert eip712.sign_bid(TERMS, KEYS["provider1"], chain_id=31337, market=MARKET).hex() == (
        "6f9c376d6bc0a835c276e6cd10d2b95a677284ad2cd9cad3395ee0f3725d7a57"
        "434fdbb4603a60e45599db4cedb60947434a6f473cdb618d0a165be51230e8df1c")


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
