"""MarketClient against a real anvil: the fake's scenarios, plus what only a node can show."""

from __future__ import annotations

from dataclasses import replace

import chain_scenarios as S
import pytest
from chain_scenarios import Parties
from web3 import Web3

from mercato.chain import MAX_BATCH, Deployment, MarketApi, MarketClient
from mercato.domain.deals import AUDITED


def test_client_implements_the_protocol(clients: dict[str, MarketClient]) -> None:
    assert isinstance(clients["requester1"], MarketApi)


def test_parameters_are_the_devnet_defaults(clients: dict[str, MarketClient]) -> None:
    assert clients["deployer"].parameters() == {
        "challenge_window": 5, "unbond_delay": 60, "withdrawal_delay": 30, "miss_penalty_bps": 5000,
        "audit_floor_bps": 1, "collusion_bps": 9000, "bond_lambda_bps": 15000, "beacon_delay": 2,
        "draw_blocks": 200, "audit_period": 20, "committee_size": 5}  # chain_kit.KIT_PARAMS


def test_dev_accounts_are_funded(clients: dict[str, MarketClient], deployment: Deployment) -> None:
    for name, address in deployment.accounts.items():
        # every account got FUND_AMOUNT (1,000,000 mUSD); the kit staked 500,000 of provider1's
        assert clients["deployer"].token_balance(address) >= 400_000 * 10**6, name


def test_views_match_python(parties: Parties) -> None:
    r = parties.requester
    t = S.terms(parties, lane=99)
    assert r.deal_id(t.provider, t.lane, t.nonce) == t.deal_id


def test_bid_lifecycle(parties: Parties) -> None:
    S.bid_lifecycle(parties, lane=0)


def test_acceptance_batch(parties: Parties) -> None:
    S.acceptance_batch(parties, lane=10)


def test_reclaim_missed(parties: Parties) -> None:
    S.reclaim_missed(parties, lane=20)


def test_typed_reverts(parties: Parties) -> None:
    S.typed_reverts(parties, lane=30)


def test_escrow_and_stake(parties: Parties) -> None:
    S.escrow_and_stake(parties)


def test_gas_is_reported_and_events_decoded(parties: Parties, w3: Web3) -> None:
    r, v = parties.requester, parties.provider
    t = S.terms(parties, lane=50)
    dt = v.open_and_commit(t, r.sign_acceptance(t), S.SEAL)
    receipt = w3.eth.get_transaction_receipt(dt.tx.tx_hash)
    assert dt.tx.gas_used == receipt["gasUsed"] > 21_000
    opened = dt.tx.events_named("DealOpened")[0].args
    assert opened["provider"] == v.address and opened["jobs_root"] == t.jobs_root
    assert dt.deal.committed_at == dt.tx.timestamp


def test_nonce_manager_survives_external_use(clients: dict[str, MarketClient], deployment: Deployment,
                                             w3: Web3) -> None:
    """Another client using the same key makes our counter stale: we resync on 'nonce too low'."""
    a = MarketClient.from_deployment(w3, deployment, deployment.keys["requester2"])
    b = MarketClient.from_deployment(w3, deployment, deployment.keys["requester2"])
    a.deposit(1_000)
    b.deposit(1_000)
    a.deposit(1_000)  # a's counter is one behind: must resync, not fail
    assert a.balance_of() >= 3_000


def test_batch_limit(clients: dict[str, MarketClient]) -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_BATCH}"):
        clients["requester1"].finalize([object()] * (MAX_BATCH + 1))  # type: ignore[list-item]


def test_the_court_is_the_markets_and_both_log_into_one_receipt(parties: Parties, clients: dict[str, MarketClient],
                                                                 deployment: Deployment, w3: Web3) -> None:
    """The deployment records the court the Market created; a draw that starts an audit logs
    DealDrawn from the Market and AuditorDrawn from the court, and the client decodes both."""
    r, v = parties.requester, parties.provider
    assert deployment.court and r.court_address == deployment.court == r.contract.functions.court().call()
    assert replace(deployment, court="").court_address(w3) == deployment.court  # an older file asks the Market
    auditor = clients["provider10"]  # someone besides the deal's provider to draw
    if not auditor.provider_info().registered:
        auditor.register("http://127.0.0.1:7010", b"\x01" * 32, b"\x02" * 32)
        auditor.stake(100_000 * 10**6)
    t = S.terms(parties, lane=60, audit_bps=10_000)  # the lottery audits it for sure
    deal = v.open_and_commit(t, r.sign_acceptance(t), S.SEAL).deal
    S.mine(parties, max(0, deal.committed_block + S.BEACON_DELAY - r.block_number()))
    (drawn,) = v.draw([deal], [S.SEED])
    assert drawn.deal.status == AUDITED
    assert [e.name for e in drawn.tx.events if e.name in ("DealDrawn", "AuditorDrawn")] == ["DealDrawn", "AuditorDrawn"]
    seat = drawn.tx.events_named("AuditorDrawn")[0].args
    assert seat["deal_id"] == t.deal_id and seat["seat"] == 0
    receipt = w3.eth.get_transaction_receipt(drawn.tx.tx_hash)
    emitters = {ev.name: lg["address"] for lg in receipt["logs"] if (ev := r.decode_log(lg)) is not None}
    assert emitters["DealDrawn"] == r.market and emitters["AuditorDrawn"] == r.court_address
    # the court's views and log queries
    assert r.audit(t.deal_id).seat_of(seat["auditor"]) == 0
    assert [bytes(e["args"]["deal_id"]) for e in r.event_logs("AuditorDrawn", argument_filters={"deal_id": t.deal_id})] \
        == [t.deal_id]
    assert r.event_logs("DealDrawn", argument_filters={"deal_id": t.deal_id})[0]["address"] == r.market
