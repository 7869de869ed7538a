"""Every error Mercato raises on purpose.

Messages read like advice: what happened, then what to do next. Exceptions carry
their data as attributes so callers can act on them without parsing text.

    MercatoError
    ├── ConfigError                 bad settings file / environment / CLI option
    ├── SpecError                   a job spec that does not validate (names the field)
    ├── ChainError                  anything on the settlement plane
    │   ├── RpcUnavailable          node down, refused, or too slow after retries
    │   ├── TransactionFailed       mined but reverted without a known reason / dropped
    │   ├── DeploymentNotFound      no deployment file for this chain: run `mercato devnet start`
    │   └── ContractRevert          a revert string from our contracts (see chain.reverts)
    │       ├── AccountsError       "accounts: ..."
    │       ├── StakingError        "staking: ..."
    │       └── DealsError          "deals: ..."
    ├── DevnetError                 the local anvil node could not be started/stopped
    └── SandboxError                the sandbox could not run a workload
        ├── WorkloadError           the workload itself is unacceptable (malformed, too big, bad imports)
        ├── InputError              an input is missing, oversized, or fails its hash check
        └── RuntimeUnavailable      a runtime's engine is missing on this machine

Resource exhaustion inside the sandbox (fuel, memory, wall clock, output size) is *not*
an exception: it is a normal, deterministic outcome recorded in the execution receipt,
because two honest providers must agree on it.
"""

from __future__ import annotations

__all__ = [
    "MercatoError",
    "ConfigError",
    "SpecError",
    "ChainError",
    "RpcUnavailable",
    "TransactionFailed",
    "DeploymentNotFound",
    "ContractRevert",
    "AccountsError",
    "StakingError",
    "DealsError",
    "DevnetError",
    "SandboxError",
    "WorkloadError",
    "InputError",
    "RuntimeUnavailable",
]


class MercatoError(Exception):
    """Base of every error Mercato raises on purpose."""


class ConfigError(MercatoError):
    """Settings that cannot be used as given."""


class SpecError(MercatoError):
    """A job spec that does not validate; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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


class DevnetError(MercatoError):
    """The local devnet could not be managed."""


class SandboxError(MercatoError):
    """The sandbox could not run a workload."""


class WorkloadError(SandboxError):
    """The workload is unacceptable: malformed, too large, or needs imports we do not provide."""


class InputError(SandboxError):
    """An input file is missing, too large, or does not match its content hash."""


class RuntimeUnavailable(SandboxError):
    """The runtime's engine is not installed or cannot start here."""
