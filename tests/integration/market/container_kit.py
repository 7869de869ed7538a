"""Container fixtures for market tests: real podman, a busybox image built here (no registry),
and provider agents that offer the ``container`` runtime.

The image is the one tests/integration/runtimes/test_oci_container.py builds (the same
Containerfile and Debian's static busybox, the same tag), so a session running both builds it once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent_kit import AgentProcess, free_port

from mercato.chain import Devnet
from mercato.runtimes.container import LABEL_NAMESPACE, ContainerSettings, Engine, find_engine
from mercato.runtimes.gpu import has_cdi_spec

IMAGES = Path(__file__).resolve().parents[1] / "runtimes" / "images"
BUSYBOX = Path("/bin/busybox")
SH = ["/bin/busybox", "sh", "-c"]


def image_id(engine: Engine, ref: str) -> str | None:
    """The image ID ("sha256:…") of ``ref``, or None if the local store lacks it."""
    found = subprocess.run(engine.argv("image", "inspect", "--format", "{{.Id}}", ref),
                           capture_output=True, text=True, env=engine.environ())
    if found.returncode != 0:
        return None
    ident = found.stdout.strip()
    return ident if ident.startswith("sha256:") else "sha256:" + ident


def build(engine: Engine, tag: str, context: Path, *extra: str) -> str:
    """Build ``context`` as ``tag`` unless that tag exists; the image ID."""
    ident = image_id(engine, tag)
    if ident is None:
        subprocess.run(engine.argv("build", "-q", "-t", tag, *extra, str(context)), check=True,
                       capture_output=True, text=True, env=engine.environ())
        ident = image_id(engine, tag)
    assert ident is not None
    return ident


def save(engine: Engine, image: str, path: Path) -> Path:
    """``podman save`` of ``image`` to ``path`` (the archive a requester ships)."""
    subprocess.run(engine.argv("save", "-o", str(path), image.removeprefix("sha256:")), check=True,
                   capture_output=True, env=engine.environ())
    return path


def remove_image(engine: Engine, image: str) -> None:
    subprocess.run(engine.argv("rmi", "--force", image.removeprefix("sha256:")), capture_output=True,
                   env=engine.environ())


def containers(engine: Engine, namespace: str) -> list[str]:
    """Names of every container (running or not) labelled with ``namespace``."""
    out = subprocess.run(engine.argv("ps", "--all", "--filter", f"label={LABEL_NAMESPACE}={namespace}",
                                     "--format", "{{.Names}}"), capture_output=True, text=True, check=True,
                         env=engine.environ())
    return out.stdout.split()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Real podman (installed by `make containers`); its absence fails loudly."""
    assert BUSYBOX.is_file(), "busybox-static is missing: apt-get install busybox-static (make containers does)"
    return find_engine(ContainerSettings(engine="podman"), state_dir=tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="session")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ctx = tmp_path_factory.mktemp("busybox-ctx")
    shutil.copy(IMAGES / "busybox" / "Containerfile", ctx / "Containerfile")
    (ctx / "root" / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, ctx / "root" / "bin" / "busybox")
    return ctx


@pytest.fixture(scope="session")
def image_tag(context: Path) -> str:
    h = hashlib.sha256((context / "Containerfile").read_bytes() + BUSYBOX.read_bytes()).hexdigest()[:16]
    return f"localhost/mercato-test/busybox:{h}"


@pytest.fixture(scope="session")
def image(engine: Engine, context: Path, image_tag: str) -> str:
    return build(engine, image_tag, context)


@pytest.fixture
def shipped_image(engine: Engine, context: Path, image_tag: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh image (unique label, so a unique ID) saved to an archive and removed from the
    local store: a provider on this machine can run it only by loading the shipped archive."""
    stamp = secrets.token_hex(4)
    ident = build(engine, f"{image_tag}-ship{stamp}", context, "--label", f"mercato.test={stamp}")
    archive = save(engine, ident, tmp_path / f"image-{stamp}.tar")
    remove_image(engine, ident)
    yield ident, archive
    remove_image(engine, ident)


def start_container_agent(root: Path, devnet: Devnet, account: str, namespace: str, *, lanes: int = 2,
                          stake: int = 50_000 * 10**6, pricing: dict[str, Any] | None = None,
                          container: dict[str, Any] | None = None,
                          path_prefix: Path | None = None) -> AgentProcess:
    """``mercato provider start`` offering only the container runtime, in ``namespace``
    (``path_prefix``: a folder searched first on the agent's PATH)."""
    port = free_port()
    table = {"engine": "podman", "namespace": namespace, **(container or {})}
    lines = [f'account = "{account}"', f"port = {port}", f'data_dir = "{account}"', f"stake = {stake}",
             f"lanes = {lanes}", 'runtimes = ["container"]', "poll_interval_s = 0.2",
             "housekeeping_interval_s = 0.2",
             "[pricing]", *(f"{k} = {_toml(v)}" for k, v in (pricing or {}).items()),
             "[container]", *(f"{k} = {_toml(v)}" for k, v in table.items())]
    config = root / f"{account}.toml"
    config.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, MERCATO_HOME=str(devnet.settings.home),
               MERCATO_DEPLOYMENT=str(devnet.settings.deployment_path), MERCATO_CACHE=str(root / "cache"))
    env.pop("MERCATO_RPC_URL", None)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return AgentProcess(config, port, env, root / f"{account}.log", account).start()


NVIDIA_SMI_RECORDING = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi" / "h100_1x.txt"
SIMULATED_CDI = Path("/var/run/cdi/mercato-simulated-gpu.yaml")
_SIMULATED_SPEC = """cdiVersion: "0.5.0"
kind: "nvidia.com/gpu"
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: "/dev/nvidia0"
          hostPath: "/dev/null"
      env:
        - "NVIDIA_VISIBLE_DEVICES=0"
"""


@contextmanager
def simulated_gpu(root: Path) -> Iterator[Path]:
    """A stand-in for one NVIDIA GPU on a machine without any, to drive the GPU path (detection,
    registry entry, admission, lease, CDI flags, podman, billing) through real processes: an
    ``nvidia-smi`` that prints a recorded H100 answer (yields its folder, for an agent's PATH)
    and a CDI spec for ``nvidia.com/gpu=0`` that gives a container ``/dev/nvidia0`` (the host's
    ``/dev/null``) and ``NVIDIA_VISIBLE_DEVICES=0``. Removed on exit. The CDI folder is the
    engine's (podman 4 reads /etc/cdi and /var/run/cdi only), so it needs root, as CI has."""
    assert not has_cdi_spec(), "this machine has an NVIDIA CDI spec: the real GPU tests run instead"
    bindir = root / "simulated-gpu-bin"
    bindir.mkdir(parents=True)
    smi = bindir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nexec cat {NVIDIA_SMI_RECORDING}\n")
    smi.chmod(0o755)
    SIMULATED_CDI.parent.mkdir(parents=True, exist_ok=True)
    SIMULATED_CDI.write_text(_SIMULATED_SPEC)
    try:
        yield bindir
    finally:
        SIMULATED_CDI.unlink(missing_ok=True)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
