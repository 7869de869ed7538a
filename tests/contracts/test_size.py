"""The deployed market must fit EIP-170 (24,576 bytes of runtime code, immutables included).

The issue "Trust layer v2" asks for 4 KB of room (a test at 20,480 bytes) once the contracts are re-cut
into a small money-holding core and the audit game beside it; until then this test holds the hard limit,
which a contract over it fails at deployment on every EVM chain (boa's py-evm included)."""

import boa

from contracts_kit import deploy_market

EIP170 = 24_576


def test_market_fits_eip170(token):
    market = deploy_market(token)
    size = len(boa.env.get_code(market.address))
    print(f"market deployed code: {size} bytes, {EIP170 - size} under EIP-170")
    assert size <= EIP170
