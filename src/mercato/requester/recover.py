"""Finishing a killed requester's deals from its journal (``Market.recover``, ``mercato jobs recover``).

    >>> async with Market.connect(settings) as m:                       # doctest: +SKIP
    ...     for r in await m.recover():
    ...         print(r.deal_id, r.state, r.settled, r.actions)

For every journal row not yet ``done`` (``requester.journal``) it reads the deal's lane (and,
on a real node, its events) and does what the dead run would have done next:

- **not opened** — the provider may still ``open_and_commit`` with the acceptance until its
  expiry: wait; after it, the deal is ``never_opened`` and nothing was charged;
- **open, no seal, deadline passed** — ``reclaim`` it (price, audit fee and the miss penalty
  come back to the requester);
- **committed, result not on disk** — fetch the provider's status, download every byte, verify
  it against the seal on-chain and save it (``results/<deal_id>/`` and the job's ``out_dir``,
  as ``run`` would); a result that does not open the seal is challenged while the deal is open;
- **committed, seed not revealed, undrawn** — give the provider the seed (so it can ``draw``)
  and, once the beacon block is mined, ``draw`` the deal itself: a deal left undrawn would be
  audited by default after its draw window, paid by the requester's fee;
- **settled** — finalized, reclaimed or refunded by its audit: record it; the row is ``done``
  once the deal is settled and its result is on disk (or it never had one).

Every step is idempotent (a revert that says it was already done is fine), and a row whose
step failed (RPC down, provider down) stays pending for the next call: running ``recover``
twice changes nothing the second time. Nothing here raises for one deal's trouble.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from mercato.chain import MarketClient
from mercato.domain.deals import UNDRAWN, Deal, Terms, hash_prefix
from mercato.domain.wire import DealStatusMsg, SeedMsg, TermsMsg
from mercato.errors import MercatoError, ResultMismatch
from mercato.requester import _verify
from mercato.requester._audits import SETTLED, lottery_status
from mercato.requester.journal import Journal, JournalEntry

if TYPE_CHECKING:
    from mercato.requester.market import Market

__all__ = ["Recovered", "recover"]

log = logging.getLogger("mercato.requester.recover")

_PASSED, _FAILED, _VOID = 3, 4, 5  # AuditResolved.outcome
_COMMITTED = ("committed", "finalized")


@dataclass(frozen=True, slots=True)
class Recovered:
    """One journal row after ``recover``: the requester's state (``verified``, ``mismatch``, ``accepted``,
    or the run's error), how the deal ended on-chain (``settled``, "" while it is not over), what
    this call did (``actions``) and whether anything is left to do (``done``)."""

    deal_id: str
    name: str
    provider: str
    state: str
    settled: str
    done: bool
    has_result: bool
    result_dir: str
    actions: tuple[str, ...]
    note: str


async def recover(market: Market) -> list[Recovered]:
    """Walk the journal of ``market`` (see the module doc); one report per row, oldest first."""
    journal = market.journal
    if journal is None:
        raise MercatoError("this Market keeps no journal: connect with settings (Market.connect(settings)) "
                           "or pass journal=Journal.for_account(...)")
    out = []
    for entry in journal.entries():
        if entry.done:
            out.append(_report(journal, entry, ()))
            continue
        actions: list[str] = []
        try:
            await _recover_one(market, journal, entry, actions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one deal's trouble (RPC down, provider down) must not stop the walk
            journal.update(entry.deal_id, note=f"recover failed this time: {type(exc).__name__}: {exc}"[:500])
            log.warning("could not recover a deal yet", extra={"deal_id": entry.deal_id, "error": str(exc)})
        fresh = journal.get(entry.deal_id)
        assert fresh is not None
        out.append(_report(journal, fresh, tuple(actions)))
    return out


def _report(journal: Journal, e: JournalEntry, actions: tuple[str, ...]) -> Recovered:
    return Recovered(e.deal_id, e.name, e.provider, e.state, e.settled, bool(e.done), journal.has_result(e),
                     e.result_dir, actions, e.note)


async def _recover_one(m: Market, journal: Journal, e: JournalEntry, actions: list[str]) -> None:
    terms = TermsMsg.model_validate(e.terms_json).to_terms()
    deal_id = e.deal_id
    now = await m._now()
    lane = await m._call(m.api.lane, terms.provider, terms.lane)
    is_open = lane.busy and lane.last_nonce == terms.nonce
    events = await _events(m, terms)  # None: no logs (the in-memory fake)
    if is_open:
        opened: bool | None = True
    elif events is not None:
        opened = bool(events["DealOpened"])
    else:
        opened = False if lane.last_nonce < terms.nonce else None  # None: opened and settled, or never opened

    if opened is False:
        if now > terms.expiry:
            _settle(journal, e, "never_opened", "the deal never opened on-chain: nothing was charged")
        else:
            journal.update(deal_id, note=f"not open yet: the provider may open it with the acceptance until "
                                         f"{terms.expiry} (chain time)")
        return

    status = await _provider_status(m, e) if (not journal.has_result(e) and e.state != "mismatch") else None
    claimed = bytes.fromhex((status.seal or "").removeprefix("0x")) if status is not None and status.seal else b""
    # the committed deal (seal, commit time and block): from the logs, or the lane word and the claimed seal
    deal = await m._seals.committed(terms, max(0, min(now, terms.deadline) - 120), claimed)

    # the result: fetch, verify, save
    if deal is not None and not journal.has_result(e) and e.state != "mismatch":
        if status is not None and status.state in _COMMITTED and status.seal and status.salt:
            await _fetch_result(m, journal, e, terms, deal, status, is_open, actions)
        e = journal.get(deal_id) or e

    if is_open:
        if deal is None:
            if await _deal_is_uncommitted(m, terms) and now > terms.deadline:
                await _reclaim(m, journal, e, terms, actions)
            else:
                journal.update(deal_id, note="open on-chain, no seal yet: waiting for the provider until "
                                             f"{terms.deadline} (chain time)")
            return
        await _lottery(m, journal, e, deal, actions)
        journal.update(deal_id, note="open on-chain: waiting for its lottery (and audit) and finalization")
        return

    # not open: settled (or, without logs, possibly never opened)
    if events is not None:
        if events["DealReclaimed"]:
            how = "reclaimed"
        elif events["DealFinalized"]:
            how = "finalized"
        elif any(int(a["outcome"]) in (_FAILED, _VOID) for a in events["AuditResolved"]):
            how = "refunded"
        else:
            how = "finalized" if opened else "never_opened"
    else:
        how = "finalized" if deal is not None or e.state == "verified" else "closed"
    e = journal.get(deal_id) or e
    committed = deal is not None or journal.has_result(e)
    if how == "finalized" and committed and not journal.has_result(e) and e.state != "mismatch":
        journal.update(deal_id, settled=how, note="finalized, but the result could not be fetched yet: the provider "
                                                  "did not serve it (retry later)")
        return
    _settle(journal, e, how, f"settled on-chain: {how}")


def _settle(journal: Journal, e: JournalEntry, how: str, note: str) -> None:
    journal.update(e.deal_id, settled=how, done=1, note=note)


async def _events(m: Market, terms: Terms) -> dict[str, list[dict[str, Any]]] | None:
    """The deal's lifecycle events on a real node; None on an API without logs."""
    api = m.api
    if not isinstance(api, MarketClient):
        return None

    def read() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for name in ("DealOpened", "DealFinalized", "DealReclaimed", "AuditResolved"):
            logs = api.event_logs(name, argument_filters={"deal_id": terms.deal_id})  # AuditResolved: the court's
            found[name] = [dict(log["args"]) for log in logs]
        return found

    return await m._call(read)


async def _provider_status(m: Market, e: JournalEntry) -> DealStatusMsg | None:
    try:
        resp = await m._client().get(f"{e.endpoint.rstrip('/')}/v1/deals/{e.deal_id}", timeout=10)
        return DealStatusMsg.model_validate(resp.json()) if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, ValidationError):
        return None


async def _deal_is_uncommitted(m: Market, terms: Terms) -> bool:
    """Whether the lane holds this deal without a seal (so a reclaim after the deadline is due)."""
    lane = await m._call(m.api.lane, terms.provider, terms.lane)
    return lane.busy and lane.last_nonce == terms.nonce and lane.deal_hash_prefix == hash_prefix(Deal(terms))


async def _fetch_result(m: Market, journal: Journal, e: JournalEntry, terms: Terms, deal: Deal,
                        status: DealStatusMsg, is_open: bool, actions: list[str]) -> None:
    spec_caps = _caps_of(m, e)
    try:
        got = await _verify.download(m._client(), e.endpoint, status, spec_caps, box=m.box)
        salt = bytes.fromhex((status.salt or "").removeprefix("0x"))
        root = _verify.verify(got, salt=salt, onchain_seal=deal.seal, provider=terms.provider, deal_id=e.deal_id)
    except ResultMismatch as exc:
        if "did not serve" in str(exc):  # a download that failed is no verdict: try again later
            journal.update(e.deal_id, note=f"result not downloaded yet: {exc}"[:500])
            return
        journal.outcome(e.deal_id, "mismatch", str(exc))
        actions.append("result mismatch")
        if is_open:
            await m._challenge(deal)
            actions.append("challenged")
        return
    except httpx.HTTPError as exc:
        journal.update(e.deal_id, note=f"result not downloaded yet: {exc}"[:500])
        return
    journal.save_result(e.deal_id, result_root=root, stdout=got.stdout, stderr=got.stderr, outputs=got.outputs,
                        meta={"provider": terms.provider, "price": terms.price, "recovered": True})
    if e.out_dir:
        _verify.write_outputs(Path(e.out_dir), got.outputs)
    actions.append("result verified and saved")


def _caps_of(m: Market, e: JournalEntry) -> tuple[int, int]:
    """The download caps journaled with the deal (``stdout cap,outputs cap``), else generous ones."""
    try:
        stdout_cap, output_cap = (int(x) for x in e.caps.split(","))
        return stdout_cap, output_cap
    except ValueError:
        return 64 << 20, 1 << 30


async def _reclaim(m: Market, journal: Journal, e: JournalEntry, terms: Terms, actions: list[str]) -> None:
    try:
        tx = await m._call(m.api.reclaim, [Deal(terms)])
    except MercatoError as exc:  # the node's clock lags, or the provider committed meanwhile: next time
        journal.update(e.deal_id, note=f"reclaim not possible yet: {exc}"[:500])
        return
    args = tx.events_named("DealReclaimed")[0].args
    actions.append(f"reclaimed (refund {int(args['refund'])}, penalty {int(args['penalty'])})")
    _settle(journal, e, "reclaimed", f"reclaimed: refund {int(args['refund'])}, penalty {int(args['penalty'])}")


async def _lottery(m: Market, journal: Journal, e: JournalEntry, deal: Deal, actions: list[str]) -> None:
    """Reveal the seed to the provider, and draw the deal ourselves once the beacon is mined."""
    status = await lottery_status(m.api, m._call, deal)
    if status != UNDRAWN or status == SETTLED:
        return
    seed = bytes.fromhex(e.seed.removeprefix("0x"))
    if not e.seed_revealed:
        try:
            resp = await m._client().post(f"{e.endpoint.rstrip('/')}/v1/deals/{e.deal_id}/seed",
                                          json=SeedMsg(seed=e.seed).model_dump(), timeout=10)
            if resp.status_code < 300:
                journal.mark_revealed(e.deal_id)
                actions.append("seed revealed")
        except httpx.HTTPError:
            pass
    params = await m._call(m.api.parameters)  # type: ignore[attr-defined]
    beacon = deal.committed_block + int(params["beacon_delay"])
    head = int(await m._call(m.api.block_number))
    if beacon + 2 < head + 1 <= beacon + int(params["draw_blocks"]):
        try:
            await m._call(m.api.draw, [dataclasses.replace(deal, status=UNDRAWN)], [seed])
            actions.append("drew the lottery")
        except MercatoError as exc:  # drawn by the provider meanwhile, or the window moved
            log.info("draw not sent", extra={"deal_id": e.deal_id, "error": str(exc)})
