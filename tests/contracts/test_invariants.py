"""Stateful test of the whole market against a simpler Python model.

Rules only act when the model says the action is valid, so every call must succeed;
invariants only read state. The model follows SPEC §14 on its own terms (lottery
outcome from the off-chain roll, audit phases, no-show penalties, forfeits and the
pool split); only the sortition (who is drawn) is read from the contract, and checked
(never the provider, the requester or a seat drawn before).

Eight providers in two camps. Four are honest: their deals carry the right result, they
commit them in time, and when drawn they commit the right result and reveal it before any
deadline (the model does their duties before time moves). The other four are one adversary:
a sybil group that also buys (the first two: a colluding requester and provider, self-deals
included) and, as providers and auditors, seals wrong results, lies, stays silent or stalls
at will. Two plain requesters; zero-price deals (bond padding), stake moved in and out at any
step (before draws included, down to zero and back below the member minimum). Besides
conservation and each account's books it checks the trust rules of issue 15: honest parties
never lose stake unless the adversary holds a strict majority of a dispute's revealed
executions (the committee-majority condition of SPEC §14.11), penalties burned, a jailed
provider paid only for upheld deals, reputation only for deals worth a unit a job with someone
else, the bond on value, sortition weight only from the member minimum (and from the next
epoch). Up to 40 x 50 = 2,000 steps a run.
"""

from __future__ import annotations

import boa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import contracts_kit as c

from mercato.verification.bond import deals_on_value, next_largest_price

REQUESTERS = [c.make_party(0x100 + i) for i in range(2)]
PROVIDERS = [c.make_party(0x200 + i) for i in range(8)]
EVERYONE = [p.address for p in REQUESTERS + PROVIDERS]
# the honest camp; PROVIDERS[:2] and PROVIDERS[6:] are one adversary (a sybil group with its own buyers)
HONEST = frozenset(p.address for p in PROVIDERS[2:6])
MINT = 10**9
INITIAL_STAKE = 5 * 10**7
INITIAL_DEPOSIT = 10**7
MIN_MEMBER_STAKE = 10**7  # staking._MIN_MEMBER_STAKE: the stake a registered provider needs for a sortition slot
ROOTS = (c.ROOT, c.WRONG_ROOT)
NONE, COMMIT, REVEAL, PASSED, FAILED, VOID = range(6)
# set to a collections.Counter() to see what the runs covered (print it at exit)
STATS = None


class Audit:
    def __init__(self, deal_id, requester, provider, fee, seat):
        self.deal_id, self.requester, self.provider, self.fee = deal_id, requester, provider, fee
        self.phase, self.round, self.dispute = COMMIT, 1, False
        self.deadline = c.now() + c.AUDIT_PERIOD
        self.seats = [seat]
        self.roots = {seat: None}  # committed root per seat (None: not committed)
        self.claims = {seat: None}  # revealed root per seat
        self.provider_claim = None
        self.drawn = {seat}
        self.missed = set()  # seats that missed their commit phase (their bond was taken)
        self.upheld = False  # PASSED with a winning claim (not by default): an auditor re-ran it


class MarketMachine(RuleBasedStateMachine):
    @initialize()
    def deploy(self):
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.token = c._TOKEN_DEPLOYER.deploy()
        self.market = c.deploy_market(self.token)
        self.wallet = {a: MINT for a in EVERYONE}
        self.available = {a: 0 for a in EVERYONE}
        self.pending = {a: (0, 0) for a in EVERYONE}
        self.stake = {a: 0 for a in EVERYONE}
        self.unbonding = {a: (0, 0) for a in EVERYONE}
        self.earned = {a: 0 for a in EVERYONE}
        self.jailed = {a: False for a in EVERYONE}
        self.completed = {a: 0 for a in EVERYONE}
        self.captured = 0  # honest stakes lost to an adversarial majority (allowed, counted)
        # the largest price opened since the value in flight was last zero (rounded as the contract codes it)
        self.largest = {a: 0 for a in EVERYONE}  # reputation: jobs of paid deals worth a unit a job, not self-deals
        self.burned = 0
        # (provider, lane) -> {terms, deal, honest, fee_escrowed}
        self.open: dict[tuple, dict] = {}
        self.nonce: dict[tuple, int] = {}
        self.paid_out: set = set()
        self.audits: dict[bytes, Audit] = {}
        for a in EVERYONE:
            c.fund(self.token, self.market, a, MINT)
        for p in PROVIDERS:
            with boa.env.prank(p.address):
                self.market.register("http://p", b"\0" * 32, b"\0" * 32)
                self.market.stake(INITIAL_STAKE)
            self.wallet[p.address] -= INITIAL_STAKE
            self.stake[p.address] = INITIAL_STAKE
        for r in REQUESTERS:
            with boa.env.prank(r.address):
                self.market.deposit(INITIAL_DEPOSIT)
            self.wallet[r.address] -= INITIAL_DEPOSIT
            self.available[r.address] = INITIAL_DEPOSIT

    def teardown(self):
        if STATS is not None:
            STATS["examples"] += 1
            STATS["opened"] += len(self.paid_out) + len(self.open)
            STATS["audits"] += len(self.audits)
            for au in self.audits.values():
                STATS[("phase", au.phase, "dispute", au.dispute)] += 1
            STATS["jailed"] += sum(self.jailed.values())
            STATS["honest jailed"] += sum(self.jailed[a] for a in HONEST)
            STATS["honest stakes lost to a captured majority"] += self.captured
            STATS["honest seats"] += sum(1 for au in self.audits.values() for s in au.seats if s in HONEST)
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

    # model helpers
    def locked(self, a):
        """Collateral of its open deals, and the fee-sized bond of every audit seat it holds and has not
        committed in (class 9: drawn auditors lock their bond until they commit)."""
        if self.jailed[a]:
            return 0
        collateral = sum(v["terms"]["collateral"] for (p, _), v in self.open.items() if p == a)
        bonds = sum(au.fee for au in self.audits.values() if au.phase in (COMMIT, REVEAL)
                    for s in self.active(au) if s == a and au.roots.get(s) is None and s not in au.missed)
        return collateral + bonds

    def flight(self, a):
        deals = [v["terms"]["price"] for (p, _), v in self.open.items() if p == a]
        return sum(deals), len(deals)

    def key_of(self, deal_id):
        return next(k for k, v in self.open.items() if c.deal_id_of(v["terms"]) == deal_id)

    def forfeit(self, a, captured=False):
        """Jailing: stake, unbonding and unclaimed earnings, all of it. An honest party only ever loses it
        to a dispute the adversary won with a strict majority of the revealed executions."""
        assert a not in HONEST or captured, f"honest {a} forfeits its stake"
        if a in HONEST:
            self.captured += 1
        amount = self.stake[a] + self.unbonding[a][0] + self.earned[a]
        self.stake[a], self.unbonding[a], self.jailed[a], self.earned[a] = 0, (0, 0), True, 0
        return amount

    def penalize(self, au, seat):
        """A seat that never committed: the bond it locked when drawn (nothing if jailed since), burned
        (never paid to a party of the deal)."""
        assert seat not in HONEST, f"honest seat {seat} missed its commit"
        penalty = 0 if self.jailed[seat] else au.fee
        au.missed.add(seat)
        self.stake[seat] -= penalty
        self.burned += penalty

    def silence(self, seat):
        """A seat that committed and did not reveal: its whole stake, burned, as a liar's."""
        assert seat not in HONEST, f"honest seat {seat} did not reveal"
        self.burned += self.forfeit(seat)

    def view(self, au):
        return self.market.audit(au.deal_id)

    def check_seat(self, au, seat):
        assert seat not in (au.provider, au.requester) and seat not in au.drawn
        au.drawn.add(seat)

    def pass_by_default(self, au):
        self.available[au.requester] += au.fee
        self.open[self.key_of(au.deal_id)]["fee_escrowed"] = False
        au.phase = PASSED

    def next_round(self, au):
        if au.round >= c.MAX_AUDIT_ROUNDS:
            self.pass_by_default(au)
            return
        view = self.view(au)
        if view.phase == PASSED:  # nobody could be drawn
            self.pass_by_default(au)
            return
        au.round += 1
        seat = view.seats[0]
        self.check_seat(au, seat)
        au.seats[0] = seat
        au.roots, au.claims = {seat: None}, {seat: None}
        au.phase, au.deadline = COMMIT, c.now() + c.AUDIT_PERIOD

    def resolve(self, au, outcome, winner):
        key = self.key_of(au.deal_id)
        entry = self.open[key]
        # the committee-majority condition: did the adversary hold a strict majority of what was revealed?
        revealed = [(au.provider, au.provider_claim)] + [(s, au.claims.get(s)) for s in au.seats]
        revealed = [(who, claim) for who, claim in revealed if claim is not None]
        captured = 2 * sum(1 for who, claim in revealed if claim == winner and who not in HONEST) > len(revealed)
        pool, provers = 0, []
        for seat in au.seats:
            claim = au.claims.get(seat)
            if claim is None:
                continue
            if claim == winner:
                provers.append(seat)
            else:
                pool += self.forfeit(seat, captured)
        if outcome == FAILED:
            pool += self.forfeit(au.provider, captured)
        first = au.seats[0]
        if winner is not None and au.claims.get(first) == winner:
            self.available[first] += au.fee
        else:
            self.available[au.requester] += au.fee
        if pool:
            half, quarter = pool // 2, pool // 4
            if provers:
                share = half // len(provers)
                for p in provers:
                    self.available[p] += share
                paid = share * len(provers) + quarter
                self.available[au.requester] += quarter
            else:
                paid = half + quarter
                self.available[au.requester] += paid
            self.burned += pool - paid
        entry["fee_escrowed"] = False
        if outcome == FAILED:
            self.available[au.requester] += entry["terms"]["price"]
            self.leave(key)
        au.phase = outcome
        au.upheld = outcome == PASSED and winner is not None

    def resolve_dispute(self, au):
        claims = [au.provider_claim] + [au.claims[s] for s in au.seats if au.claims.get(s) is not None]
        claims = [x for x in claims if x is not None]
        winner = None
        if len(claims) >= 3:
            for x in claims:
                if 2 * claims.count(x) > len(claims):
                    winner = x
        if winner is None:
            key = self.key_of(au.deal_id)
            t = self.open[key]["terms"]
            self.available[au.requester] += t["price"] + t["audit_fee"]
            self.leave(key)
            au.phase = VOID
            assert self.market.is_flagged(t["jobs_root"])
        elif winner == au.provider_claim:
            self.resolve(au, PASSED, winner)
        else:
            self.resolve(au, FAILED, winner)

    def conclude(self, au):
        if au.dispute:
            self.resolve_dispute(au)
            return
        first = au.seats[0]
        pc, ac = au.provider_claim, au.claims[first]
        if pc is None:
            self.resolve(au, FAILED, ac)
        elif ac is None:
            self.next_round(au)
        elif pc == ac:
            self.resolve(au, PASSED, pc)
        else:
            au.dispute = True
            committee = self.view(au).seats[1:]
            for seat in committee:
                self.check_seat(au, seat)
                au.roots[seat] = au.claims[seat] = None
            au.seats += committee
            if not committee:
                self.resolve_dispute(au)
            else:
                au.phase, au.deadline = COMMIT, c.now() + c.AUDIT_PERIOD

    def active(self, au):
        return au.seats[1:] if au.dispute else au.seats[:1]

    def leave(self, key):
        t = self.open.pop(key)["terms"]
        assert (key, t["nonce"]) not in self.paid_out
        self.paid_out.add((key, t["nonce"]))

    def start(self, key, deal_id):
        entry = self.open[key]
        view = self.market.audit(deal_id)
        t = entry["terms"]
        if view.phase == PASSED:  # nobody to draw: passed by default at once
            au = Audit(deal_id, t["requester"], t["provider"], t["audit_fee"], None)
            au.seats = []
            self.audits[deal_id] = au
            self.pass_by_default(au)
            return
        au = Audit(deal_id, t["requester"], t["provider"], t["audit_fee"], view.seats[0])
        assert view.seats[0] not in (au.provider, au.requester)
        self.audits[deal_id] = au

    # accounts
    @rule(who=st.sampled_from(EVERYONE), amount=st.integers(1, 10**6))
    def deposit(self, who, amount):
        with boa.env.prank(who):
            self.market.deposit(amount)
        self.wallet[who] -= amount
        self.available[who] += amount

    @rule(who=st.sampled_from(EVERYONE), frac=st.floats(0.01, 1))
    def request_withdrawal(self, who, frac):
        amount = int(self.available[who] * frac)
        if amount == 0:
            return
        with boa.env.prank(who):
            self.market.request_withdrawal(amount)
        self.available[who] -= amount
        self.pending[who] = (self.pending[who][0] + amount, c.now() + c.WITHDRAWAL_DELAY)

    @rule(who=st.sampled_from(EVERYONE))
    def withdraw(self, who):
        amount, ready = self.pending[who]
        if amount == 0 or c.now() < ready:
            return
        with boa.env.prank(who):
            self.market.withdraw()
        self.wallet[who] += amount
        self.pending[who] = (0, 0)

    @rule(who=st.sampled_from(EVERYONE))
    def cancel_withdrawal(self, who):
        amount, _ = self.pending[who]
        if amount == 0:
            return
        with boa.env.prank(who):
            self.market.cancel_withdrawal()
        self.available[who] += amount
        self.pending[who] = (0, 0)

    # staking
    @rule(who=st.sampled_from(EVERYONE), amount=st.integers(1, 10**7))
    def stake_more(self, who, amount):
        if self.jailed[who]:
            return
        with boa.env.prank(who):
            self.market.stake(amount)
        self.wallet[who] -= amount
        self.stake[who] += amount

    @rule(who=st.sampled_from(EVERYONE), frac=st.floats(0.01, 1))
    def unbond(self, who, frac):
        amount = int((self.stake[who] - self.locked(who)) * frac)
        if amount == 0:
            return
        value, _ = self.flight(who)
        if not c.bond_ok(self.stake[who] - amount, value, deals_on_value(value, self.largest[who])):
            with boa.env.prank(who), boa.reverts("staking: bond in use"):
                self.market.unbond(amount)
            return
        with boa.env.prank(who):
            self.market.unbond(amount)
        self.stake[who] -= amount
        self.unbonding[who] = (self.unbonding[who][0] + amount, c.now() + c.UNBOND_DELAY)

    @rule(who=st.sampled_from(EVERYONE))
    def withdraw_stake(self, who):
        amount, ready = self.unbonding[who]
        if amount == 0 or c.now() < ready:
            return
        with boa.env.prank(who):
            self.market.withdraw_stake()
        self.wallet[who] += amount
        self.unbonding[who] = (0, 0)

    @rule(who=st.sampled_from(EVERYONE))
    def claim(self, who):
        if self.earned[who] == 0:
            return
        with boa.env.prank(who):
            self.market.claim_earnings()
        self.wallet[who] += self.earned[who]
        self.earned[who] = 0

    # deals
    # the requester may be a provider, itself included (self-deals), and the price zero (padding)
    @rule(r=st.sampled_from(REQUESTERS + PROVIDERS[:2]), p=st.sampled_from(PROVIDERS), lane=st.integers(0, 2),
          price=st.integers(0, 10**5), collateral=st.integers(0, 10**6), jobs=st.integers(1, 100),
          fee=st.integers(0, 10**4), audit_bps=st.sampled_from([300, 10_000, 10_000]), honest=st.booleans(),
          optimistic=st.sampled_from([True, True, False]))
    def open(self, r, p, lane, price, collateral, jobs, fee, audit_bps, honest, optimistic):
        key = (p.address, lane)
        if key in self.open or self.available[r.address] < price + fee or self.jailed[p.address]:
            return
        if self.stake[p.address] - self.locked(p.address) < collateral:
            return
        value, _ = self.flight(p.address)
        largest = next_largest_price(self.largest[p.address], value, price)
        t = c.now()
        terms = dict(requester=r.address, provider=p.address, lane=lane, nonce=self.nonce.get(key, 0) + 1,
                     jobs_root=b"\x11" * 32, jobs=jobs, price=price, collateral=collateral,
                     deadline=t + 100, expiry=t + 50, seed_hash=c.SEED_HASH, audit_bps=audit_bps, audit_fee=fee)
        # class 4: the rule counts deals on value (N_eff = max(1, V // m)), not by number
        if not c.bond_ok(self.stake[p.address], value + price, deals_on_value(value + price, largest)):
            with boa.reverts("deals: bond too small"):
                c.open_deal(self.market, terms, p)
            return
        root = c.ROOT if honest or p.address in HONEST else c.WRONG_ROOT
        if optimistic:
            deal = c.open_committed(self.market, terms, r, root)
        else:
            c.open_deal(self.market, terms, p)
            deal = c.deal_tuple(terms)
        self.nonce[key] = terms["nonce"]
        self.open[key] = {"terms": terms, "deal": deal, "root": root, "fee_escrowed": True}
        self.available[r.address] -= price + fee
        self.largest[p.address] = largest

    @rule(r=st.sampled_from(REQUESTERS + PROVIDERS[:2]), p=st.sampled_from(PROVIDERS), lane=st.integers(0, 2),
          price=st.integers(1, 10**5), fee=st.integers(1, 10**4), honest=st.booleans())
    def open_audited(self, r, p, lane, price, fee, honest):
        """A deal audited at once (opened and committed with audit_bps 10000, then drawn), so that audits and
        disputes between the two camps happen often enough to test."""
        key = (p.address, lane)
        if key in self.open:
            return
        type(self).open(self, r, p, lane, price, 0, 1, fee, 10_000, honest, True)
        v = self.open.get(key)
        if v is None:
            return
        self.honest_duties()
        c.mine_to_beacon(v["deal"])
        self.market.draw([v["deal"]], [c.SEED])
        v["deal"] = c.with_status(v["deal"], c.AUDITED)
        self.start(key, c.deal_id_of(v["terms"]))

    @precondition(lambda self: any(v["deal"][2] == 0 for v in self.open.values()))
    @rule(data=st.data())
    def commit(self, data):
        todo = [k for k, v in self.open.items() if v["deal"][2] == 0 and c.now() <= v["terms"]["deadline"]]
        if not todo:
            return
        key = data.draw(st.sampled_from(todo))
        v = self.open[key]
        seal = c.seal_for(self.market, key[0], c.deal_id_of(v["terms"]), v["root"])
        v["deal"] = c.commit(self.market, v["terms"], seal)

    @precondition(lambda self: any(v["deal"][2] and v["deal"][4] == c.UNDRAWN for v in self.open.values()))
    @rule(data=st.data())
    def draw(self, data):
        self.honest_duties()  # mining to the beacon moves time a few seconds
        todo = [k for k, v in self.open.items() if v["deal"][2] and v["deal"][4] == c.UNDRAWN]
        if not todo:
            return
        key = data.draw(st.sampled_from(todo))
        v = self.open[key]
        deal, deal_id = v["deal"], c.deal_id_of(v["terms"])
        if c.block_number() > deal[3] + c.BEACON_DELAY + c.DRAW_BLOCKS:
            self.market.audit_by_default(deal)
            audited = True
        else:
            c.mine_to_beacon(deal)
            audited = c.lottery_roll(deal) < v["terms"]["audit_bps"]
            self.market.draw([deal], [c.SEED])
        v["deal"] = c.with_status(deal, c.AUDITED if audited else c.CLEARED)
        if audited:
            self.start(key, deal_id)

    @precondition(lambda self: any(v["deal"][2] and v["deal"][4] != c.AUDITED for v in self.open.values()))
    @rule(data=st.data())
    def challenge(self, data):
        todo = [k for k, v in self.open.items() if v["deal"][2] and v["deal"][4] != c.AUDITED
                and c.now() < v["deal"][2] + c.CHALLENGE_WINDOW]
        if not todo:
            return
        key = data.draw(st.sampled_from(todo))
        v = self.open[key]
        # the challenge's seed is the beacon block's hash: mine up to it (no time passes)
        beacon = v["deal"][3] + c.BEACON_DELAY
        if c.block_number() <= beacon:
            with boa.env.prank(v["terms"]["requester"]), boa.reverts("deals: beacon not ready"):
                self.market.challenge(v["deal"])
            boa.env.time_travel(blocks=beacon + 1 - c.block_number(), block_delta=0)
        with boa.env.prank(v["terms"]["requester"]):
            self.market.challenge(v["deal"])
        v["deal"] = c.with_status(v["deal"], c.AUDITED)
        self.start(key, c.deal_id_of(v["terms"]))

    @precondition(lambda self: any(au.phase in (COMMIT, REVEAL) for au in self.audits.values()))
    @rule(data=st.data(), actions=st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=8))
    def audit_steps(self, data, actions):
        """Moves audits on, one action each: a seat commits (honestly or not) or someone reveals;
        with stall == 0 nobody acts and the phase is advanced after its deadline (no-shows pay)."""
        for honest, stall in actions:
            live = [au for au in self.audits.values() if au.phase in (COMMIT, REVEAL)]
            if not live:
                return
            self.audit_step(data.draw(st.sampled_from(live)), honest, stall)

    def due(self, au):
        """Who owes the audit's current phase a step."""
        if au.phase == COMMIT:
            return [s for s in self.active(au) if au.roots[s] is None]
        todo = [s for s in self.active(au) if au.roots[s] is not None and au.claims[s] is None]
        if not au.dispute and au.provider_claim is None:
            todo.append(au.provider)
        return todo

    def act(self, au, who, root):
        """`who` takes its step: commits `root` (commit phase) or reveals what it committed (the provider:
        its deal's result)."""
        if au.phase == COMMIT:
            c.commit_as(self.market, who, au.deal_id, root)
            au.roots[who] = root
            if all(au.roots[s] is not None for s in self.active(au)):
                au.phase, au.deadline = REVEAL, c.now() + c.AUDIT_PERIOD
            return
        if who == au.provider:
            root = self.open[self.key_of(au.deal_id)]["root"]
            c.reveal_as(self.market, who, au.deal_id, root)
            au.provider_claim = root
        else:
            c.reveal_as(self.market, who, au.deal_id, au.roots[who])
            au.claims[who] = au.roots[who]
        due = [s for s in self.active(au) if au.roots[s] is not None and au.claims[s] is None]
        if not due and (au.dispute or au.provider_claim is not None):
            self.conclude(au)

    def honest_duties(self):
        """The honest camp acts before time moves: commits its deals and takes every audit step it owes."""
        for key, v in list(self.open.items()):
            if key[0] in HONEST and v["deal"][2] == 0 and c.now() <= v["terms"]["deadline"]:
                seal = c.seal_for(self.market, key[0], c.deal_id_of(v["terms"]), v["root"])
                v["deal"] = c.commit(self.market, v["terms"], seal)
        acted = True
        while acted:
            acted = False
            for au in list(self.audits.values()):
                if au.phase not in (COMMIT, REVEAL) or c.now() > au.deadline:
                    continue
                honest = [who for who in self.due(au) if who in HONEST]
                if honest:
                    self.act(au, honest[0], c.ROOT)
                    acted = True

    def audit_step(self, au, honest, stall):
        self.honest_duties()
        if au.phase not in (COMMIT, REVEAL):
            return
        todo = [who for who in self.due(au) if who not in HONEST]
        if stall == 0 or c.now() > au.deadline or not todo:
            self.advance(au)
            return
        self.act(au, todo[stall % len(todo)], c.ROOT if honest else c.WRONG_ROOT)

    def advance(self, au):
        self.honest_duties()
        if au.phase not in (COMMIT, REVEAL):
            return
        if c.now() <= au.deadline:
            boa.env.time_travel(seconds=au.deadline - c.now() + 1)
        self.market.advance(au.deal_id)
        if au.phase == COMMIT:
            missing = [s for s in self.active(au) if au.roots[s] is None]
            for s in missing:
                self.penalize(au, s)
            if not au.dispute:
                self.next_round(au)
            elif len(missing) < len(self.active(au)):
                au.phase, au.deadline = REVEAL, c.now() + c.AUDIT_PERIOD
            else:
                self.resolve_dispute(au)
        else:
            for s in self.active(au):
                if au.roots[s] is not None and au.claims[s] is None:
                    self.silence(s)
            self.conclude(au)

    @precondition(lambda self: any(v["deal"][2] for v in self.open.values()))
    @rule()
    def finalize(self):
        def ready(v):
            d = v["deal"]
            if not d[2] or c.now() < d[2] + c.CHALLENGE_WINDOW:
                return False
            if d[4] == c.CLEARED:
                return True
            au = self.audits.get(c.deal_id_of(v["terms"]))
            return d[4] == c.AUDITED and au is not None and au.phase == PASSED
        keys = [k for k, v in self.open.items() if ready(v)]
        if not keys:
            return
        self.market.finalize([self.open[k]["deal"] for k in keys])
        for k in keys:
            v = self.open[k]
            t = v["terms"]
            au = self.audits.get(c.deal_id_of(t))
            if self.jailed[t["provider"]] and not (v["deal"][4] == c.AUDITED and au is not None and au.upheld):
                self.available[t["requester"]] += t["price"]  # jail means stop: unaudited work is not paid
            else:
                self.earned[t["provider"]] += t["price"]
                if t["price"] >= t["jobs"] and t["requester"] != t["provider"]:
                    self.completed[t["provider"]] += t["jobs"]
            if v["fee_escrowed"]:
                self.available[t["requester"]] += t["audit_fee"]
            self.leave(k)

    @rule()
    def reclaim(self):
        late = [k for k, v in self.open.items() if v["deal"][2] == 0 and c.now() > v["terms"]["deadline"]]
        if not late:
            return
        self.market.reclaim([self.open[k]["deal"] for k in late])
        for k in late:
            t = self.open[k]["terms"]
            assert t["provider"] not in HONEST, "an honest provider missed its deadline"
            penalty = 0 if self.jailed[t["provider"]] else t["collateral"] * c.MISS_PENALTY_BPS // 10_000
            self.leave(k)
            self.stake[t["provider"]] -= penalty
            self.available[t["requester"]] += t["price"] + t["audit_fee"]
            self.burned += penalty  # never to the requester, who could force the miss

    @rule(seconds=st.integers(1, 120))
    def time_travel(self, seconds):
        self.honest_duties()
        boa.env.time_travel(seconds=seconds)

    def sortition_weight(self, a) -> int:
        """What `a`'s stake counts for in draws from the next epoch: a registered provider's stake from the
        member minimum on, nothing when jailed."""
        registered = a in {p.address for p in PROVIDERS}
        counts = registered and not self.jailed[a] and self.stake[a] >= MIN_MEMBER_STAKE
        return self.stake[a] if counts else 0

    # invariants
    @invariant()
    def books_match_the_model(self):
        """Conservation, every account's books and every stake's locks, reading each account's
        state once per step (the reads, not the checks, are what the run spends its time on)."""
        m = self.market
        held = m.burned()
        assert held == self.burned
        for a in EVERYONE:
            info, available = m.provider_info(a), m.balance_of(a)
            # nobody withdraws what is not theirs
            assert self.token.balanceOf(a) == self.wallet[a]
            assert available == self.available[a] and info[8] == self.earned[a]
            # collateral within stake
            assert info[5] <= info[4]
            assert (info[4], info[5]) == (self.stake[a], self.locked(a))
            assert m.free_stake(a) == self.stake[a] - self.locked(a)
            assert info[6] == self.unbonding[a][0]
            assert m.jailed(a) == self.jailed[a]
            value, count = self.flight(a)
            assert m.in_flight(a) == (value, count, self.largest[a] if value else 0)
            assert m.next_sortition_weight(a) == self.sortition_weight(a)
            assert m.reputation(a)[0] == self.completed[a]
            held += available + m.pending_withdrawal(a)[0] + info[4] + info[6] + info[8]
        # conservation: the market's tokens are exactly what it owes
        held += sum(v["terms"]["price"] + (v["terms"]["audit_fee"] if v["fee_escrowed"] else 0)
                    for v in self.open.values())
        assert self.token.balanceOf(m.address) == held

    @invariant()
    def pays_out_at_most_once(self):
        for (p, lane), nonce in self.nonce.items():
            word = self.market.lane(p, lane)
            assert word & (2**64 - 1) == nonce
            assert (word >> 64 != 0) == ((p, lane) in self.open)

    @invariant()
    def audits_match(self):
        for au in self.audits.values():
            view = self.market.audit(au.deal_id)
            assert view.phase == au.phase
            if au.phase in (COMMIT, REVEAL):
                assert (view.dispute, view.round, view.deadline) == (au.dispute, au.round, au.deadline)
                assert view.seats == au.seats


MarketMachine.TestCase.settings = settings(
    settings.default, max_examples=40, stateful_step_count=50, deadline=None
)
TestMarket = MarketMachine.TestCase
