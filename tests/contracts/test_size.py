"""Each deployed contract keeps 4 KB of room under EIP-170 (24,576 bytes of runtime code, immutables included).

The Market holds the money and the court runs the audit game beside it (issue "Trust layer v2"): the
re-cut exists so that later rules (delayed sortition weights, a bond on value, leases) fit, so the
test fails at 20,480 bytes, well before a contract would stop deploying on any EVM chain."""

import boa

from contracts_kit import deploy_market

EIP170 = 24_576
LIMIT = EIP170 - 4_096


def test_each_contract_keeps_4kb_under_eip170(token):
    market = deploy_market(token)
    sizes = {"market": len(boa.env.get_code(market.core.address)), "court": len(boa.env.get_code(market.court.address))}
    for name, size in sizes.items():
        print(f"{name} deployed code: {size} bytes, {EIP170 - size} under EIP-170")
    assert sizes["market"] <= LIMIT, sizes
    assert sizes["court"] <= LIMIT, sizes


def test_the_court_belongs_to_its_market(token):
    market = deploy_market(token)
    assert market.court.market() == market.core.address
    assert market.core.court() == market.court.address
