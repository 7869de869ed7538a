"""Provider integration fixtures; the helpers live in agent_kit (every test folder has a conftest)."""

from agent_kit import deployment, devnet, requester, spawn_agent, w3  # noqa: F401
