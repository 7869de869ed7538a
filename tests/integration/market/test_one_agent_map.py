"""The README's ``mercato map`` against the single agent of ``examples/provider.toml`` (4 lanes).

The agent runs its lanes' sandboxes side by side in threads; it once lost most batches to a
race in wasmtime-py's callback table (``runtimes._threads``), and the requester then benched it
for answering "all lanes busy" while its deals settled. Here the example config (only the port,
the data folder and the stake's size changed) serves a map of many small batches on its own
devnet: every task is done, nothing errs in the agent's log, and each batch ran once.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_kit import ROOT, AgentProcess, free_port, running_devnet
from typer.testing import CliRunner

from mercato.chain import Devnet, DevnetParams
from mercato.cli import app as cli_app

TASKS = 96
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def onet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from running_devnet(tmp_path_factory.mktemp("one-agent-devnet"), DevnetParams())


@pytest.fixture(scope="module")
def example_agent(tmp_path_factory: pytest.TempPathFactory, onet: Devnet) -> Iterator[AgentProcess]:
    """``mercato provider start --config`` with examples/provider.toml as shipped, but for its port
    and data folder (tests must not collide) and a stake the devnet account holds; its terms caps
    (docs/SPEC.md §13) are the shipped ones, which take mercato map's quoted batches."""
    root = tmp_path_factory.mktemp("one-agent")
    text = (EXAMPLES / "provider.toml").read_text()
    port = free_port()
    text = re.sub(r"(?m)^port = \d+", f"port = {port}", text)
    text = re.sub(r'(?m)^data_dir = "[^"]*"', f'data_dir = "{root / "data"}"', text)
    text = re.sub(r"(?m)^stake = [\d_]+", "stake = 50_000_000_000", text)
    assert re.search(r"(?m)^lanes = 4\b", text), "the example config's lanes changed: update this test"
    # the README's map runs against the shipped config: it must take quoted batches as shipped
    assert re.search(r"(?m)^allow_batch_expiry_at_deadline = true\b", text), \
        "the example config refuses mercato map's batches: the README's map would get only 'expiry' declines"
    config = root / "provider.toml"
    config.write_text(text)
    env = dict(os.environ, MERCATO_HOME=str(onet.settings.home), MERCATO_DEPLOYMENT=str(onet.settings.deployment_path),
               MERCATO_CACHE=str(root / "cache"))
    env.pop("MERCATO_RPC_URL", None)
    agent = AgentProcess(config, port, env, root / "agent.log", "provider1").start()
    yield agent
    agent.kill(signal.SIGTERM)


def test_the_readme_map_completes_on_the_example_agent(example_agent: AgentProcess, onet: Devnet,
                                                       tmp_path: Path) -> None:
    env = {"MERCATO_HOME": str(onet.settings.home), "MERCATO_DEPLOYMENT": str(onet.settings.deployment_path),
           "MERCATO_ACCOUNT": "requester1"}
    runner = CliRunner()
    res = runner.invoke(cli_app, ["deposit", "10"], env=env)
    assert res.exit_code == 0, res.output
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("".join(f"{i}\n" for i in range(TASKS)))
    out = tmp_path / "mc"
    res = runner.invoke(cli_app, ["map", str(EXAMPLES / "montecarlo" / "job.toml"), "--args-file", str(tasks),
                                  "--tasks-per-deal", "8", "--out", str(out), "--json"], env=env)
    assert res.exit_code == 0, res.output[-3000:]
    lines = [json.loads(line) for line in res.output.strip().splitlines() if line.startswith("{")]
    summary = lines[-1]["summary"]
    assert summary["done"] == TASKS and summary["not_run"] == [] and summary["failed"] == {}, summary
    assert sorted(t["index"] for t in lines[:-1]) == list(range(TASKS))
    assert all(t["outcome"] == "ok" and t["stdout"].startswith("samples=200000 ") for t in lines[:-1])
    assert len(list(out.iterdir())) == TASKS
    (tally,) = summary["providers"].values()
    assert tally["excluded"] is None and tally["batches"] == TASKS // 8
    log = [json.loads(line) for line in example_agent.log.read_text().splitlines() if line.startswith("{")]
    assert not [e for e in log if e.get("level") == "error"], [e for e in log if e.get("level") == "error"][:3]
    assert "never retrieved" not in example_agent.log.read_text()
    assert len([e for e in log if e.get("msg") == "executed"]) == TASKS // 8  # each batch ran once
