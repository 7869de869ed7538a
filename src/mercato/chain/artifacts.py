"""Compile the Vyper contracts once and cache ABI + bytecode by source hash.

    >>> art = load_artifacts(cache_dir)        # doctest: +SKIP
    >>> art["market"].abi[0]["type"]           # doctest: +SKIP
    'constructor'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercato.errors import ChainError

__all__ = ["Artifact", "CONTRACTS", "contracts_dir", "load_artifacts", "compile_contract"]

# name -> path under contracts/
CONTRACTS: dict[str, str] = {"market": "market.vy", "token": "mocks/stable_token.vy"}


@dataclass(frozen=True, slots=True)
class Artifact:
    """A compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


def contracts_dir() -> Path:
    """``contracts/`` of the source checkout (the package is installed editable)."""
    root = Path(__file__).resolve().parents[3] / "contracts"
    if not (root / CONTRACTS["market"]).is_file():
        raise ChainError(
            f"contract sources not found under {root}: Mercato must run from a source checkout "
            "installed with `pip install -e .`"
        )
    return root


def _search_paths(root: Path) -> list[Path]:
    import snekmate  # namespace package: its parent dir is the import root for `snekmate.*`

    return [root, *(Path(p).parent for p in snekmate.__path__)]


def _fingerprint(root: Path) -> str:
    import vyper

    digest = hashlib.sha256(f"vyper {vyper.__version__}".encode())
    for path in sorted(root.rglob("*.vy*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def compile_contract(root: Path, relpath: str) -> tuple[list[dict[str, Any]], bytes]:
    """Compile one contract with the vyper Python API; returns (abi, deploy bytecode)."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.exceptions import VyperException

    path = root / relpath
    bundle = FilesystemInputBundle(_search_paths(root))
    try:
        out = vyper.compile_code(
            path.read_text(), contract_path=relpath, resolved_path=path,
            input_bundle=bundle, output_formats=["abi", "bytecode"],
        )
    except VyperException as exc:
        raise ChainError(f"{relpath} does not compile: {exc}") from exc
    return out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x"))


def load_artifacts(cache_dir: Path, root: Path | None = None) -> dict[str, Artifact]:
    """All contracts in :data:`CONTRACTS`, compiled at most once per source version."""
    root = root or contracts_dir()
    cache = cache_dir / f"contracts-{_fingerprint(root)}.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
    else:
        data = {}
        for name, rel in CONTRACTS.items():
            abi, code = compile_contract(root, rel)
            data[name] = {"abi": abi, "bytecode": code.hex()}
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(cache)  # atomic: parallel test workers never read half a file
    return {n: Artifact(n, d["abi"], bytes.fromhex(d["bytecode"])) for n, d in data.items()}
