"""The sealed-bid round: who to ask, asking them all at once, judging what came back, and
whether a round without a compliant bid is worth another, wider window.

    auction = Auction(http, rfq, ask, chain_id=1, market="0x…")
    auction.send(targets)
    rnd = await auction.collect(0.25)
    if not rnd.offers and worth_retrying(rnd):
        auction.send(busy(rnd, targets))      # the busy ones are asked again; the slow ones still run
        rnd = await auction.collect(wider(0.25))   # 1.0 s, then 4.0 s
    late = auction.close()                    # answers still on their way: release any bid in them
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from mercato.chain import recover_bid
from mercato.chain.api import MarketApi
from mercato.domain.wire import RfqAnswer
from mercato.domain.wire import Rfq as RfqMsg
from mercato.errors import NoBids
from mercato.matching import Ask, Offer, ProviderFacts, Reputation, check_bid
from mercato.requester.money import format_musd

__all__ = ["Auction", "Call", "Round", "busy", "registry_facts", "no_bids_error", "no_targets_error", "release_bid",
           "retry_pause", "retry_reason", "wider", "worth_retrying"]

Call = Callable[..., Awaitable[Any]]
_UNKNOWN_REPUTATION = Reputation()  # filled in only when a tie needs it (saves RPC calls)
RETRY_WIDEN = 4  # each retry's bid window is this many times the last one's ...
RETRY_MIN_WINDOW = 1.0  # ... at least this (s) ...
RETRY_MAX_WINDOW = 4.0  # ... and at most this, or the first window if it was longer: shorter than a
# provider's default bid hold (5 s), so a bid that came early in the window is still held at the accept
_BUSY = ("capacity", "bond")  # declines that a moment may cure: lanes or stake taken by other deals


@dataclass(slots=True)
class Round:
    """The outcome of one bid window: compliant offers and why each other provider gave none."""

    asked: int
    offers: list[Offer] = field(default_factory=list)
    causes: dict[str, str] = field(default_factory=dict)  # address -> reason
    kinds: dict[str, str] = field(default_factory=dict)  # address -> declined / silent / rejected / error
    answered: int = 0
    bids: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, deal_id) of every bid received

    def others(self, deal_id: str | None) -> list[tuple[str, str]]:
        """The bids received other than ``deal_id``: each holds a lane at its provider until released."""
        keep = (deal_id or "").lower()
        return [(endpoint, d) for endpoint, d in dict.fromkeys(self.bids) if d.lower() != keep]


async def registry_facts(api: MarketApi, call: Call, only: Sequence[str] | None = None) -> dict[str, ProviderFacts]:
    """Registry entry and free stake of every registered provider, or of the ``only`` ones
    (reputation left blank)."""
    addresses = list(only) if only is not None else await call(api.providers)
    infos = await asyncio.gather(*(call(api.provider_info, a) for a in addresses))
    return {a: ProviderFacts(a, i.registered, i.endpoint, i.stake, i.stake - i.locked, _UNKNOWN_REPUTATION,
                                bytes(i.enc_key))
            for a, i in zip(addresses, infos, strict=True)}


async def release_bid(http: httpx.AsyncClient, endpoint: str, deal_id: str, timeout: float) -> int:
    """``DELETE /v1/bids/{deal_id}``: tell a provider its bid lost so it frees the lane; the status."""
    resp = await http.delete(f"{endpoint.rstrip('/')}/v1/bids/{deal_id}", timeout=timeout)
    return resp.status_code


async def _post_rfq(http: httpx.AsyncClient, endpoint: str, rfq: RfqMsg) -> RfqAnswer:
    resp = await http.post(endpoint.rstrip("/") + "/v1/rfq", json=rfq.model_dump(mode="json"))
    resp.raise_for_status()
    return RfqAnswer.model_validate(resp.json())


class Auction:
    """``Auction(http, rfq, ask, chain_id=1, market="0x…").send(targets)``, then ``await
    auction.collect(0.25)``: one auction's RFQs over one or more windows. Answers are judged as
    they arrive, a provider still answering when a window closes keeps its request running into
    the next window, and ``Round`` sums up every provider's latest answer (``asked`` and
    ``answered``: distinct providers)."""

    def __init__(self, http: httpx.AsyncClient, rfq: RfqMsg, ask: Ask, *, chain_id: int, market: str) -> None:
        self.http, self.rfq, self.ask, self.chain_id, self.market = http, rfq, ask, chain_id, market
        self.round = Round(asked=0)
        self._flying: dict[asyncio.Task[RfqAnswer], tuple[ProviderFacts, Ask]] = {}
        self._asked: set[str] = set()
        self._answered: set[str] = set()

    def send(self, targets: list[ProviderFacts]) -> None:
        """Ask each of ``targets`` now (again, for one asked before), judged against the current ``ask``."""
        for f in targets:
            self._asked.add(f.address)
            self._flying[asyncio.create_task(_post_rfq(self.http, f.endpoint, self.rfq))] = (f, self.ask)
        self.round.asked = len(self._asked)

    async def collect(self, window: float) -> Round:
        """Wait ``window`` seconds at most (less once every request is answered); judge what came."""
        rnd = self.round
        done, pending = await asyncio.wait(self._flying, timeout=window) if self._flying else (set(), set())
        for task in pending:
            _note(rnd, self._flying[task][0].address, "silent", f"did not answer in {window * 1000:.0f} ms")
        for task in done:
            facts, ask = self._flying.pop(task)
            exc = task.exception()
            if exc is not None:
                _note(rnd, facts.address, "error", f"unreachable at {facts.endpoint} ({_short(exc)})")
                continue
            self._answered.add(facts.address)
            _judge(rnd, task.result(), facts, self.rfq, ask, chain_id=self.chain_id, market=self.market)
        rnd.answered = len(self._answered)
        return rnd

    def close(self) -> list[tuple[asyncio.Task[RfqAnswer], str]]:
        """The requests still on their way, as ``(task, endpoint)``: not judged, left running, as a
        bid in them holds a lane at its provider until the caller releases it (cutting the request
        off would leave that to the provider)."""
        late = [(task, facts.endpoint) for task, (facts, _ask) in self._flying.items()]
        self._flying = {}
        return late


def _judge(rnd: Round, answer: RfqAnswer, facts: ProviderFacts, rfq: RfqMsg, ask: Ask, *,
           chain_id: int, market: str) -> None:
    who = facts.address
    if answer.decline is not None:
        _note(rnd, who, "declined", f"{answer.decline.code}: {answer.decline.reason}")
        return
    bid = answer.bid
    if bid is not None:  # compliant or not, it holds a lane there: released unless it wins
        rnd.bids.append((facts.endpoint, bid.deal_id))
    if bid is None or bid.rfq_id != rfq.rfq_id:
        _note(rnd, who, "rejected", "answered without a bid for this RFQ")
        return
    try:
        terms = bid.terms.to_terms()
        signature = bytes.fromhex(bid.signature.removeprefix("0x"))
        signer = recover_bid(terms, signature, chain_id=chain_id, market=market)
    except Exception:  # malformed terms or signature bytes: the bid is unusable, whatever the cause
        _note(rnd, who, "rejected", "bad signature (cannot recover a signer)")
        return
    if terms.provider != who:
        _note(rnd, who, "rejected", f"sent a bid in another provider's name ({terms.provider})")
        return
    offer = Offer(terms, signer, signature, facts.endpoint, facts.enc_key)
    reason = check_bid(offer, ask, facts)
    if reason is not None:
        _note(rnd, who, "rejected", reason)
        return
    rnd.offers.append(offer)


def _note(rnd: Round, who: str, kind: str, reason: str) -> None:
    rnd.causes[who] = reason
    rnd.kinds[who] = kind


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


_ADVICE = {
    "price": "raise max_price",
    "collateral": "lower min_collateral",
    "silent": "widen bid_window",
    "capacity": "try again when providers have free lanes",
    "bond": "try again when providers' deals in flight settle",
    "escrow": "deposit more (`mercato deposit`)",
    # the provider would not sign an expiry that leaves too little time to run before the deadline
    # (or one too far ahead): docs/SPEC.md §13, "Terms a provider refuses"
    "expiry": "raise deadline_s or lower accept_window_s",
    "error": "check the providers are up (`mercato providers`)",
}


def worth_retrying(rnd: Round) -> bool:
    """``worth_retrying(rnd)``: whether another, wider window may bring a compliant bid — a provider
    did not answer within the window, or declined only for now (its lanes or free stake taken by
    other deals)."""
    return any(kind == "silent" or (kind == "declined" and rnd.causes[who].split(":", 1)[0] in _BUSY)
               for who, kind in rnd.kinds.items())


def busy(rnd: Round, targets: list[ProviderFacts]) -> list[ProviderFacts]:
    """``auction.send(busy(rnd, targets))``: the targets whose latest answer was a decline a moment
    may cure (capacity, bond), to be asked again."""
    return [f for f in targets if rnd.kinds.get(f.address) == "declined"
            and rnd.causes[f.address].split(":", 1)[0] in _BUSY]


def wider(window: float) -> float:
    """``wider(0.25), wider(1.0), wider(4.0)`` → 1.0, 4.0, 4.0: the next round's bid window (s)."""
    return max(window, min(max(window * RETRY_WIDEN, RETRY_MIN_WINDOW), RETRY_MAX_WINDOW))


def retry_pause(rnd: Round, window: float) -> float:
    """``await sleep(retry_pause(rnd, 1.0))``: how long to wait before asking the busy providers
    again: the next ``window`` when every provider answered and one was busy (its lanes free as
    bids are released and deals settle); nothing while a slow provider's answer is still on its
    way (waiting for it is the pause)."""
    slow = any(kind == "silent" for kind in rnd.kinds.values())
    some_busy = any(kind == "declined" and rnd.causes[who].split(":", 1)[0] in _BUSY for who, kind in rnd.kinds.items())
    return window if some_busy and not slow else 0.0


def retry_reason(rnd: Round) -> str:
    """``retry_reason(rnd)`` → "3 busy, 1 silent": why a round gets another window, in a few words."""
    counts: dict[str, int] = defaultdict(int)
    for who, kind in rnd.kinds.items():
        code = rnd.causes[who].split(":", 1)[0] if kind == "declined" else kind
        counts["busy" if code in _BUSY else code] += 1
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def no_bids_error(rnd: Round, *, window: float, max_price: int, windows: Sequence[float] = ()) -> NoBids:
    """A ``NoBids`` whose message counts the causes and says what to change; ``windows``: the bid
    windows of every round asked, when there was more than one."""
    groups: dict[str, list[str]] = defaultdict(list)
    for who, kind in rnd.kinds.items():
        groups[kind].append(rnd.causes[who])
    parts, advice = [], []
    for kind, label in (("declined", "declined"), ("rejected", "sent a bid that does not comply"),
                        ("silent", f"did not answer in {window * 1000:.0f} ms"), ("error", "could not be reached")):
        reasons = groups.get(kind, [])
        if not reasons:
            continue
        details = sorted(set(reasons))
        shown = "; ".join(details[:3]) + ("; …" if len(details) > 3 else "")
        parts.append(f"{len(reasons)} {label}" + ("" if kind == "silent" else f" ({shown})"))
        advice += _advice_for(kind, reasons)
    advice = list(dict.fromkeys(advice)) or ["raise max_price or widen bid_window"]
    head = f"{rnd.asked} provider{'s' if rnd.asked != 1 else ''} asked (your max_price {format_musd(max_price)} mUSD)"
    if len(windows) > 1:
        shown = ", ".join(f"{w * 1000:.0f}" for w in windows[:-1]) + f" and {windows[-1] * 1000:.0f} ms"
        head = f"after {len(windows)} rounds (bid windows {shown}), the last: {head}"
    return NoBids(f"no compliant bid: {head}: {', '.join(parts)} — {' or '.join(advice)}",
                  asked=rnd.asked, causes=rnd.causes)


def _advice_for(kind: str, reasons: list[str]) -> list[str]:
    if kind in ("silent", "error"):
        return [_ADVICE[kind]]
    out = [_ADVICE[key] for key in ("price", "collateral", "expiry", "capacity", "bond", "escrow")
           if any(r.startswith(key + ":") or key in r for r in reasons)]
    return out


def short_of_escrow(rnd: Round) -> bool:
    """Whether every provider that declined or sent an unusable bid did so for the requester's
    escrow (at least one did): then a deposit, not other terms, is what would get a bid."""
    answered = [who for who, kind in rnd.kinds.items() if kind in ("declined", "rejected")]
    return bool(answered) and all(rnd.kinds[w] == "declined" and rnd.causes[w].startswith("escrow:") for w in answered)


def no_targets_error(registered: int, min_collateral: int) -> NoBids:
    """``NoBids`` when not one registered provider qualifies to be asked."""
    return NoBids(
        f"no provider to ask: {registered} registered, none with an endpoint and at least "
        f"{format_musd(min_collateral)} mUSD free stake (your min_collateral) — lower min_collateral, "
        "or start a provider (`mercato provider start`)", asked=0, causes={})

