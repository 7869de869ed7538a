"""Contract fixtures: each contract compiled once per session, a fresh chain per test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import boa
import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from mercato.verification.bond import BondParams, detection_wad, min_stake
from mercato.verification.bond import bond_ok as _bond_ok
from mercato.verification.lottery import claim_of, seal_of

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"

CHALLENGE_WINDOW = 5
UNBOND_DELAY = 60
WITHDRAWAL_DELAY = 30
MISS_PENALTY_BPS = 5000

DEPOSIT = 1_000 * 10**6
STAKE = 10_000 * 10**6
PRICE = 2 * 10**6
COLLATERAL = 38 * 10**6
AUDIT_FEE = PRICE // 10

# SPEC §14.1 devnet defaults, in AuditParams order
AUDIT_FLOOR_BPS = 300
COLLUSION_BPS = 9000
BOND_LAMBDA_BPS = 15000
BEACON_DELAY = 2
DRAW_BLOCKS = 200
AUDIT_PERIOD = 20
COMMITTEE_SIZE = 5
# sortition weights are fixed per epoch of this many blocks (the devnet's 1: a stake counts from the next
# block); the tests of steering deploy with 256
EPOCH_BLOCKS = 1
AUDIT_PARAMS = (AUDIT_FLOOR_BPS, COLLUSION_BPS, BOND_LAMBDA_BPS, BEACON_DELAY, DRAW_BLOCKS, AUDIT_PERIOD, COMMITTEE_SIZE,
                EPOCH_BLOCKS)
MAX_AUDIT_ROUNDS = 3

# the requester's secret lottery seed and its commitment in Terms
SEED = b"\x5e" + b"\xed" * 31
SEED_HASH = keccak(SEED)

UNDRAWN, CLEARED, AUDITED = 0, 1, 2
NONE, COMMIT, REVEAL, PASSED, FAILED, VOID = range(6)

TERMS_FIELDS = (
    "requester",
    "provider",
    "lane",
    "nonce",
    "jobs_root",
    "jobs",
    "price",
    "collateral",
    "deadline",
    "expiry",
    "seed_hash",
    "audit_bps",
    "audit_fee",
)
_TERMS_TYPE = [
    {"name": "requester", "type": "address"},
    {"name": "provider", "type": "address"},
    {"name": "lane", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "jobs_root", "type": "bytes32"},
    {"name": "jobs", "type": "uint256"},
    {"name": "price", "type": "uint256"},
    {"name": "collateral", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
    {"name": "expiry", "type": "uint256"},
    {"name": "seed_hash", "type": "bytes32"},
    {"name": "audit_bps", "type": "uint256"},
    {"name": "audit_fee", "type": "uint256"},
]

_TOKEN_DEPLOYER = boa.load_partial(str(CONTRACTS / "mocks" / "stable_token.vy"))
_MARKET_DEPLOYER = boa.load_partial(str(CONTRACTS / "market.vy"))
_COURT_DEPLOYER = boa.load_partial(str(CONTRACTS / "court.vy"))
# test-only: the market's seal and claim hashes, which the market itself does not export
AUDIT_MATH_DEPLOYER = boa.load_partial(str(CONTRACTS / "mocks" / "audit_math.vy"))
# test-only: the bond rule on its own (AuditParams' first three fields)
BOND_RULE_DEPLOYER = boa.load_partial(str(CONTRACTS / "mocks" / "bond_rule.vy"))


@pytest.fixture(scope="session")
def token_deployer():
    return _TOKEN_DEPLOYER


@pytest.fixture(scope="session")
def market_deployer():
    return _MARKET_DEPLOYER


@pytest.fixture
def court_blueprint():
    """A blueprint of the court, the Market constructor's last argument."""
    return _COURT_DEPLOYER.deploy_as_blueprint().address


def deterministic_block_hashes() -> None:
    """Fix BLOCKHASH for the current boa env: py-evm's own block hashes differ from run to run,
    and the audit lottery's beacon is one, so tests that pick a seed the lottery clears need them
    fixed (BLOCKHASH(n) then depends only on how far back n is)."""
    boa.env.evm.patch.prev_hashes = [keccak(i.to_bytes(32, "big")) for i in range(256)]


@pytest.fixture(autouse=True)
def _isolate():
    """Every test starts from the same chain state (block hashes included) and leaves nothing behind."""
    deterministic_block_hashes()
    with boa.env.anchor():
        yield


@pytest.fixture
def token():
    return _TOKEN_DEPLOYER.deploy()


def deploy_market(token, audit=AUDIT_PARAMS, **overrides):
    """A market with the test parameters; override any AuditParams field by name."""
    names = ("audit_floor_bps", "collusion_bps", "bond_lambda_bps", "beacon_delay", "draw_blocks", "audit_period",
             "committee_size", "epoch_blocks")
    params = tuple(overrides.pop(n, v) for n, v in zip(names, audit))
    assert not overrides, overrides
    blueprint = _COURT_DEPLOYER.deploy_as_blueprint()
    core = _MARKET_DEPLOYER.deploy(
        token.address, CHALLENGE_WINDOW, UNBOND_DELAY, WITHDRAWAL_DELAY, MISS_PENALTY_BPS, params, blueprint.address
    )
    return Market(core, _COURT_DEPLOYER.at(core.court()))


# what the court (contracts/court.vy) exports; everything else is the Market's
COURT_FUNCTIONS = frozenset({
    "open_audit", "verdict", "commit_audit", "reveal", "advance", "audit", "audit_record", "is_flagged",
    "audit_period", "committee_size", "MAX_AUDIT_ROUNDS", "market", "set_weight", "sortition_weight", "next_sortition_weight",
    "epoch_blocks",
})


class Market:
    """The deployed pair, the Market (money core) and its court, as one object for tests: the court's
    functions go to the court, the rest to the Market; `get_logs` and `_computation` are those of the
    contract called last (a call's logs include those its callee emitted, decoded by address)."""

    def __init__(self, core, court) -> None:
        self.__dict__.update(core=core, court=court, _last=core)

    def __getattr__(self, name: str):
        target = self.court if name in COURT_FUNCTIONS else self.core
        attr = getattr(target, name)
        if callable(attr):
            self.__dict__["_last"] = target
        return attr

    @property
    def address(self):
        return self.core.address

    @property
    def _computation(self):
        return self._last._computation

    def get_logs(self, *args, **kwargs):
        return self._last.get_logs(*args, **kwargs)


@pytest.fixture
def market(token):
    return deploy_market(token)


@dataclass(frozen=True)
class Party:
    """An account with a key, so it can both send transactions and sign."""

    address: str
    key: bytes


def make_party(seed: int) -> Party:
    acct = Account.from_key(seed.to_bytes(32, "big"))
    return Party(address=acct.address, key=acct.key)


def fund(token, market, who: str, amount: int) -> None:
    """Mint `amount` to `who` and approve the market for it."""
    token.mint(who, amount)
    with boa.env.prank(who):
        token.approve(market.address, amount)


def sign(market, kind: str, terms: dict, key: bytes) -> bytes:
    """EIP-712-sign `terms` as a Bid or an Acceptance (full_message form)."""
    message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            kind: _TERMS_TYPE,
        },
        "primaryType": kind,
        "domain": {
            "name": "Mercato",
            "version": "1",
            "chainId": boa.env.evm.patch.chain_id,
            "verifyingContract": market.address,
        },
        "message": terms,
    }
    signed = Account.sign_message(encode_typed_data(full_message=message), key)
    return signed.signature


def as_tuple(terms: dict) -> tuple:
    return tuple(terms[f] for f in TERMS_FIELDS)


def deal_tuple(terms: dict, seal: bytes = b"\0" * 32, committed_at: int = 0, committed_block: int = 0,
               status: int = UNDRAWN) -> tuple:
    return (as_tuple(terms), seal, committed_at, committed_block, status)


_DEAL_ABI = "((address,address,uint256,uint256,bytes32,uint256,uint256,uint256,uint256,uint256,bytes32,uint256,uint256),bytes32,uint256,uint256,uint256)"


def deal_hash(deal: tuple) -> bytes:
    """keccak256(abi.encode(Deal)), as the market hashes a stored deal (the market no longer exports it:
    agents compute it off-chain, mercato.domain.deals.deal_hash)."""
    return keccak(encode([_DEAL_ABI], [deal]))


def with_status(deal: tuple, status: int) -> tuple:
    return (*deal[:4], status)


def now() -> int:
    return boa.env.evm.patch.timestamp


def block_number() -> int:
    return boa.env.evm.patch.block_number


@pytest.fixture
def requester(token, market) -> Party:
    party = make_party(0xA11CE)
    fund(token, market, party.address, DEPOSIT)
    with boa.env.prank(party.address):
        market.deposit(DEPOSIT)
    return party


@pytest.fixture
def provider(token, market) -> Party:
    party = make_party(0xB0B)
    fund(token, market, party.address, STAKE)
    with boa.env.prank(party.address):
        market.register("https://provider.example:7070", b"\x01" * 32, b"\x02" * 32)
        market.stake(STAKE)
    next_epoch(market)
    return party


@pytest.fixture
def make_terms(requester, provider):
    """Terms between the funded requester and provider; override any field."""

    def _make(**overrides) -> dict:
        t = now()
        terms = {
            "requester": requester.address,
            "provider": provider.address,
            "lane": 0,
            "nonce": 1,
            "jobs_root": b"\x33" * 32,
            "jobs": 1,
            "price": PRICE,
            "collateral": COLLATERAL,
            "deadline": t + 3600,
            "expiry": t + 600,
            "seed_hash": SEED_HASH,
            "audit_bps": AUDIT_FLOOR_BPS,
            "audit_fee": AUDIT_FEE,
        }
        terms.update(overrides)
        return terms

    return _make


SEAL = b"\x5e" * 32


def events(contract, name: str) -> list:
    """Decoded logs of `contract`'s last call whose event is called `name`."""
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def open_deal(market, terms: dict, provider: Party) -> bytes:
    """The requester opens `terms` with the provider's signed Bid; returns the deal id."""
    sig = sign(market, "Bid", terms, provider.key)
    with boa.env.prank(terms["requester"]):
        return market.open_deal(as_tuple(terms), sig)


def open_and_commit(market, terms: dict, requester: Party, seal: bytes = SEAL) -> tuple:
    """The provider opens and commits with the requester's Acceptance; returns the stored Deal."""
    sig = sign(market, "Acceptance", terms, requester.key)
    with boa.env.prank(terms["provider"]):
        market.open_and_commit(as_tuple(terms), sig, seal)
    return deal_tuple(terms, seal, now(), block_number())


def commit(market, terms: dict, seal: bytes = SEAL) -> tuple:
    """The provider commits `seal` for an open deal; returns the stored Deal."""
    with boa.env.prank(terms["provider"]):
        market.commit_result(deal_tuple(terms), seal)
    return deal_tuple(terms, seal, now(), block_number())


# --- bond rule (SPEC §14.6): the contract must agree with verification/bond.py to the unit ---

ONE = 10**18
_BOND = BondParams(AUDIT_FLOOR_BPS, COLLUSION_BPS, BOND_LAMBDA_BPS)


def bond_cover(deals: int) -> int:
    """1 - (1 - p_min * d)^N in 18 decimals, as the off-chain SDK and provider compute it."""
    return detection_wad(deals, _BOND)


def bond_ok(stake: int, value: int, deals: int) -> bool:
    return value == 0 or _bond_ok(stake, deals, value, _BOND)


def min_bond(value: int, deals: int) -> int:
    """The smallest stake that carries `deals` deals worth `value` in total."""
    return min_stake(deals, value, _BOND)


# --- lottery helpers -------------------------------------------------------------------------

_BLOCKHASH = None


def blockhash(n: int) -> bytes:
    """The chain's BLOCKHASH(n), read through a tiny contract (valid for the last 256 blocks)."""
    global _BLOCKHASH
    if _BLOCKHASH is None or boa.env.get_code(_BLOCKHASH.address) == b"":
        _BLOCKHASH = boa.loads("@external\n@view\ndef bh(n: uint256) -> bytes32:\n    return blockhash(n)\n")
    return _BLOCKHASH.bh(n)


def deal_id_of(terms: dict) -> bytes:
    return keccak(encode(["address", "uint256", "uint256"], [terms["provider"], terms["lane"], terms["nonce"]]))


def lottery_roll(deal: tuple, seed: bytes = SEED) -> int:
    """r mod 10000 of `deal`'s lottery, once its beacon block is past (SPEC §14.3)."""
    terms = dict(zip(TERMS_FIELDS, deal[0]))
    beacon = blockhash(deal[3] + BEACON_DELAY)
    r = keccak(encode(["bytes32", "bytes32", "bytes32"], [seed, beacon, deal_id_of(terms)]))
    return int.from_bytes(r, "big") % 10_000


def mine_to_beacon(deal: tuple) -> None:
    """Mine blocks until `draw` accepts the deal (block.number = committed_block + k + 1)."""
    target = deal[3] + BEACON_DELAY + 1
    if block_number() < target:
        boa.env.time_travel(blocks=target - block_number(), block_delta=1)


def draw(market, deal: tuple, seed: bytes = SEED) -> tuple:
    """Mine past the beacon and run the lottery for one deal; returns the Deal with its new status."""
    mine_to_beacon(deal)
    audited = lottery_roll(deal, seed) < deal[0][TERMS_FIELDS.index("audit_bps")]
    market.draw([deal], [seed])
    return with_status(deal, AUDITED if audited else CLEARED)


def clear(market, deal: tuple, seed: bytes = SEED) -> tuple:
    """Draw `deal` and insist the lottery cleared it (tests pick terms so it does)."""
    drawn = draw(market, deal, seed)
    assert drawn[4] == CLEARED, "lottery audited this deal: pick another seed or lane"
    return drawn


def settle(market, deal: tuple, seed: bytes = SEED) -> tuple:
    """Clear `deal`, wait out the challenge window and finalize it; returns the drawn Deal."""
    drawn = clear(market, deal, seed)
    if now() < deal[2] + CHALLENGE_WINDOW:
        boa.env.time_travel(seconds=deal[2] + CHALLENGE_WINDOW - now())
    market.finalize([drawn])
    return drawn


# --- audit helpers ----------------------------------------------------------------------------

ROOT = b"\x77" * 32  # the honest execution's result root
FUEL = 1_000_000
WRONG_ROOT = b"\x66" * 32


def salt_of(who: str) -> bytes:
    return keccak(bytes.fromhex(who[2:]))


def seal_for(market, who: str, deal_id: bytes, root: bytes = ROOT, fuel: int = FUEL) -> bytes:
    """The seal `who` commits, computed off-chain as agents do (test_audit_math checks it is the contract's)."""
    return seal_of(who, deal_id, root, fuel, salt_of(who))


def open_committed(market, terms: dict, requester: Party, root: bytes = ROOT, fuel: int = FUEL) -> tuple:
    """open_and_commit with the provider's real seal over (root, fuel); returns the stored Deal."""
    seal = seal_for(market, terms["provider"], deal_id_of(terms), root, fuel)
    return open_and_commit(market, terms, requester, seal)


def start_audit(market, terms: dict, requester: Party, root: bytes = ROOT, fuel: int = FUEL) -> tuple:
    """Open (audit_bps = 10000), commit and draw: the deal is AUDITED; returns (deal, deal_id)."""
    terms = dict(terms, audit_bps=10_000)
    deal = draw(market, open_committed(market, terms, requester, root, fuel))
    assert deal[4] == AUDITED
    return deal, deal_id_of(terms)


def commit_as(market, who: str, deal_id: bytes, root: bytes = ROOT, fuel: int = FUEL) -> None:
    with boa.env.prank(who):
        market.commit_audit(deal_id, seal_for(market, who, deal_id, root, fuel))


def reveal_as(market, who: str, deal_id: bytes, root: bytes = ROOT, fuel: int = FUEL) -> None:
    with boa.env.prank(who):
        market.reveal(deal_id, root, fuel, salt_of(who))


def audit_view(market, deal_id: bytes) -> dict:
    names = ("phase", "dispute", "round", "deadline", "requester", "provider", "jobs_root", "fee", "provider_seal",
             "provider_claim", "claim", "seats", "seals", "claims")
    return dict(zip(names, market.audit(deal_id)))


def past_deadline(market, deal_id: bytes) -> None:
    boa.env.time_travel(seconds=audit_view(market, deal_id)["deadline"] - now() + 1)


def next_epoch(market) -> None:
    """Mine to the first block of the next sortition epoch (timestamps unchanged): every weight change
    made so far counts in draws from there on."""
    blocks = market.epoch_blocks()
    boa.env.time_travel(blocks=blocks - block_number() % blocks, block_delta=0)


def add_provider(token, market, seed: int, stake: int = STAKE) -> Party:
    """Register and stake a provider (an auditor candidate), drawable from the next epoch, mined to."""
    party = make_party(seed)
    fund(token, market, party.address, stake)
    with boa.env.prank(party.address):
        market.register("http://auditor", b"\0" * 32, b"\0" * 32)
        market.stake(stake)
    next_epoch(market)
    return party


@pytest.fixture
def auditors(token, market, provider) -> list:
    """Six staked providers besides the deal's provider: enough for a first auditor and a full committee."""
    return [add_provider(token, market, 0xA000 + i) for i in range(6)]
