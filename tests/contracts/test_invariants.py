"""Stateful test of the whole market against a simpler Python model.

Rules only act when the model says the action is valid, so every call must succeed;
invariants only read state.
"""

from __future__ import annotations

import boa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import contracts_kit as c

REQUESTERS = [c.make_party(0x100 + i) for i in range(2)]
PROVIDERS = [c.make_party(0x200 + i) for i in range(2)]
EVERYONE = [p.address for p in REQUESTERS + PROVIDERS]
MINT = 10**9


class MarketMachine(RuleBasedStateMachine):
    @initialize()
    def deploy(self):
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.token = c._TOKEN_DEPLOYER.deploy()
        self.market = c._MARKET_DEPLOYER.deploy(
            self.token.address, c.CHALLENGE_WINDOW, c.UNBOND_DELAY, c.WITHDRAWAL_DELAY, c.MISS_PENALTY_BPS
        )
        self.wallet = {a: MINT for a in EVERYONE}
        self.available = {a: 0 for a in EVERYONE}
        self.pending = {a: (0, 0) for a in EVERYONE}
        self.stake = {a: 0 for a in EVERYONE}
        self.locked = {a: 0 for a in EVERYONE}
        self.unbonding = {a: (0, 0) for a in EVERYONE}
        self.earned = {a: 0 for a in EVERYONE}
        self.open: dict[tuple, dict] = {}  # (provider, lane) -> {terms, seal, committed_at}
        self.nonce: dict[tuple, int] = {}
        self.paid_out: set = set()
        for a in EVERYONE:
            c.fund(self.token, self.market, a, MINT)
        for p in PROVIDERS:
            with boa.env.prank(p.address):
                self.market.register("http://p", b"\0" * 32, b"\0" * 32)

    def teardown(self):
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

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
        with boa.env.prank(who):
            self.market.stake(amount)
        self.wallet[who] -= amount
        self.stake[who] += amount

    @rule(who=st.sampled_from(EVERYONE), frac=st.floats(0.01, 1))
    def unbond(self, who, frac):
        amount = int((self.stake[who] - self.locked[who]) * frac)
        if amount == 0:
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
    @rule(r=st.sampled_from(REQUESTERS), p=st.sampled_from(PROVIDERS), lane=st.integers(0, 2),
          price=st.integers(0, 10**5), collateral=st.integers(0, 10**6), jobs=st.integers(1, 100),
          optimistic=st.booleans())
    def open(self, r, p, lane, price, collateral, jobs, optimistic):
        key = (p.address, lane)
        if key in self.open or self.available[r.address] < price:
            return
        if self.stake[p.address] - self.locked[p.address] < collateral:
            return
        t = c.now()
        terms = dict(requester=r.address, provider=p.address, lane=lane, nonce=self.nonce.get(key, 0) + 1,
                     jobs_root=b"\x11" * 32, jobs=jobs, price=price, collateral=collateral,
                     deadline=t + 100, expiry=t + 50)
        if optimistic:
            deal = c.open_and_commit(self.market, terms, r)
        else:
            c.open_deal(self.market, terms, p)
            deal = c.deal_tuple(terms)
        self.nonce[key] = terms["nonce"]
        self.open[key] = {"terms": terms, "deal": deal}
        self.available[r.address] -= price
        self.locked[p.address] += collateral

    @rule(data=st.data())
    def commit(self, data):
        todo = [k for k, v in self.open.items() if v["deal"][2] == 0 and c.now() <= v["terms"]["deadline"]]
        if not todo:
            return
        key = data.draw(st.sampled_from(todo))
        self.open[key]["deal"] = c.commit(self.market, self.open[key]["terms"])

    @rule()
    def finalize(self):
        ready = [k for k, v in self.open.items() if v["deal"][2] and c.now() >= v["deal"][2] + c.CHALLENGE_WINDOW]
        if not ready:
            return
        self.market.finalize([self.open[k]["deal"] for k in ready])
        for k in ready:
            t = self.open.pop(k)["terms"]
            assert (k, t["nonce"]) not in self.paid_out
            self.paid_out.add((k, t["nonce"]))
            self.earned[t["provider"]] += t["price"]
            self.locked[t["provider"]] -= t["collateral"]

    @rule()
    def reclaim(self):
        late = [k for k, v in self.open.items() if v["deal"][2] == 0 and c.now() > v["terms"]["deadline"]]
        if not late:
            return
        self.market.reclaim([self.open[k]["deal"] for k in late])
        for k in late:
            t = self.open.pop(k)["terms"]
            assert (k, t["nonce"]) not in self.paid_out
            self.paid_out.add((k, t["nonce"]))
            penalty = t["collateral"] * c.MISS_PENALTY_BPS // 10_000
            self.locked[t["provider"]] -= t["collateral"]
            self.stake[t["provider"]] -= penalty
            self.available[t["requester"]] += t["price"] + penalty

    @rule(seconds=st.integers(1, 120))
    def time_travel(self, seconds):
        boa.env.time_travel(seconds=seconds)

    # invariants
    @invariant()
    def conservation(self):
        m = self.market
        held = sum(m.balance_of(a) + m.pending_withdrawal(a)[0] for a in EVERYONE)
        held += sum(v["terms"]["price"] for v in self.open.values())
        for a in EVERYONE:
            info = m.provider_info(a)
            held += info[4] + info[6] + info[8]
        assert self.token.balanceOf(m.address) == held

    @invariant()
    def pays_out_at_most_once(self):
        for (p, lane), nonce in self.nonce.items():
            word = self.market.lane(p, lane)
            assert word & (2**64 - 1) == nonce
            assert (word >> 64 != 0) == ((p, lane) in self.open)

    @invariant()
    def collateral_within_stake(self):
        for a in EVERYONE:
            info = self.market.provider_info(a)
            assert info[5] <= info[4]
            assert (info[4], info[5]) == (self.stake[a], self.locked[a])
            # free stake is what the contract stores; locked is derived from it
            assert self.market.free_stake(a) == self.stake[a] - self.locked[a]

    @invariant()
    def nobody_withdraws_what_is_not_theirs(self):
        for a in EVERYONE:
            assert self.token.balanceOf(a) == self.wallet[a]
            assert self.market.balance_of(a) == self.available[a]
            assert self.market.provider_info(a)[8] == self.earned[a]


MarketMachine.TestCase.settings = settings(
    settings.default, max_examples=100, stateful_step_count=25
)
TestMarket = MarketMachine.TestCase
