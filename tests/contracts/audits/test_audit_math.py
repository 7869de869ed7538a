"""The seal and claim the market hashes internally are the ones agents compute off-chain."""

from contracts_kit import AUDIT_MATH_DEPLOYER, FUEL, ROOT, WRONG_ROOT, make_party

from mercato.verification.lottery import claim_of, seal_of


def test_off_chain_seal_and_claim_are_the_contracts():
    math = AUDIT_MATH_DEPLOYER.deploy()
    who = make_party(0xE7).address
    deal_id = b"\x42" * 32
    for root, fuel, salt in ((ROOT, FUEL, b"\x01" * 32), (WRONG_ROOT, 0, b"\xff" * 32), (ROOT, 2**256 - 1, b"\0" * 32)):
        assert math.seal_of(who, deal_id, root, fuel, salt) == seal_of(who, deal_id, root, fuel, salt)
        assert math.claim_of(root, fuel) == claim_of(root, fuel)
    # the executor and the deal are bound in: a copied seal names someone else
    assert seal_of(who, deal_id, ROOT, FUEL, b"\x01" * 32) != seal_of(make_party(0xE8).address, deal_id, ROOT, FUEL,
                                                                     b"\x01" * 32)
