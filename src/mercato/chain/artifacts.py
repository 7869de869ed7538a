"""Compile the Vyper contracts once and cache ABI + bytecode by source hash.

    >>> art = load_artifacts(cache_dir)        # doctest: +SKIP
    >>> art["market"].abi[0]["type"]           # doctest: +SKIP
    'constructor'
    >>> art["court"].blueprint                 # doctest: +SKIP
    True

The court is compiled as an EIP-5202 blueprint (:data:`BLUEPRINTS`): its ``bytecode`` is the
initcode of the blueprint contract (a plain creation transaction deploys it, and calling it
does nothing); the Market's constructor makes the court from it with ``create_from_blueprint``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercato.errors import ChainError

__all__ = ["Artifact", "BLUEPRINTS", "CONTRACTS", "contracts_dir", "load_artifacts", "compile_contract"]

# name -> path under contracts/
CONTRACTS: dict[str, str] = {"market": "market.vy", "court": "court.vy", "token": "mocks/stable_token.vy"}
# contracts deployed as EIP-5202 blueprints, not as runnable contracts
BLUEPRINTS: frozenset[str] = frozenset({"court"})
_CACHE_FORMAT = "2"  # bump when the cache file's layout changes


@dataclass(frozen=True, slots=True)
class Artifact:
    """A compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes  # deploy bytecode; for a blueprint, the blueprint's initcode
    blueprint: bool = False


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

    digest = hashlib.sha256(f"vyper {vyper.__version__} cache {_CACHE_FORMAT}".encode())
    for path in sorted(root.rglob("*.vy*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def compile_contract(root: Path, relpath: str, *, blueprint: bool = False) -> tuple[list[dict[str, Any]], bytes]:
    """Compile one contract with the vyper Python API; returns (abi, deploy bytecode), or with
    ``blueprint`` (abi, the initcode of its EIP-5202 blueprint)."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.exceptions import VyperException

    path = root / relpath
    code_format = "blueprint_bytecode" if blueprint else "bytecode"
    bundle = FilesystemInputBundle(_search_paths(root))
    try:
        out = vyper.compile_code(
            path.read_text(), contract_path=relpath, resolved_path=path,
            input_bundle=bundle, output_formats=["abi", code_format],
        )
    except VyperException as exc:
        raise ChainError(f"{relpath} does not compile: {exc}") from exc
    return out["abi"], bytes.fromhex(out[code_format].removeprefix("0x"))


def load_artifacts(cache_dir: Path, root: Path | None = None) -> dict[str, Artifact]:
    """All contracts in :data:`CONTRACTS`, compiled at most once per source version."""
    root = root or contracts_dir()
    cache = cache_dir / f"contracts-{_fingerprint(root)}.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
    else:
        data = {}
        for name, rel in CONTRACTS.items():
            blueprint = name in BLUEPRINTS
            abi, code = compile_contract(root, rel, blueprint=blueprint)
            data[name] = {"abi": abi, "bytecode": code.hex(), "blueprint": blueprint}
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(cache)  # atomic: parallel test workers never read half a file
    return {n: Artifact(n, d["abi"], bytes.fromhex(d["bytecode"]), bool(d.get("blueprint", False)))
            for n, d in data.items()}
