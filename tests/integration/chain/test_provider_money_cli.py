"""`mercato provider money|claim|unbond|withdraw-stake` against the kit devnet, through Typer."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner
from web3 import Web3

from mercato.chain import Devnet, MarketClient, increase_time
from mercato.cli import app


def test_a_provider_sees_and_moves_its_money(tmp_path: Path, devnet: Devnet, clients: dict[str, MarketClient],
                                             w3: Web3) -> None:
    me = clients["provider7"]
    me.register("http://127.0.0.1:7077", b"\x01" * 32, b"\x02" * 32)
    me.stake(1_000 * 10**6)
    config = tmp_path / "provider.toml"
    config.write_text(f'[provider]\naccount = "provider7"\nport = 7077\ndata_dir = "{tmp_path / "data"}"\n')
    env = {"MERCATO_HOME": str(devnet.settings.home), "MERCATO_DEPLOYMENT": str(devnet.settings.deployment_path),
           "MERCATO_RPC_URL": None, "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["provider", *args, "--config", str(config)], env=env)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        return result.output

    shown = run("money")
    assert "1000 mUSD (1000 mUSD free, 0 mUSD locked" in shown and "0 mUSD claimable" in shown
    assert "nothing to claim" in run("claim")
    assert "unbonding 250 mUSD in all" in run("unbond", "250")
    assert me.provider_info().stake == 750 * 10**6
    assert "withdrawable from" in run("money")
    early = runner.invoke(app, ["provider", "withdraw-stake", "--config", str(config)], env=env)
    assert early.exit_code == 1 and "Traceback" not in early.output and "unbond not ready" in early.output
    increase_time(w3, me.parameters()["unbond_delay"] + 1)
    before = me.token_balance()
    assert "withdrew 250 mUSD of stake" in run("withdraw-stake")
    assert me.token_balance() - before == 250 * 10**6
    too_much = runner.invoke(app, ["provider", "unbond", "5000", "--config", str(config)], env=env)
    assert too_much.exit_code == 1 and "Traceback" not in too_much.output


def test_start_refuses_in_one_line_a_stake_the_wallet_cannot_pay_or_an_account_without_gas(
        tmp_path: Path, devnet: Devnet, clients: dict[str, MarketClient]) -> None:
    """The most common onboarding errors used to end in a 78-line traceback from the agent's start-up."""
    env = {"MERCATO_HOME": str(devnet.settings.home), "MERCATO_DEPLOYMENT": str(devnet.settings.deployment_path),
           "MERCATO_RPC_URL": None, "COLUMNS": "200"}
    wallet = clients["provider8"].token_balance()
    greedy = tmp_path / "greedy.toml"
    greedy.write_text(f'[provider]\naccount = "provider8"\nport = 7088\ndata_dir = "{tmp_path / "g"}"\n'
                      f"stake = {wallet + 1}\n")
    result = CliRunner().invoke(app, ["provider", "start", "--config", str(greedy)], env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "lower `stake` or fund the account" in result.output
    assert clients["provider8"].provider_info().stake == 0  # nothing was sent
    broke = tmp_path / "broke.toml"
    broke.write_text(f'[provider]\naccount = "0x{"42" * 32}"\nport = 7089\ndata_dir = "{tmp_path / "b"}"\n')
    result = CliRunner().invoke(app, ["provider", "start", "--config", str(broke)], env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "holds no native token to pay gas with" in result.output
