# pragma version ~=0.4.3
"""
@title The audit game's hashes, for tests
@custom:contract-name audit_math
@license MIT
@notice Test-only: exposes the seal and claim functions the market uses
        internally, so tests check the off-chain copies
        (mercato.verification.lottery) against the contract's own code.
        Agents compute both off-chain; the market does not export them
        (deployed bytes are kept for the protocol).
"""

from ..modules import audits


@external
@pure
def seal_of(executor: address, deal_id: bytes32, result_root: bytes32, fuel: uint256, salt: bytes32) -> bytes32:
    """
    @dev The seal an executor commits (SPEC §14.2).
    @param executor The provider or auditor committing it.
    @param deal_id The deal.
    @param result_root The execution's result root.
    @param fuel The total fuel the deal's jobs consumed.
    @param salt 32 random bytes.
    @return bytes32 keccak256(abi_encode(executor, deal_id, result_root, fuel, salt)).
    """
    return audits._seal_of(executor, deal_id, result_root, fuel, salt)


@external
@pure
def claim_of(result_root: bytes32, fuel: uint256) -> bytes32:
    """
    @dev The claim a reveal makes, compared between executions.
    @param result_root The execution's result root.
    @param fuel The total fuel.
    @return bytes32 keccak256(abi_encode(result_root, fuel)).
    """
    return audits._claim_of(result_root, fuel)
