"""Provider unit fixtures; the helpers live in provider_kit (a unique name: every test folder has a conftest)."""

from provider_kit import anyio_backend, events, ledger, make_agent, requester  # noqa: F401
