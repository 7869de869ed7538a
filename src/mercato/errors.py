"""Every error Mercato raises on purpose.

Messages read like advice: what happened, then what to do next. Exceptions carry
their data as attributes so callers can act on them without parsing text.

    MercatoError
    ├── ConfigError                 bad settings file / environment / CLI option
    │   └── PlainKeyRefused         a plain 0x private key in a config file off the devnet
    ├── KeystoreError               an encrypted key could not be stored, found or read (bad name …)
    │   ├── KeyNotFound             no key by that name (or no such keystore file)
    │   ├── KeyExists               a key by that name exists already: keys are never overwritten
    │   └── WrongPassphrase         the passphrase does not decrypt the key
    ├── SpecError                   a job spec that does not validate (names the field)
    ├── SealError                   a sealed box that does not open with this key, or a bad box key
    ├── ChainError                  anything on the settlement plane
    │   ├── RpcUnavailable          node down, refused, or too slow after retries
    │   ├── TransactionFailed       mined but reverted without a known reason / dropped
    │   ├── DeploymentNotFound      no deployment file for this chain: run `mercato devnet start`
    │   └── ContractRevert          a revert string from our contracts (see chain.reverts)
    │       ├── AccountsError       "accounts: ..."
    │       │   ├── InsufficientBalance     the escrow balance does not cover it
    │       │   ├── WithdrawalNotReady      none requested / its delay has not passed
    │       │   └── InvalidAmount           zero or otherwise unusable amount
    │       ├── StakingError        "staking: ..."
    │       │   ├── InsufficientFreeStake   stake not locked in deals is too small (also "deals: …")
    │       │   ├── UnbondNotReady          nothing unbonding / unbond delay not passed
    │       │   └── NothingToClaim          no earnings to claim
    │       └── DealsError          "deals: ..."
    │           ├── BadSignature            the bid/acceptance was not signed by its party
    │           ├── BidExpired              now > expiry (bid or acceptance)
    │           ├── BidReplayed             nonce not above the lane's last nonce
    │           ├── InvalidTerms            terms that can never open a deal
    │           ├── InvalidSeal             an empty result seal
    │           ├── LaneBusy                the provider's lane still holds an open deal
    │           ├── RequesterUnfunded       the requester's balance does not cover the price
    │           ├── ProviderNotRegistered   the provider never called register
    │           ├── UnknownDeal             the deal record does not match the lane
    │           ├── AlreadySettled          the deal was finalized or reclaimed already
    │           ├── AlreadyCommitted        a seal was committed already
    │           ├── NotCommitted            finalizing a deal without a seal
    │           ├── DeadlinePassed          committing after the deadline
    │           ├── DeadlineNotPassed       reclaiming before the deadline
    │           ├── ChallengeWindowOpen     finalizing before the challenge window ends
    │           ├── NotAuthorized           the caller is not the party allowed to do it
    │           ├── LotteryError            the audit lottery cannot run now (seed, beacon, window)
    │           ├── AuditPending            finalizing a deal that is not drawn or whose audit is open
    │           ├── BondTooSmall            the provider's stake cannot secure more value in flight
    │           └── AuditError              "audits: ..." (not a seat, wrong phase, bad reveal, ...)
    ├── RequesterError              the requester SDK could not get a verified result
    │   ├── NoBids                  no compliant bid arrived in the bid window (names the causes)
    │   │   └── ProviderDeclined    the one provider asked (a map batch) declined: capacity, bond, price …
    │   ├── BudgetTooLow            a map run's budget cannot cover its tasks even at the cheapest quote
    │   ├── BalanceTooLow           the escrow balance does not cover the winning price
    │   ├── ProviderFailed          the provider gave up or vanished before the deal was opened
    │   ├── ProviderMissedDeadline  no result seal by the deadline; the deal was reclaimed
    │   └── ResultMismatch          downloaded outputs do not match the receipt or the on-chain seal
    ├── DevnetError                 the local anvil node could not be started/stopped
    ├── ProviderError               the provider agent refused or could not do it (``http_status``)
    │   ├── PricingError            the price strategy (e.g. a price script) failed
    │   ├── DealNotFound            no deal with that id at this provider
    │   ├── AcceptanceRejected      an acceptance that does not match the bid or its signer
    │   ├── BlobRejected            an upload with a bad hash, over the size cap, or not needed
    │   ├── NotReady                asked for results before the seal is on-chain
    │   ├── Unauthenticated         401: a request unsigned, badly signed, or with a stale timestamp
    │   ├── NotAllowed              403: a valid signer who may not make this call
    │   ├── RequestReplayed         409: a signed request seen before (within the clock window)
    │   ├── RequestTooLarge         413: a body over the provider's cap
    │   └── RateLimited             429: over the provider's rate limit (``retry_after`` seconds)
    └── SandboxError                the sandbox could not run a workload
        ├── WorkloadError           the workload itself is unacceptable (malformed, too big, bad imports)
        │   └── ImageRejected       a container image that is missing or does not match its declared digest
        ├── InputError              an input is missing, oversized, or fails its hash check
        ├── RuntimeUnavailable      a runtime's engine is missing on this machine
        ├── GpuUnavailable          the job needs GPUs this machine does not have (or has busy)
        └── EngineError             the container engine failed at something it should do

Resource exhaustion inside the sandbox (fuel, memory, wall clock, output size) is *not*
an exception: it is a normal, deterministic outcome recorded in the execution receipt,
because two honest providers must agree on it.
"""

from __future__ import annotations

__all__ = [
    "MercatoError",
    "ConfigError",
    "PlainKeyRefused",
    "SealError",
    "KeystoreError",
    "KeyNotFound",
    "KeyExists",
    "WrongPassphrase",
    "SpecError",
    "ChainError",
    "RpcUnavailable",
    "TransactionFailed",
    "DeploymentNotFound",
    "ContractRevert",
    "AccountsError",
    "StakingError",
    "DealsError",
    "InsufficientBalance",
    "WithdrawalNotReady",
    "InvalidAmount",
    "ProviderNotRegistered",
    "InsufficientFreeStake",
    "UnbondNotReady",
    "NothingToClaim",
    "BadSignature",
    "BidExpired",
    "BidReplayed",
    "InvalidTerms",
    "InvalidSeal",
    "LaneBusy",
    "RequesterUnfunded",
    "UnknownDeal",
    "AlreadySettled",
    "AlreadyCommitted",
    "NotCommitted",
    "DeadlinePassed",
    "DeadlineNotPassed",
    "ChallengeWindowOpen",
    "NotAuthorized",
    "RequesterError",
    "NoBids",
    "ProviderDeclined",
    "BudgetTooLow",
    "BalanceTooLow",
    "ProviderFailed",
    "ProviderMissedDeadline",
    "ResultMismatch",
    "DevnetError",
    "ProviderError",
    "PricingError",
    "DealNotFound",
    "AcceptanceRejected",
    "BlobRejected",
    "NotReady",
    "SandboxError",
    "WorkloadError",
    "InputError",
    "RuntimeUnavailable",
    "ImageRejected",
    "GpuUnavailable",
    "EngineError",
    "Unauthenticated",
    "NotAllowed",
    "RequestReplayed",
    "RequestTooLarge",
    "RateLimited",
]


class MercatoError(Exception):
    """Base of every error Mercato raises on purpose."""


class ConfigError(MercatoError):
    """Settings that cannot be used as given."""


class PlainKeyRefused(ConfigError):
    """A config file holds a plain ``0x…`` private key on a chain other than the local devnet."""


class KeystoreError(MercatoError):
    """An encrypted key could not be stored, found or read (bad name, unreadable file, ...)."""


class KeyNotFound(KeystoreError):
    """No key by that name in the keystore, or no keystore file at that path."""


class KeyExists(KeystoreError):
    """A key by that name exists already; keys are never overwritten."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not decrypt the key (the file's MAC does not match)."""


class SpecError(MercatoError):
    """A job spec that does not validate; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SealError(MercatoError):
    """A sealed box (encrypted input or output) that does not open with our key, or an unusable box key."""


class ChainError(MercatoError):
    """Something went wrong talking to the chain."""


class RpcUnavailable(ChainError):
    """The RPC node did not answer after retries."""


class TransactionFailed(ChainError):
    """A transaction reverted for an unknown reason or was never mined."""


class DeploymentNotFound(ChainError):
    """No deployment file for the selected chain."""


class ContractRevert(ChainError):
    """A namespaced revert string from our contracts, mapped to a typed error.

    ``reason`` is the exact revert string, e.g. ``"deals: bid expired"``.
    """

    reason: str = ""

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        self.reason = reason or type(self).reason
        super().__init__(message or self.reason)


class AccountsError(ContractRevert):
    """Escrow accounts refused the operation."""


class StakingError(ContractRevert):
    """Provider registry / staking refused the operation."""


class DealsError(ContractRevert):
    """Deal lifecycle refused the operation."""


class InsufficientBalance(AccountsError):
    """The escrow balance (or token allowance) does not cover the amount."""


class WithdrawalNotReady(AccountsError):
    """No withdrawal is pending, or its delay has not passed yet."""


class InvalidAmount(AccountsError):
    """A zero or otherwise unusable amount."""


class InsufficientFreeStake(StakingError):
    """The provider's stake not locked in deals is too small (to unbond, or to lock as collateral)."""


class UnbondNotReady(StakingError):
    """Nothing is unbonding, or the unbond delay has not passed."""


class NothingToClaim(StakingError):
    """There are no earnings to claim."""


class BadSignature(DealsError):
    """The bid or acceptance was not signed by the party it names."""


class BidExpired(DealsError):
    """The offer's expiry has passed."""


class BidReplayed(DealsError):
    """The nonce is not above the lane's last nonce: the offer was used or superseded."""


class InvalidTerms(DealsError):
    """Terms that can never open a deal (zero jobs, expiry after deadline, ...)."""


class InvalidSeal(DealsError):
    """The result seal is empty."""


class ProviderNotRegistered(DealsError):
    """The provider never registered."""


class LaneBusy(DealsError):
    """The provider's lane still holds an open deal."""


class RequesterUnfunded(DealsError):
    """The requester's free escrow balance does not cover the price."""


class UnknownDeal(DealsError):
    """The deal record passed does not match what the lane stores."""


class AlreadySettled(DealsError):
    """The deal was finalized or reclaimed already."""


class AlreadyCommitted(DealsError):
    """A result seal was committed already."""


class NotCommitted(DealsError):
    """The deal has no result seal to finalize."""


class DeadlinePassed(DealsError):
    """The deal's deadline has passed."""


class DeadlineNotPassed(DealsError):
    """The deal's deadline has not passed yet."""


class ChallengeWindowOpen(DealsError):
    """The challenge window after the commit is still open."""


class NotAuthorized(DealsError):
    """The caller is not the party allowed to do this."""


class LotteryError(DealsError):
    """The audit lottery cannot run for this deal now: bad seed, beacon not mined yet, or its window."""


class AuditPending(DealsError):
    """The deal cannot be paid yet: its lottery has not run, or its audit is not passed."""


class BondTooSmall(DealsError):
    """The provider's stake does not secure this much value in flight (docs/SPEC.md §14.6)."""


class AuditError(DealsError):
    """An audit step refused: the caller holds no seat, the phase is wrong or over, or a reveal
    does not open its seal."""


class RequesterError(MercatoError):
    """The requester SDK could not get a verified result for a job."""


class NoBids(RequesterError):
    """No compliant bid arrived within the bid window.

    ``asked`` providers were sent the RFQ; ``causes`` maps each provider address to why it
    gave no usable bid (its decline reason, "no answer in 250 ms", "bid over max_price", ...).
    """

    def __init__(self, message: str, *, asked: int = 0, causes: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.asked = asked
        self.causes = dict(causes or {})


class ProviderDeclined(NoBids):
    """The one provider a batch of ``Market.map`` was sent to declined it (``code``: capacity, bond,
    price, … or "silent" when it did not answer in the bid window). Nothing was charged: a mere
    refusal, so the batch goes to another provider and this one is not blamed."""

    def __init__(self, message: str, *, provider: str = "", code: str = "", asked: int = 1,
                 causes: dict[str, str] | None = None) -> None:
        super().__init__(message, asked=asked, causes=causes)
        self.provider = provider
        self.code = code


class BudgetTooLow(RequesterError):
    """A ``Market.map`` budget that cannot cover every task even at the cheapest quoted price;
    ``budget`` and ``needed`` in base units (each batch's max price plus its audit fee)."""

    def __init__(self, message: str, *, budget: int = 0, needed: int = 0) -> None:
        super().__init__(message)
        self.budget = budget
        self.needed = needed


class BalanceTooLow(RequesterError):
    """The escrow balance does not cover the winning price; ``balance`` and ``price`` in base units."""

    def __init__(self, message: str, *, balance: int = 0, price: int = 0) -> None:
        super().__init__(message)
        self.balance = balance
        self.price = price


class ProviderFailed(RequesterError):
    """The provider reported a failure (or stopped answering) and no deal was opened on-chain."""

    def __init__(self, message: str, *, provider: str = "", deal_id: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.deal_id = deal_id


class ProviderMissedDeadline(RequesterError):
    """No result seal by the deadline: the deal was reclaimed; ``refund`` came back and ``penalty`` of the
    provider's stake was burned (docs/SPEC.md §14.5: never paid to the requester, who could force a miss)."""

    def __init__(self, message: str, *, provider: str = "", deal_id: str = "", refund: int = 0,
                 penalty: int = 0, reclaim_tx: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.deal_id = deal_id
        self.refund = refund
        self.penalty = penalty
        self.reclaim_tx = reclaim_tx


class ResultMismatch(RequesterError):
    """Downloaded outputs do not match the provider's receipt or its on-chain seal.

    ``what`` says which check failed ("output pi.txt", "result root", "seal").
    """

    def __init__(self, message: str, *, provider: str = "", deal_id: str = "", what: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.deal_id = deal_id
        self.what = what


class DevnetError(MercatoError):
    """The local devnet could not be managed."""


class ProviderError(MercatoError):
    """The provider agent refused a request or could not do its work; ``http_status`` is the
    status its HTTP API answers with."""

    http_status: int = 400

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        if http_status is not None:
            self.http_status = http_status


class PricingError(ProviderError):
    """The pricing strategy failed (a price script that crashed, timed out or printed no integer)."""

    http_status = 500


class DealNotFound(ProviderError):
    """This provider has no deal with that id."""

    http_status = 404


class AcceptanceRejected(ProviderError):
    """An acceptance whose terms differ from the bid, or that the requester did not sign."""


class BlobRejected(ProviderError):
    """An upload whose bytes do not hash to its name, is over the size cap, or no deal needs."""


class NotReady(ProviderError):
    """Results are served only once their seal is on-chain."""

    http_status = 409


class Unauthenticated(ProviderError):
    """A call that must be signed came unsigned, with a signature that does not recover to
    ``X-Mercato-Signer``, or with a timestamp outside the provider's clock window."""

    http_status = 401


class NotAllowed(ProviderError):
    """A correctly signed request from an address that may not make this call (not the deal's
    requester, not an auditor seated for it)."""

    http_status = 403


class RequestReplayed(ProviderError):
    """A signed request whose signature was seen before within the clock window: sign afresh."""

    http_status = 409


class RequestTooLarge(ProviderError):
    """A request body over the provider's cap (``max_json_bytes``, or ``max_blob_bytes`` for a blob)."""

    http_status = 413


class RateLimited(ProviderError):
    """Over the provider's rate limit for this signer (or, unsigned, this address): wait
    ``retry_after`` seconds (the ``Retry-After`` header)."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SandboxError(MercatoError):
    """The sandbox could not run a workload."""


class WorkloadError(SandboxError):
    """The workload is unacceptable: malformed, too large, or needs imports we do not provide."""


class InputError(SandboxError):
    """An input file is missing, too large, or does not match its content hash."""


class RuntimeUnavailable(SandboxError):
    """The runtime's engine is not installed or cannot start here."""


class ImageRejected(WorkloadError):
    """A container image that cannot be had as declared: its archive or pulled image does not
    hash to the spec's image digest, or no source (archive, registry) provides it."""


class GpuUnavailable(SandboxError):
    """The job asks for GPUs this machine cannot give: ``requested`` wanted, ``available``
    matching ones (free or not); the message says which requirement failed."""

    def __init__(self, message: str, *, requested: int = 0, available: int = 0) -> None:
        super().__init__(message)
        self.requested = requested
        self.available = available


class EngineError(SandboxError):
    """The container engine (podman or docker) failed at a step it should manage;
    ``command`` is the engine sub-command and ``stderr`` its last words."""

    def __init__(self, message: str, *, command: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.stderr = stderr
