"""Encrypted keystores (chain.keys) and how account values become private keys.

Every key here is written with ``scrypt_n=2`` (the explicit test-only cost) so the suite stays fast.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from mercato.chain.deployment import Deployment, DevnetParams, dev_accounts
from mercato.chain.keys import (
    DEFAULT_SCRYPT_N,
    Keystore,
    PassphraseSource,
    Unlocker,
    import_key,
    list_keys,
    load_key,
    new_key,
    read_password_file,
    resolve_account,
)
from mercato.config import Settings
from mercato.errors import (
    ChainError,
    ConfigError,
    KeyExists,
    KeyNotFound,
    KeystoreError,
    MercatoError,
    PlainKeyRefused,
    WrongPassphrase,
)
from mercato.provider.config import ProviderConfig

FAST = 2  # scrypt n for tests only
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = Account.from_key(KEY).address


@pytest.fixture
def ks(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "keys", scrypt_n=FAST)


def _dep(chain_id: int) -> Deployment:
    keys = dev_accounts() if chain_id == 31337 else {}
    return Deployment(chain_id, "http://127.0.0.1:8545", "0x" + "11" * 20, "0x" + "22" * 20, 1, DevnetParams(),
                      keys=keys)


# the keystore ---------------------------------------------------------------------------------
def test_new_list_load_round_trip(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    address = new_key("prod-provider", "s3cret", keystore=d, scrypt_n=FAST)
    [info] = list_keys(keystore=d)
    assert info == ("prod-provider", address, d / "prod-provider.json")
    assert Account.from_key(load_key("prod-provider", "s3cret", keystore=d)).address == address
    assert Account.from_key(load_key(str(info.path), "s3cret")).address == address  # by path too


def test_file_is_web3_secret_storage_v3_with_scrypt(ks: Keystore) -> None:
    ks.new("a", "pw")
    data = json.loads(ks.path_of("a").read_text())
    assert data["version"] == 3 and data["crypto"]["kdf"] == "scrypt"
    assert data["crypto"]["kdfparams"]["n"] == FAST
    assert Account.decrypt(data, "pw")  # any v3 tool (geth, MetaMask, eth_account) can read it


def test_default_cost_is_standard_scrypt(tmp_path: Path) -> None:
    Keystore(tmp_path).import_("std", KEY, "pw")
    assert json.loads((tmp_path / "std.json").read_text())["crypto"]["kdfparams"]["n"] == DEFAULT_SCRYPT_N == 2**18


def test_import_then_load(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    assert import_key("ops", KEY, "pw", keystore=d, scrypt_n=FAST) == ADDRESS
    assert load_key("ops", "pw", keystore=d).hex() == KEY[2:]
    assert Keystore(d).address("ops") == ADDRESS


@pytest.mark.parametrize("raw", [KEY[2:], bytes.fromhex(KEY[2:]), f"  {KEY}\n"])
def test_import_accepts_hex_without_prefix_and_bytes(ks: Keystore, raw: str | bytes) -> None:
    assert ks.import_("k", raw, "pw") == ADDRESS


@pytest.mark.parametrize("raw", ["0x1234", "zz" * 32, "0x" + "00" * 32, ""])
def test_import_refuses_non_keys_without_echoing_them(ks: Keystore, raw: str) -> None:
    with pytest.raises(KeystoreError, match="not a (usable )?private key") as exc:
        ks.import_("k", raw, "pw")
    assert not raw or raw not in str(exc.value)
    assert not ks.path_of("k").exists()


def test_wrong_passphrase_is_a_clear_mercato_error(ks: Keystore) -> None:
    ks.new("a", "right")
    with pytest.raises(WrongPassphrase, match="wrong passphrase for key 'a'") as exc:
        ks.load("a", "wrong")
    assert isinstance(exc.value, MercatoError) and exc.value.__cause__ is None
    assert exc.value.__suppress_context__


def test_never_overwrites(ks: Keystore) -> None:
    first = ks.new("a", "pw")
    before = ks.path_of("a").read_bytes()
    with pytest.raises(KeyExists, match="exists already"):
        ks.new("a", "pw")
    with pytest.raises(KeyExists):
        ks.import_("a", KEY, "pw")
    assert ks.path_of("a").read_bytes() == before and ks.address("a") == first
    assert [p.name for p in ks.directory.iterdir()] == ["a.json"]  # no temp file left behind


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "a\\b", ".hidden", "a.json", "a b", "~root", "x" * 65,
                                  "-flag", "näme"])
def test_bad_names(ks: Keystore, name: str) -> None:
    with pytest.raises(KeystoreError, match="bad key name"):
        ks.new(name, "pw")
    assert not ks.directory.exists() or not any(ks.directory.iterdir())


def test_file_and_dir_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ks = Keystore(tmp_path / "nested" / "keys", scrypt_n=FAST)
        ks.new("a", "pw")
    finally:
        os.umask(old)
    assert stat.S_IMODE(ks.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(ks.path_of("a").stat().st_mode) == 0o600


def test_loose_existing_dir_is_tightened(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    Keystore(d, scrypt_n=FAST).new("a", "pw")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_missing_key_names_what_exists(ks: Keystore) -> None:
    ks.new("there", "pw")
    with pytest.raises(KeyNotFound, match=r"no key 'gone'.*keys there: there.*mercato keys new"):
        ks.load("gone", "pw")
    with pytest.raises(KeyNotFound):
        ks.load(str(ks.directory / "nope.json"), "pw")


def test_list_empty_and_unreadable_files(ks: Keystore) -> None:
    assert ks.entries() == []  # the folder does not even exist yet
    ks.new("good", "pw")
    (ks.directory / "junk.json").write_text("{not json")
    assert [(k.name, k.address == "?") for k in ks.entries()] == [("good", False), ("junk", True)]
    with pytest.raises(KeystoreError, match="not a readable keystore"):
        ks.address("junk")
    with pytest.raises(KeystoreError, match="cannot read keystore file"):
        ks.load("junk", "pw")


def test_scrypt_n_must_be_a_power_of_two(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="power of two"):
        Keystore(tmp_path, scrypt_n=3)


def test_default_keystore_is_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Keystore().directory == tmp_path / ".mercato" / "keys"


# passphrase sources ---------------------------------------------------------------------------
def test_password_file_first_line_without_newline(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("  pass phrase \nsecond line\n")
    assert read_password_file(f) == "  pass phrase "  # only the line ending goes
    f.write_text("crlf\r\n")
    assert read_password_file(f) == "crlf"
    f.write_text("form\x0cfeed\u2028kept\n")
    assert read_password_file(f) == "form\x0cfeed\u2028kept"  # only \n ends the line
    f.write_text("")
    assert read_password_file(f) == ""
    f.write_text("no newline")
    assert PassphraseSource(file=f).get("k") == "no newline"


def test_password_file_missing_or_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"password file .*nope does not exist.*first line"):
        read_password_file(tmp_path / "nope")
    with pytest.raises(ConfigError, match="is a folder"):
        read_password_file(tmp_path)


def test_prompt_confirmation_and_empty_passphrases() -> None:
    answers = iter(["one", "two"])
    with pytest.raises(KeystoreError, match="passphrases differ"):
        PassphraseSource(prompt=lambda _: next(answers)).get("k", confirm=True)
    assert PassphraseSource(prompt=lambda _: "same").get("k", confirm=True) == "same"
    with pytest.raises(KeystoreError, match="empty passphrase"):
        PassphraseSource(prompt=lambda _: "").get("k", new=True)
    assert PassphraseSource(prompt=lambda _: "").get("k") == ""  # an old key may have one


def test_no_source_says_how_to_give_one() -> None:
    with pytest.raises(ConfigError, match="--password-file PATH or set MERCATO_PASSWORD_FILE"):
        PassphraseSource().get("key 'a'")


def test_file_wins_over_prompt(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    assert PassphraseSource(file=tmp_path / "pw", prompt=lambda _: "typed").get("k", confirm=True) == "from-file"


# account resolution ---------------------------------------------------------------------------
def test_keystore_account_resolves(ks: Keystore, tmp_path: Path) -> None:
    ks.import_("ops", KEY, "pw")
    (tmp_path / "pw").write_text("pw\n")
    unlock = Unlocker(ks.directory, PassphraseSource(file=tmp_path / "pw"))
    for dep in (_dep(1), _dep(31337)):
        assert dep.key_of("keystore:ops", unlock=unlock, origin=tmp_path / "config.toml") == KEY
        assert dep.key_of(f"keystore:{ks.path_of('ops')}", unlock=unlock) == KEY


def test_keystore_account_errors(ks: Keystore, tmp_path: Path) -> None:
    ks.import_("ops", KEY, "pw")
    (tmp_path / "bad").write_text("nope\n")
    with pytest.raises(WrongPassphrase):
        _dep(1).key_of("keystore:ops", unlock=Unlocker(ks.directory, PassphraseSource(file=tmp_path / "bad")))
    with pytest.raises(ConfigError, match="no passphrase was given"):
        _dep(1).key_of("keystore:ops", unlock=Unlocker(ks.directory))
    asked: list[str] = []
    with pytest.raises(KeyNotFound):  # a missing key fails before anyone is asked
        _dep(1).key_of("keystore:other", unlock=Unlocker(ks.directory, PassphraseSource(prompt=asked.append)))
    assert asked == []
    with pytest.raises(ConfigError, match="names no key"):
        _dep(1).key_of("keystore:", unlock=Unlocker(ks.directory))


def test_plain_key_from_a_config_file_refused_off_devnet(tmp_path: Path) -> None:
    cfg = tmp_path / "mercato.toml"
    cfg.write_text(f'chain_id = 8453\naccount = "{KEY}"\n')
    s = Settings.load(cfg, {})
    assert s.account_origin == cfg
    with pytest.raises(PlainKeyRefused, match=r"plain private key.*chain 8453.*mercato keys import NAME") as exc:
        _dep(8453).key_of(s.account, origin=s.account_origin)
    assert KEY not in str(exc.value) and KEY[2:] not in str(exc.value)


def test_plain_key_from_a_config_file_accepted_on_devnet(tmp_path: Path) -> None:
    cfg = tmp_path / "mercato.toml"
    cfg.write_text(f'account = "{KEY}"\n')
    s = Settings.load(cfg, {})
    assert _dep(31337).key_of(s.account, origin=s.account_origin) == KEY


def test_plain_key_from_a_provider_config_refused_off_devnet(tmp_path: Path) -> None:
    cfg = tmp_path / "provider.toml"
    cfg.write_text(f'[provider]\naccount = "{KEY}"\n')
    pc = ProviderConfig.load(cfg)
    with pytest.raises(PlainKeyRefused):
        _dep(1).key_of(pc.account, origin=cfg)
    assert _dep(31337).key_of(pc.account, origin=cfg) == KEY


def test_plain_key_not_from_a_file_still_works(tmp_path: Path) -> None:
    cfg = tmp_path / "mercato.toml"
    cfg.write_text('account = "requester1"\n')
    from_env = Settings.load(cfg, {"MERCATO_ACCOUNT": KEY})
    assert from_env.account_origin is None and _dep(1).key_of(from_env.account, origin=from_env.account_origin) == KEY
    from_cli = Settings.load(cfg, {}).with_(account=KEY)
    assert from_cli.account_origin is None
    assert Settings.load(cfg, {}).with_(rpc_url="").account_origin == cfg  # other changes keep it
    assert _dep(1).key_of(KEY) == KEY  # code that passes no origin: unchanged


def test_dev_accounts_keep_working_on_devnet() -> None:
    dep = _dep(31337)
    assert dep.key_of("provider1", origin="provider.toml") == dev_accounts()["provider1"]
    assert dep.key_of("requester1") == dev_accounts()["requester1"]


def test_unknown_account_never_echoes_a_key_like_value() -> None:
    with pytest.raises(ChainError, match=r"no key for account <a private key>.*keystore:NAME"):
        _dep(1).key_of(KEY[2:])
    with pytest.raises(ChainError, match=r"no key for account 'no-such-account'"):
        resolve_account("no-such-account", chain_id=31337, dev_keys=dev_accounts())


def test_settings_keystore_and_password_file(tmp_path: Path) -> None:
    cfg = tmp_path / "mercato.toml"
    cfg.write_text('keystore = "~/ks"\npassword_file = "pw.txt"\n')
    s = Settings.load(cfg, {})
    assert s.keystore == Path("~/ks").expanduser() and s.password_file == Path("pw.txt")
    s = Settings.load(cfg, {"MERCATO_KEYSTORE": str(tmp_path / "k"), "MERCATO_PASSWORD_FILE": str(tmp_path / "p")})
    assert s.keystore == tmp_path / "k" and s.password_file == tmp_path / "p"
    assert Settings().keystore is None and Settings().password_file is None
    unlock = Unlocker.from_settings(s)
    assert unlock.keystore == tmp_path / "k" and unlock.passphrase.file == tmp_path / "p"
    (tmp_path / "bad.toml").write_text(f'account_origin = "{cfg}"\n')
    with pytest.raises(ConfigError, match="unknown setting"):  # provenance is not settable
        Settings.load(tmp_path / "bad.toml", {})
