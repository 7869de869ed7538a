"""GPU detection against recorded nvidia-smi output, matching requests, leases and engine flags."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mercato.errors import GpuUnavailable
from mercato.runtimes.gpu import (
    NVIDIA_SMI_ARGS,
    Gpu,
    GpuPool,
    detect_gpus,
    gpu_flags,
    has_cdi_spec,
    parse_nvidia_smi,
    select_gpus,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"


def _smi(name: str, returncode: int = 0):
    """A stand-in for subprocess.run that answers with a recorded nvidia-smi output."""
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, (FIXTURES / name).read_text(), "")

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_one_h100():
    run = _smi("h100_1x.txt")
    gpus = detect_gpus(nvidia_smi="/usr/bin/nvidia-smi", run=run, use_nvml=False)
    assert gpus == [Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "GPU-5c1f5f2e-0b9a-4f67-9d0e-3a1c8e2f7b41", "550.54.15")]
    assert run.calls == [["/usr/bin/nvidia-smi", *NVIDIA_SMI_ARGS]]  # type: ignore[attr-defined]


def test_eight_a100s():
    gpus = detect_gpus(nvidia_smi="nvidia-smi", run=_smi("a100_8x.txt"), use_nvml=False)
    assert [g.index for g in gpus] == list(range(8))
    assert {g.name for g in gpus} == {"NVIDIA A100-SXM4-80GB"} and {g.memory_mb for g in gpus} == {81920}
    assert len({g.uuid for g in gpus}) == 8 and all(g.driver_version == "535.129.03" for g in gpus)


def test_malformed_lines_are_skipped_not_fatal():
    gpus = parse_nvidia_smi((FIXTURES / "malformed.txt").read_text())
    assert [(g.index, g.name, g.memory_mb) for g in gpus] == [(3, "NVIDIA A10G", 23028)]


def test_nonzero_exit_means_no_gpus():
    assert detect_gpus(nvidia_smi="nvidia-smi", run=_smi("driver_failed.txt", returncode=9), use_nvml=False) == []


def test_no_nvidia_smi_means_no_gpus(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_gpus(use_nvml=False) == []


@pytest.mark.parametrize("error", [FileNotFoundError(2, "gone"), subprocess.TimeoutExpired("nvidia-smi", 15)])
def test_a_failing_nvidia_smi_is_never_an_exception(error: Exception):
    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise error

    assert detect_gpus(nvidia_smi="nvidia-smi", run=run, use_nvml=False) == []


def test_gpu_records_are_frozen():
    gpu = parse_nvidia_smi((FIXTURES / "h100_1x.txt").read_text())[0]
    with pytest.raises(AttributeError):
        gpu.index = 1  # type: ignore[misc]


def test_select_matches_model_and_memory():
    gpus = parse_nvidia_smi((FIXTURES / "a100_8x.txt").read_text())
    assert [g.index for g in select_gpus(gpus, 2, model="a100", min_memory_mb=80_000)] == [0, 1]
    assert [g.index for g in select_gpus(gpus, 2, busy=frozenset({0, 2}))] == [1, 3]
    assert select_gpus([], 0) == ()


@pytest.mark.parametrize(("gpus_file", "count", "kwargs", "match"), [
    (None, 1, {}, "has none"),
    ("h100_1x.txt", 2, {}, "has 1 such"),
    ("h100_1x.txt", 1, {"model": "A100"}, "model containing 'A100'"),
    ("a100_8x.txt", 1, {"min_memory_mb": 100_000}, "at least 100000 MiB"),
])
def test_declines_name_the_reason(gpus_file, count, kwargs, match):
    gpus = parse_nvidia_smi((FIXTURES / gpus_file).read_text()) if gpus_file else []
    with pytest.raises(GpuUnavailable, match=match) as info:
        select_gpus(gpus, count, **kwargs)
    assert info.value.requested == count


def test_pool_leases_each_gpu_to_one_job():
    pool = GpuPool(parse_nvidia_smi((FIXTURES / "a100_8x.txt").read_text()))
    with pool.lease(6) as first:
        with pytest.raises(GpuUnavailable, match="only 2 are free"):
            with pool.lease(3):
                pass
        with pool.lease(2) as second:
            assert {g.index for g in first} | {g.index for g in second} == set(range(8))
        pool.check(8)  # busy GPUs still count for "could this machine ever run it"
    with pool.lease(8) as everything:
        assert len(everything) == 8


def test_flags_cdi_and_gpus():
    gpus = parse_nvidia_smi((FIXTURES / "a100_8x.txt").read_text())[2:4]
    assert gpu_flags(gpus, cdi=True) == ["--device", "nvidia.com/gpu=2", "--device", "nvidia.com/gpu=3"]
    assert gpu_flags(gpus, cdi=False) == ["--gpus", '"device=2,3"']
    assert gpu_flags((), cdi=True) == []


def test_cdi_spec_detection(tmp_path: Path):
    assert not has_cdi_spec(dirs=[tmp_path, tmp_path / "missing"])
    (tmp_path / "other.yaml").write_text("cdiVersion: 0.5.0\nkind: vendor.com/fpga\n")
    assert not has_cdi_spec(dirs=[tmp_path])
    (tmp_path / "near.yaml").write_text('cdiVersion: 0.5.0\nkind: "nvidia.com/gpus"\n# kind: nvidia.com/gpu\n')
    assert not has_cdi_spec(dirs=[tmp_path])  # another kind, and a comment, are not the spec
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: '0'\n")
    assert has_cdi_spec(dirs=[tmp_path])
    for text in ('kind: "nvidia.com/gpu"\n', "kind: 'nvidia.com/gpu'\n", '{"cdiVersion": "0.5.0",\n "kind": "nvidia.com/gpu",\n'):
        (tmp_path / "nvidia.yaml").write_text(text)  # double-quoted YAML, single-quoted YAML, JSON
        assert has_cdi_spec(dirs=[tmp_path]), text
    (tmp_path / "nvidia.yaml").unlink()
    (tmp_path / "nvidia.json").write_text('{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[]}')  # compact
    assert has_cdi_spec(dirs=[tmp_path])
