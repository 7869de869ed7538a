"""mercato.verification: pure checks of results and the security math of audits (SPEC §12, §14).

    >>> from mercato.verification import recommend, resolve_dispute, split_forfeit
    >>> recommend(1_500_000, risk="low").audit_bps
    300

- ``result_root``: the Merkle root an execution commits to;
- ``lottery``: seed hashes, the lottery value, seals and claims (bit-exact with the contract);
- ``quorum``: first-round and dispute outcomes, who forfeits, how a forfeited pool splits;
- ``bond``: the bond rule, exact and in the contract's WAD integer form;
- ``fees`` and ``params``: audit fees, expected costs and recommended verification terms.
"""

from mercato.verification.bond import (
    DEVNET,
    WAD,
    BondParams,
    bond_ok,
    detection_wad,
    max_deals_at_price,
    max_value_in_flight,
    min_bond,
    min_stake,
    wad_pow,
)
from mercato.verification.fees import audit_fee, expected_overhead_pct, expected_verification_cost
from mercato.verification.lottery import claim_of, is_audited, lottery_value, new_seed, seal_of, seed_hash
from mercato.verification.params import VerifyParams, catch_probability, cheater_profit, recommend, required_bond
from mercato.verification.quorum import (
    FIRST_AUDITOR,
    MAX_AUDIT_ROUNDS,
    PROVIDER,
    FirstRound,
    Outcome,
    Resolution,
    committee_seat,
    first_round,
    resolve_dispute,
    split_forfeit,
)
from mercato.verification.result_root import merkle_root, result_root, sha256_hex

__all__ = [
    "DEVNET",
    "FIRST_AUDITOR",
    "MAX_AUDIT_ROUNDS",
    "PROVIDER",
    "WAD",
    "BondParams",
    "FirstRound",
    "Outcome",
    "Resolution",
    "VerifyParams",
    "audit_fee",
    "bond_ok",
    "catch_probability",
    "cheater_profit",
    "claim_of",
    "committee_seat",
    "detection_wad",
    "expected_overhead_pct",
    "expected_verification_cost",
    "first_round",
    "is_audited",
    "lottery_value",
    "max_deals_at_price",
    "max_value_in_flight",
    "merkle_root",
    "min_bond",
    "min_stake",
    "new_seed",
    "recommend",
    "required_bond",
    "resolve_dispute",
    "result_root",
    "seal_of",
    "seed_hash",
    "sha256_hex",
    "split_forfeit",
    "wad_pow",
]
