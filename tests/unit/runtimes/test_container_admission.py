"""ContainerRuntime.admit_bid and the engine's extra flags, with a scripted engine (no podman)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from mercato.domain.jobs import ContainerSpec, JobSpec, Limits
from mercato.errors import GpuUnavailable, ImageRejected, RuntimeUnavailable, WorkloadError
from mercato.runtimes import BlobStore
from mercato.runtimes import container as container_mod
from mercato.runtimes.container import ContainerRuntime, ContainerSettings, Engine, find_engine

IMAGE = "sha256:" + "ab" * 32


def _spec(**c: Any) -> JobSpec:
    return JobSpec(runtime="container", workload=IMAGE, limits=Limits(wall_clock_s=5), container=ContainerSpec(**c))


def _runtime(tmp_path: Path, images: set[str], *, missing: bool = False, **settings: Any) -> tuple[ContainerRuntime, list]:
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if missing:
            raise FileNotFoundError(2, "No such file or directory")
        calls.append(argv[1:])
        ref = argv[-1]
        return subprocess.CompletedProcess(argv, 0 if ref in images else 125, ref if ref in images else "", "")

    rt = ContainerRuntime(BlobStore(tmp_path / "b"), state_dir=tmp_path / "s", engine=Engine("podman", "podman"),
                          gpus=[], run=run, settings=ContainerSettings(namespace="unit", **settings))
    return rt, calls


def test_local_image_is_admitted_with_one_engine_call(tmp_path: Path) -> None:
    rt, calls = _runtime(tmp_path, {IMAGE})
    assert rt.admit_bid(_spec()) == ContainerSpec()
    assert calls == [["image", "inspect", "--format", "{{.Id}}", IMAGE]]


def test_archive_or_pullable_reference_needs_no_engine_lookup(tmp_path: Path) -> None:
    rt, calls = _runtime(tmp_path, set())
    rt.admit_bid(_spec(image_archive="sha256:" + "cd" * 32))
    rt.admit_bid(_spec(image_ref="registry.example/x@sha256:" + "ef" * 32))
    assert calls == []


def test_unobtainable_images_are_rejected_with_the_fix(tmp_path: Path) -> None:
    rt, _ = _runtime(tmp_path, set(), allow_pull=False)
    with pytest.raises(ImageRejected, match="image_archive"):
        rt.admit_bid(_spec())
    with pytest.raises(ImageRejected, match="does not pull"):
        rt.admit_bid(_spec(image_ref="registry.example/x@sha256:" + "ef" * 32))


def test_other_refusals_keep_their_types(tmp_path: Path) -> None:
    rt, _ = _runtime(tmp_path, {IMAGE})
    with pytest.raises(GpuUnavailable, match="none"):
        rt.admit_bid(_spec(gpus=1))
    with pytest.raises(WorkloadError, match="network"):
        rt.admit_bid(_spec(network="bridge"))
    missing, _ = _runtime(tmp_path, {IMAGE}, missing=True)
    with pytest.raises(RuntimeUnavailable):
        missing.admit_bid(_spec())


def test_engine_args_reach_every_engine_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_mod.shutil, "which", lambda name: f"/usr/bin/{name}")
    engine = find_engine(ContainerSettings(engine="podman", oci_runtime="runc",
                                           engine_args=("--storage-driver", "vfs")), state_dir=tmp_path)
    assert engine.argv("ps") == ["/usr/bin/podman", "--runtime", "runc", "--storage-driver", "vfs", "ps"]
