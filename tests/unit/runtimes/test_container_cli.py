"""The container runtime without an engine: command lines, admission, image archives, the
container job spec and its receipt (the real podman runs are in tests/integration/runtimes)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from mercato.domain.jobs import ContainerSpec, JobSpec, Limits, Outcome, Receipt, ResourceSeconds
from mercato.errors import GpuUnavailable, ImageRejected, SpecError, WorkloadError
from mercato.runtimes import BlobStore, Workspace, runtime_for
from mercato.runtimes.container import (
    CONTAINERS_CONF,
    ContainerRuntime,
    ContainerSettings,
    Engine,
    RunPlan,
    _judge,
    _Run,
    archive_image_id,
    create_argv,
    find_engine,
    remove_argv,
)
from mercato.runtimes.gpu import Gpu

PODMAN = Engine("podman", "/usr/bin/podman", ("--runtime", "runc"))
DOCKER = Engine("docker", "/usr/bin/docker")
IMAGE = "sha256:" + "ab" * 32
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "GPU-0", "550.54.15")


def _plan(tmp_path: Path, **changes: object) -> RunPlan:
    ws = Workspace.create(tmp_path)
    base = dict(name="mercato-default-job1-abcd", image=IMAGE, namespace="default", job="job1",
                input_dir=ws.input_dir, output_dir=ws.output_dir)
    return RunPlan(**{**base, **changes})  # type: ignore[arg-type]


def _pairs(argv: list[str]) -> list[tuple[str, str]]:
    return list(zip(argv, argv[1:]))


def test_create_argv_carries_every_limit(tmp_path: Path):
    plan = _plan(tmp_path, cpu_millis=1500, memory_bytes=256 << 20, pids=64, tmp_bytes=8 << 20,
                 command=("python", "-c", "print(1)"), env=(("A", "1"), ("B", "x=y")))
    argv = create_argv(PODMAN, plan)
    assert argv[:4] == ["/usr/bin/podman", "--runtime", "runc", "create"]
    pairs = _pairs(argv)
    for pair in [("--name", plan.name), ("--label", "mercato.namespace=default"), ("--label", "mercato.job=job1"),
                 ("--network", "none"), ("--cpus", "1.500"), ("--memory", str(256 << 20)),
                 ("--memory-swap", str(256 << 20)), ("--pids-limit", "64"), ("--cap-drop", "all"),
                 ("--security-opt", "no-new-privileges"), ("--log-driver", "none"), ("--hostname", "mercato"),
                 ("--env", "A=1"), ("--env", "B=x=y"), ("--image-volume", "tmpfs")]:
        assert pair in pairs, pair
    assert "--read-only" in argv and "--read-only-tmpfs=false" in argv
    assert ("--tmpfs", f"/tmp:rw,nosuid,nodev,size={8 << 20},mode=1777") in pairs
    assert ("--volume", f"{plan.input_dir}:/input:ro") in pairs
    assert ("--volume", f"{plan.output_dir}:/output:rw") in pairs
    assert argv[-4:] == [IMAGE, "python", "-c", "print(1)"]  # the image, then the command
    assert "--rm" not in argv  # removal is explicit, after the OOM status is read


def test_docker_gets_no_podman_only_flags(tmp_path: Path):
    argv = create_argv(DOCKER, _plan(tmp_path))
    assert argv[:2] == ["/usr/bin/docker", "create"]
    assert "--image-volume" not in argv and "--read-only-tmpfs=false" not in argv
    assert "--read-only" in argv and ("--network", "none") in _pairs(argv)


def test_gpu_flags_reach_the_command_line(tmp_path: Path):
    cdi = create_argv(PODMAN, _plan(tmp_path, gpus=(H100,), cdi=True))
    assert ("--device", "nvidia.com/gpu=0") in _pairs(cdi) and "--gpus" not in cdi
    legacy = create_argv(DOCKER, _plan(tmp_path, gpus=(H100,), cdi=False))
    assert ("--gpus", '"device=0"') in _pairs(legacy)
    assert "--gpus" not in create_argv(PODMAN, _plan(tmp_path)) and "--device" not in create_argv(PODMAN, _plan(tmp_path))


def test_mount_paths_that_would_split_are_refused(tmp_path: Path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    with pytest.raises(WorkloadError, match="','"):
        create_argv(PODMAN, _plan(tmp_path, input_dir=odd))


def test_remove_argv():
    assert remove_argv(PODMAN, "a", "b") == ["/usr/bin/podman", "--runtime", "runc", "rm", "--force", "--volumes",
                                             "--time", "0", "a", "b"]
    assert remove_argv(DOCKER, "a") == ["/usr/bin/docker", "rm", "--force", "--volumes", "a"]


def test_find_engine_prefers_podman_and_writes_its_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    found = {"podman": "/usr/bin/podman", "runc": "/usr/sbin/runc", "docker": "/usr/local/bin/docker"}
    monkeypatch.setattr("mercato.runtimes.container.shutil.which", found.get)
    engine = find_engine(ContainerSettings(), state_dir=tmp_path / "state")
    assert engine.kind == "podman" and engine.global_args == ("--runtime", "runc")
    conf = Path(dict(engine.env)["CONTAINERS_CONF"])
    assert conf.read_text() == CONTAINERS_CONF and "default_ulimits = []" in CONTAINERS_CONF
    plain = find_engine(ContainerSettings(oci_runtime="", containers_conf=""), state_dir=tmp_path)
    assert plain.global_args == () and plain.env == ()


def test_find_engine_without_any_engine_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mercato.errors import RuntimeUnavailable

    monkeypatch.setattr("mercato.runtimes.container.shutil.which", lambda name: None)
    with pytest.raises(RuntimeUnavailable, match="apt-get install podman"):
        find_engine(ContainerSettings(), state_dir=tmp_path)


def _spec(**container: object) -> JobSpec:
    return JobSpec(runtime="container", workload=IMAGE, container=ContainerSpec(**container))  # type: ignore[arg-type]


def _runtime(tmp_path: Path, gpus: list[Gpu], **settings: object) -> ContainerRuntime:
    return ContainerRuntime(BlobStore(tmp_path / "blobs"), state_dir=tmp_path, engine=PODMAN, gpus=gpus,
                            settings=ContainerSettings(**settings))  # type: ignore[arg-type]


def test_admission_declines_with_reasons(tmp_path: Path):
    rt = _runtime(tmp_path, [], max_cpu_millis=4000)
    assert rt.admit(_spec()) == ContainerSpec()
    with pytest.raises(WorkloadError, match="without network"):
        rt.admit(_spec(network="bridge"))
    with pytest.raises(WorkloadError, match="reserves 8 vCPUs; this provider allows 4"):
        rt.admit(_spec(cpu_millis=8000))
    with pytest.raises(GpuUnavailable, match="has none") as info:
        rt.admit(_spec(gpus=1))
    assert info.value.requested == 1 and info.value.available == 0
    with pytest.raises(WorkloadError, match="cannot run a 'wasm' job"):
        rt.admit(JobSpec(runtime="wasm", workload=IMAGE))


def test_gpu_jobs_with_podman_need_cdi(tmp_path: Path):
    with pytest.raises(GpuUnavailable, match="nvidia-ctk cdi generate"):
        _runtime(tmp_path, [H100], gpu_mode="gpus").admit(_spec(gpus=1))
    assert _runtime(tmp_path, [H100], gpu_mode="cdi").admit(_spec(gpus=1, gpu_model="h100")).gpus == 1


def test_missing_image_without_a_source_is_rejected(tmp_path: Path):
    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 125, "", "Error: image not known")

    rt = ContainerRuntime(BlobStore(tmp_path / "b"), state_dir=tmp_path, engine=PODMAN, gpus=[], run=run)
    with pytest.raises(ImageRejected, match="no image archive or registry reference"):
        rt.ensure_image(_spec())
    rt.settings = ContainerSettings(allow_pull=False)
    with pytest.raises(ImageRejected, match="pulling is off"):
        rt.ensure_image(_spec(image_ref="registry.example/app@sha256:" + "cd" * 32))


def test_cleanup_stale_removes_only_this_namespace(tmp_path: Path):
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        out = "mercato-p1-a-1\nmercato-p1-b-2\nnot-ours\n" if "ps" in argv else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    rt = ContainerRuntime(BlobStore(tmp_path / "b"), engine=PODMAN, gpus=[], run=run,
                          settings=ContainerSettings(namespace="p1"))
    assert rt.cleanup_stale() == ["mercato-p1-a-1", "mercato-p1-b-2"]
    assert "label=mercato.namespace=p1" in calls[0]
    assert calls[1][-2:] == ["mercato-p1-a-1", "mercato-p1-b-2"] and "--volumes" in calls[1]


def test_runtime_for_knows_container(tmp_path: Path):
    rt = runtime_for("container", BlobStore(tmp_path), cache_dir=tmp_path / "cache")
    assert isinstance(rt, ContainerRuntime) and rt.state_dir == tmp_path / "cache" / "containers"


# -- image archives ---------------------------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
CONFIG_HEX = hashlib.sha256(CONFIG).hexdigest()


def test_docker_archive_id_is_the_config_digest():
    data = _tar({"manifest.json": json.dumps([{"Config": f"{CONFIG_HEX}.json", "Layers": []}]).encode(),
                 f"{CONFIG_HEX}.json": CONFIG})
    assert archive_image_id(data) == "sha256:" + CONFIG_HEX


def test_oci_archive_id_is_the_config_digest():
    manifest = json.dumps({"config": {"digest": "sha256:" + CONFIG_HEX}, "layers": []}).encode()
    mhex = hashlib.sha256(manifest).hexdigest()
    data = _tar({"index.json": json.dumps({"manifests": [{"digest": "sha256:" + mhex}]}).encode(),
                 f"blobs/sha256/{mhex}": manifest, f"blobs/sha256/{CONFIG_HEX}": CONFIG})
    assert archive_image_id(data) == "sha256:" + CONFIG_HEX


@pytest.mark.parametrize(("files", "match"), [
    ({"manifest.json": json.dumps([{"Config": f"{CONFIG_HEX}.json"}]).encode(), f"{CONFIG_HEX}.json": CONFIG + b" "},
     "does not hash to its name"),
    ({"manifest.json": json.dumps([{"Config": "a.json"}, {"Config": "b.json"}]).encode()}, "exactly one image"),
    ({"hello.txt": b"hi"}, "neither manifest.json nor index.json"),
    ({"manifest.json": b"{not json"}, "not a readable image tar"),
])
def test_bad_archives_are_rejected(files: dict[str, bytes], match: str):
    with pytest.raises(ImageRejected, match=match):
        archive_image_id(_tar(files))


def test_not_a_tar_is_rejected():
    with pytest.raises(ImageRejected, match="not a readable image tar"):
        archive_image_id(b"\x00" * 100)


def test_archive_of_another_image_is_rejected_before_loading(tmp_path: Path):
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 125, "", "Error: image not known")

    blobs = BlobStore(tmp_path / "b")
    archive = blobs.put(_tar({"manifest.json": json.dumps([{"Config": f"{CONFIG_HEX}.json"}]).encode(),
                              f"{CONFIG_HEX}.json": CONFIG}))
    rt = ContainerRuntime(blobs, state_dir=tmp_path, engine=PODMAN, gpus=[], run=run)
    with pytest.raises(ImageRejected, match=f"holds image sha256:{CONFIG_HEX}, not the declared {IMAGE}"):
        rt.ensure_image(_spec(image_archive=archive))
    assert not any("load" in argv for argv in calls)


# -- judging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("run", "outcome", "code"), [
    (_Run(exit_code=0), Outcome.OK, 0),
    (_Run(exit_code=2), Outcome.EXIT_NONZERO, 2),
    (_Run(exit_code=137, oom=True), Outcome.MEMORY_EXCEEDED, None),
    (_Run(exit_code=0, oom=True), Outcome.MEMORY_EXCEEDED, None),  # a child was killed: still out of memory
    (_Run(exit_code=137, timed_out=True), Outcome.WALL_CLOCK_EXCEEDED, None),
    (_Run(exit_code=137, output_overflow=True), Outcome.OUTPUT_TOO_LARGE, None),
    (_Run(exit_code=137, stream_overflow=True, oom=True), Outcome.OUTPUT_TOO_LARGE, None),
])
def test_judging(run: _Run, outcome: Outcome, code: int | None):
    assert _judge(run, Limits())[:2] == (outcome, code)


# -- the container job spec and receipt -------------------------------------------------------

W = "sha256:" + "ab" * 32
I = "sha256:" + "cd" * 32


def test_wasm_and_python_hashes_are_unchanged():
    """Golden values computed with jobs.py as it was before container specs existed."""
    a = JobSpec(runtime="wasm", workload=W, args=("1",), env=(("A", "b"),), inputs=(("data.bin", I),),
                limits=Limits(fuel=7, wall_clock_s=2.5), seed=b"\x01" * 32)
    assert a.spec_hash() == "sha256:86d4abdea06da04e753c84e608f74ab4b286e1f7345a6d381fb0cfd579f422a8"
    assert JobSpec(runtime="python", workload=W).spec_hash() == \
        "sha256:cad1548d2ef2afa327768f3dcf44e2dcefb044c9a3039e3a7ef3e1b4dd91f094"
    assert "container" not in a.to_json() and a.blob_refs() == (W, I)


def test_container_spec_round_trips_and_hashes():
    spec = JobSpec(runtime="container", workload=W, args=("run",), inputs=(("x", I),),
                   container=ContainerSpec(cpu_millis=2000, gpus=1, gpu_model="H100", image_archive=I))
    again = JobSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.spec_hash() == spec.spec_hash()
    other = JobSpec(runtime="container", workload=W, args=("run",), inputs=(("x", I),),
                    container=ContainerSpec(cpu_millis=1000, gpus=1, gpu_model="H100", image_archive=I))
    assert other.spec_hash() != spec.spec_hash()
    assert spec.blob_refs() == (I, I)  # the archive, then the inputs; the image ID is no blob
    assert JobSpec(runtime="container", workload=W, container=ContainerSpec()).blob_refs() == ()


@pytest.mark.parametrize(("runtime", "container", "field"), [
    ("container", None, "runtime"),  # a container job must say what it reserves
    ("wasm", {}, "container"),
    ("container", {"cpu_millis": 0}, "container.cpu_millis"),
    ("container", {"gpus": -1}, "container.gpus"),
    ("container", {"network": "host"}, "container.network"),
    ("container", {"image_archive": "nope"}, "container.image_archive"),
    ("container", {"image_ref": "docker.io/library/alpine:latest"}, "container.image_ref"),
    ("container", {"gpu_model": "H100; rm -rf"}, "container.gpu_model"),
])
def test_invalid_container_specs_name_their_field(runtime: str, container: dict[str, object] | None, field: str):
    with pytest.raises(SpecError) as info:
        JobSpec(runtime=runtime, workload=W, container=None if container is None else ContainerSpec(**container))  # type: ignore[arg-type]
    assert info.value.field == field


def test_unknown_container_fields_are_refused():
    with pytest.raises(SpecError, match="unknown fields"):
        ContainerSpec.from_json({"cpus": 2})


def test_receipt_json_unchanged_unless_not_deterministic():
    plain = Receipt(Outcome.OK, 0, 5, b"", b"", (), "00" * 32)
    assert "deterministic" not in plain.to_json() and "resource_seconds" not in plain.to_json()
    container = Receipt(Outcome.OK, 0, 0, b"", b"", (), "00" * 32, deterministic=False,
                        resource_seconds=ResourceSeconds(vcpu_s=2.0, gib_s=0.5, gpu_s=1.0))
    assert container.to_json()["deterministic"] is False
    assert container.to_json()["resource_seconds"] == {"vcpu_s": 2.0, "gib_s": 0.5, "gpu_s": 1.0}
