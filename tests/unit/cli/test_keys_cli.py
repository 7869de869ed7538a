"""`mercato keys new|list|import|address`, driven through Typer's CliRunner."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from eth_account import Account
from typer.testing import CliRunner, Result

from mercato.chain.keys import Keystore, load_key
from mercato.cli import app

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = Account.from_key(KEY).address


def _run(args: list[str], env: dict[str, str | None], input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["keys", *args], env=env, input=input)


def _flat(res: Result) -> str:
    return "".join(res.output.split())  # Rich soft-wraps long lines


def _fails(res: Result, *needles: str) -> None:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == len(lines) - 1, res.output  # one error line, last (after prompts)
    for needle in needles:
        assert "".join(needle.split()) in _flat(res), res.output


def test_new_list_address_round_trip(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    ks, pw = tmp_path / "ks", tmp_path / "pw.txt"
    pw.write_text("hunter2\n")
    res = _run(["new", "prod", "--keystore", str(ks), "--password-file", str(pw)], cli_env)
    assert res.exit_code == 0, res.output
    address = Keystore(ks).address("prod")
    assert address in res.output and 'keystore:prod' in res.output
    assert Account.from_key(load_key("prod", "hunter2", keystore=ks)).address == address  # newline stripped

    listed = _run(["list", "--keystore", str(ks)], cli_env | {"COLUMNS": "250"})
    assert listed.exit_code == 0 and "prod" in listed.output and address in listed.output, listed.output
    assert str(ks / "prod.json") in listed.output
    narrow = _run(["list", "--keystore", str(ks)], cli_env | {"COLUMNS": "60"})
    assert address in narrow.output  # the path folds, the address never does

    shown = _run(["address", "prod", "--keystore", str(ks)], cli_env)
    assert shown.exit_code == 0 and shown.output.strip() == address


def test_new_prompts_hidden_and_confirmed(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    ks = tmp_path / "ks"
    res = _run(["new", "a", "--keystore", str(ks)], cli_env, input="Zq9-secret\nZq9-secret\n")
    assert res.exit_code == 0, res.output
    assert "Passphrase for new key 'a'" in res.output and "Repeat" in res.output
    assert "Zq9-secret" not in res.output  # hidden input is not echoed
    assert load_key("a", "Zq9-secret", keystore=ks)
    mismatch = _run(["new", "b", "--keystore", str(ks)], cli_env, input="pw\nother\n")
    _fails(mismatch, "passphrases differ")
    assert not (ks / "b.json").exists()


def test_import_from_key_file_and_prompt(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    ks, pw, kf = tmp_path / "ks", tmp_path / "pw", tmp_path / "k.txt"
    pw.write_text("pw\n")
    kf.write_text(KEY + "\n")
    res = _run(["import", "ops", "--key-file", str(kf), "--keystore", str(ks), "--password-file", str(pw)], cli_env)
    assert res.exit_code == 0, res.output
    assert ADDRESS in res.output and KEY[2:] not in res.output
    assert load_key("ops", "pw", keystore=ks).hex() == KEY[2:]

    typed = _run(["import", "ops2", "--keystore", str(ks)], cli_env, input=f"{KEY[2:]}\npw2\npw2\n")
    assert typed.exit_code == 0, typed.output
    assert KEY[2:] not in typed.output and load_key("ops2", "pw2", keystore=ks).hex() == KEY[2:]


def test_import_never_takes_the_key_from_argv(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    res = _run(["import", "ops", KEY, "--keystore", str(tmp_path / "ks")], cli_env)
    assert res.exit_code != 0 and not (tmp_path / "ks" / "ops.json").exists()


def test_import_errors(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    ks, pw = tmp_path / "ks", tmp_path / "pw"
    pw.write_text("pw\n")
    (tmp_path / "bad.txt").write_text("not a key\n")
    base = ["--keystore", str(ks), "--password-file", str(pw)]
    _fails(_run(["import", "x", "--key-file", str(tmp_path / "bad.txt"), *base], cli_env), "not a private key")
    _fails(_run(["import", "x", "--key-file", str(tmp_path / "none.txt"), *base], cli_env), "does not exist")
    (tmp_path / "k").write_text(KEY)
    assert _run(["import", "x", "--key-file", str(tmp_path / "k"), *base], cli_env).exit_code == 0
    _fails(_run(["import", "x", "--key-file", str(tmp_path / "k"), *base], cli_env), "exists already")


def test_refuses_overwrite_and_bad_names(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    ks, pw = tmp_path / "ks", tmp_path / "pw"
    pw.write_text("pw\n")
    assert _run(["new", "a", "--keystore", str(ks), "--password-file", str(pw)], cli_env).exit_code == 0
    before = (ks / "a.json").read_bytes()
    _fails(_run(["new", "a", "--keystore", str(ks), "--password-file", str(pw)], cli_env),
           "a key named 'a' exists already")
    assert (ks / "a.json").read_bytes() == before
    _fails(_run(["new", "../a", "--keystore", str(ks), "--password-file", str(pw)], cli_env), "bad key name")


def test_check_and_wrong_password_is_one_clean_line(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    ks, pw = tmp_path / "ks", tmp_path / "pw"
    Keystore(ks, scrypt_n=2).import_("ops", KEY, "right")
    pw.write_text("right\n")
    ok = _run(["check", "ops", "--keystore", str(ks), "--password-file", str(pw)], cli_env)
    assert ok.exit_code == 0 and ADDRESS in _flat(ok)
    pw.write_text("wrong\n")
    bad = _run(["check", "ops", "--keystore", str(ks), "--password-file", str(pw)], cli_env)
    _fails(bad, "wrong passphrase for key 'ops'")
    assert len(bad.output.strip().splitlines()) <= 2 and "MAC" not in bad.output
    typed = _run(["check", "ops", "--keystore", str(ks)], cli_env, input="nope\n")
    _fails(typed, "wrong passphrase")


def test_missing_password_file_is_a_clean_error(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    res = _run(["new", "a", "--keystore", str(tmp_path / "ks"), "--password-file", str(tmp_path / "nope")], cli_env)
    _fails(res, "password file", "nope does not exist")
    assert not (tmp_path / "ks" / "a.json").exists()


def test_env_keystore_and_password_file(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    (tmp_path / "pw").write_text("envpw\n")
    env = cli_env | {"MERCATO_KEYSTORE": str(tmp_path / "envks"), "MERCATO_PASSWORD_FILE": str(tmp_path / "pw")}
    assert _run(["new", "e"], env).exit_code == 0
    assert load_key("e", "envpw", keystore=tmp_path / "envks")
    assert stat.S_IMODE((tmp_path / "envks").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "envks" / "e.json").stat().st_mode) == 0o600
    assert json.loads((tmp_path / "envks" / "e.json").read_text())["version"] == 3


def test_default_keystore_and_empty_list(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    res = _run(["list"], cli_env)
    assert res.exit_code == 0 and "no keys in" in res.output and "mercatokeysnew" in _flat(res)
    assert ".mercato/keys" in _flat(res)  # ~/.mercato/keys under the test's HOME


def test_address_of_unknown_key(tmp_path: Path, cli_env: dict[str, str | None]) -> None:
    _fails(_run(["address", "ghost", "--keystore", str(tmp_path / "ks")], cli_env), "no key 'ghost'")
