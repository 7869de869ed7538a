"""Gas of the happy path (open_and_commit + draw + finalize on a lane used before) and of one audit.

boa does not start a new transaction per call, so each measured call first locks state
changes (original storage values) and resets warm/cold access sets, in a private Env.
Totals add 21,000 intrinsic gas and calldata gas per transaction.
"""

from __future__ import annotations

import boa
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector as selector

import contracts_kit as c
from mercato.verification.lottery import seal_of

TERMS = "(address,address,uint256,uint256,bytes32,uint256,uint256,uint256,uint256,uint256,bytes32,uint256,uint256)"
DEAL = f"({TERMS},bytes32,uint256,uint256,uint256)"
# The pre-audit lifecycle (open_and_commit + finalize) measured 88.3k. The lottery adds a
# third transaction (draw: 21,000 intrinsic + ~3k calldata + the lane rewrite), the bond
# rule one slot (B) on open and finalize, and a CLEARED finalize refunds the audit fee
# (the requester's account word): measured 147,348 (printed below; SPEC §14 gas table).
# Issue "Trust layer v2": the re-cut into Market + court must not make it worse than the
# single contract's 147,532; measured 147,472 after it (one 96-bit check for price and fee).
CEILING = 147_532


def _new_tx():
    state = boa.env.evm.vm.state
    state.lock_changes()
    for i in range(1, 11):  # precompiles are warm in every real transaction
        state.mark_address_warm(i.to_bytes(20, "big"))


def _calldata_gas(data: bytes) -> int:
    return sum(16 if b else 4 for b in data)


def _tx(contract, sender, fn: str, types: list, args: list, call) -> int:
    """Run `call` as a fresh transaction; return execution + intrinsic + calldata gas."""
    _new_tx()
    if sender is None:
        call()
    else:
        with boa.env.prank(sender):
            call()
    data = selector(fn) + encode(types, args)
    return contract._computation.get_gas_used() + 21_000 + _calldata_gas(data)


def _setup():
    token = c._TOKEN_DEPLOYER.deploy()
    market = c.deploy_market(token)
    r, p, a = c.make_party(0xA11CE), c.make_party(0xB0B), c.make_party(0xA0D)
    c.fund(token, market, r.address, c.DEPOSIT)
    with boa.env.prank(r.address):
        market.deposit(c.DEPOSIT)
    for party in (p, a):
        c.fund(token, market, party.address, c.STAKE)
        with boa.env.prank(party.address):
            market.register("http://p", b"\1" * 32, b"\2" * 32)
            market.stake(c.STAKE)
    return market, r, p, a


def _open(market, r, p, nonce, jobs=1, audit_bps=c.AUDIT_FLOOR_BPS, seal=c.SEAL):
    t = c.now()
    terms = dict(requester=r.address, provider=p.address, lane=0, nonce=nonce, jobs_root=b"\x33" * 32,
                 jobs=jobs, price=c.PRICE, collateral=c.COLLATERAL, deadline=t + 3600, expiry=t + 600,
                 seed_hash=c.SEED_HASH, audit_bps=audit_bps, audit_fee=c.AUDIT_FEE)
    sig = c.sign(market, "Acceptance", terms, r.key)
    gas = _tx(market, p.address, f"open_and_commit({TERMS},bytes,bytes32)", [TERMS, "bytes", "bytes32"],
              [c.as_tuple(terms), sig, seal], lambda: market.open_and_commit(c.as_tuple(terms), sig, seal))
    return terms, c.deal_tuple(terms, seal, c.now(), c.block_number()), gas


class _Audited(Exception):
    """The lottery audited one of the measured deals (the block hashes differ run to run)."""


def _measure_cleared() -> list[tuple[int, ...]]:
    rows = []
    with boa.swap_env(boa.Env()):
        c.deterministic_block_hashes()
        market, r, p, _ = _setup()
        for nonce, jobs in ((1, 1), (2, 1), (3, 100)):
            terms, deal, open_gas = _open(market, r, p, nonce, jobs)
            c.mine_to_beacon(deal)
            if c.lottery_roll(deal) < c.AUDIT_FLOOR_BPS:
                raise _Audited
            draw_gas = _tx(market, None, f"draw({DEAL}[],bytes32[])", [f"{DEAL}[]", "bytes32[]"],
                           [[deal], [c.SEED]], lambda: market.draw([deal], [c.SEED]))
            drawn = c.with_status(deal, c.CLEARED)
            boa.env.time_travel(seconds=c.CHALLENGE_WINDOW)
            fin_gas = _tx(market, None, f"finalize({DEAL}[])", [f"{DEAL}[]"], [[drawn]],
                          lambda: market.finalize([drawn]))
            rows.append((nonce, jobs, open_gas, draw_gas, fin_gas, open_gas + draw_gas + fin_gas))
    return rows


def test_happy_path_gas(capsys):
    # the cleared path is measured; each of its three deals clears with probability 0.97, so a fresh
    # chain is tried again when the lottery audits one (ten tries all failing: ~1e-10)
    for _ in range(10):
        try:
            rows = _measure_cleared()
            break
        except _Audited:
            continue
    else:
        raise AssertionError("the lottery audited a measured deal on ten fresh chains")
    with capsys.disabled():
        for row in rows:
            print("\nnonce=%d jobs=%d open_and_commit=%d draw=%d finalize=%d total=%d (intrinsic+calldata included)"
                  % row)
    steady = rows[1][-1]
    assert steady <= CEILING
    assert rows[2][-1] / 100 <= 30_000


def test_audited_path_gas(capsys):
    """One audit that passes in the first round: draw (audited), commit_audit, two reveals, finalize."""
    with boa.swap_env(boa.Env()):
        c.deterministic_block_hashes()
        market, r, p, a = _setup()
        # a first deal so the lane has been used (steady state)
        terms, deal, _ = _open(market, r, p, 1)
        c.settle(market, deal)
        root, fuel, salt = b"\x77" * 32, 123_456, b"\x99" * 32
        deal_id = market.deal_id(p.address, 0, 2)
        provider_seal = seal_of(p.address, deal_id, root, fuel, salt)
        terms, deal, open_gas = _open(market, r, p, 2, audit_bps=10_000, seal=provider_seal)
        c.mine_to_beacon(deal)
        draw_gas = _tx(market, None, f"draw({DEAL}[],bytes32[])", [f"{DEAL}[]", "bytes32[]"],
                       [[deal], [c.SEED]], lambda: market.draw([deal], [c.SEED]))
        assert market.audit(deal_id)[11] == [a.address]
        seal = seal_of(a.address, deal_id, root, fuel, salt)
        commit_gas = _tx(market, a.address, "commit_audit(bytes32,bytes32)", ["bytes32", "bytes32"], [deal_id, seal],
                         lambda: market.commit_audit(deal_id, seal))
        reveal_types = ["bytes32", "bytes32", "uint256", "bytes32"]
        reveal_a = _tx(market, a.address, "reveal(bytes32,bytes32,uint256,bytes32)", reveal_types,
                       [deal_id, root, fuel, salt], lambda: market.reveal(deal_id, root, fuel, salt))
        reveal_p = _tx(market, p.address, "reveal(bytes32,bytes32,uint256,bytes32)", reveal_types,
                       [deal_id, root, fuel, salt], lambda: market.reveal(deal_id, root, fuel, salt))
        assert market.audit(deal_id)[0] == c.PASSED
        drawn = c.with_status(deal, c.AUDITED)
        boa.env.time_travel(seconds=c.CHALLENGE_WINDOW)
        fin_gas = _tx(market, None, f"finalize({DEAL}[])", [f"{DEAL}[]"], [[drawn]],
                      lambda: market.finalize([drawn]))
    total = open_gas + draw_gas + commit_gas + reveal_a + reveal_p + fin_gas
    with capsys.disabled():
        print(f"\naudited path: open_and_commit={open_gas} draw(audited)={draw_gas} commit_audit={commit_gas} "
              f"reveal(auditor)={reveal_a} reveal(provider, resolves PASSED)={reveal_p} finalize={fin_gas} "
              f"total={total} (intrinsic+calldata included)")
    assert total < 1_000_000
