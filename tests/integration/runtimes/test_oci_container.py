"""The container runtime against real podman, with a busybox image built here (no registry).

Podman is installed by `make setup` (APT_PACKAGES); a machine without it fails these tests
loudly rather than skipping them. Every test runs in its own container namespace and checks
that nothing of it is left behind.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mercato.domain.jobs import ContainerSpec, JobSpec, Limits, Outcome, Receipt
from mercato.errors import ImageRejected
from mercato.runtimes import BlobStore, Workspace
from mercato.runtimes.container import LABEL_JOB, LABEL_NAMESPACE, ContainerRuntime, ContainerSettings, Engine, find_engine
from mercato.verification.result_root import result_root

IMAGES = Path(__file__).parent / "images"
BUSYBOX = Path("/bin/busybox")
SH = ("/bin/busybox", "sh", "-c")


def _build(engine: Engine, tag: str, context: Path, *extra: str) -> str:
    """Build ``context`` as ``tag`` unless that tag exists; the image ID ("sha256:…")."""
    found = subprocess.run(engine.argv("image", "inspect", "--format", "{{.Id}}", tag),
                           capture_output=True, text=True, env=engine.environ())
    if found.returncode != 0:
        subprocess.run(engine.argv("build", "-q", "-t", tag, *extra, str(context)), check=True,
                       capture_output=True, text=True, env=engine.environ())
        found = subprocess.run(engine.argv("image", "inspect", "--format", "{{.Id}}", tag),
                               capture_output=True, text=True, env=engine.environ(), check=True)
    ident = found.stdout.strip()
    return ident if ident.startswith("sha256:") else "sha256:" + ident


def _save(engine: Engine, image: str, path: Path) -> bytes:
    subprocess.run(engine.argv("save", "-o", str(path), image.removeprefix("sha256:")), check=True,
                   capture_output=True, env=engine.environ())
    return path.read_bytes()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Real podman; RuntimeUnavailable here means `make setup` did not install it."""
    assert BUSYBOX.is_file(), "busybox-static is missing: apt-get install busybox-static (make setup does)"
    return find_engine(ContainerSettings(engine="podman"), state_dir=tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="session")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context: the Containerfile plus root/bin/busybox."""
    ctx = tmp_path_factory.mktemp("busybox-ctx")
    shutil.copy(IMAGES / "busybox" / "Containerfile", ctx / "Containerfile")
    (ctx / "root" / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, ctx / "root" / "bin" / "busybox")
    return ctx


@pytest.fixture(scope="session")
def image_tag(context: Path) -> str:
    """A tag that changes whenever the Containerfile or busybox does (cached across sessions)."""
    h = hashlib.sha256((context / "Containerfile").read_bytes() + BUSYBOX.read_bytes()).hexdigest()[:16]
    return f"localhost/mercato-test/busybox:{h}"


@pytest.fixture(scope="session")
def image(engine: Engine, context: Path, image_tag: str) -> str:
    return _build(engine, image_tag, context)


@pytest.fixture(scope="session")
def other_image(engine: Engine, context: Path, image_tag: str) -> str:
    """Same files, another config (a label), so another image ID."""
    return _build(engine, image_tag + "-other", context, "--label", "mercato.test=other")


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def runtime(engine: Engine, blobs: BlobStore, tmp_path: Path) -> Iterator[ContainerRuntime]:
    namespace = f"t{secrets.token_hex(4)}"
    rt = ContainerRuntime(blobs, state_dir=tmp_path / "state", engine=engine, gpus=[],
                          settings=ContainerSettings(namespace=namespace))
    yield rt
    assert _containers(engine, namespace) == [], "a container outlived its run"


def _containers(engine: Engine, namespace: str) -> list[str]:
    out = subprocess.run(engine.argv("ps", "--all", "--filter", f"label={LABEL_NAMESPACE}={namespace}",
                                     "--format", "{{.Names}}"), capture_output=True, text=True, check=True,
                         env=engine.environ())
    return out.stdout.split()


@pytest.fixture
def run_job(runtime: ContainerRuntime, blobs: BlobStore, image: str, tmp_path: Path) -> Callable[..., Receipt]:
    """run_job(*command, inputs={name: bytes}, container=ContainerSpec(), image=…, **limits)."""
    counter = iter(range(1000))

    def run(*command: str, inputs: dict[str, bytes] | None = None, container: ContainerSpec | None = None,
            env: tuple[tuple[str, str], ...] = (), workload: str | None = None, **limits: object) -> Receipt:
        spec = JobSpec(
            runtime="container", workload=workload or image, args=command, env=env,
            inputs=tuple(sorted((n, blobs.put(d)) for n, d in (inputs or {}).items())),
            limits=Limits(**{"wall_clock_s": 60.0, "memory_bytes": 64 << 20, **limits}),  # type: ignore[arg-type]
            container=container or ContainerSpec(),
        )
        parent = tmp_path / f"ws{next(counter)}"
        parent.mkdir()
        return runtime.run(spec, Workspace.create(parent))

    return run


def _independent_root(output_dir: Path, receipt: Receipt) -> str:
    """The result root from the files on disk, hashed here without the runtime's helpers."""
    files = sorted((p for p in output_dir.rglob("*") if p.is_file()), key=lambda p: p.relative_to(output_dir).as_posix())
    outputs = [(p.relative_to(output_dir).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]
    return result_root(outputs=outputs, stdout=receipt.stdout, stderr=receipt.stderr,
                       outcome=receipt.outcome.value, exit_code=receipt.exit_code)


CONFINEMENT = """
cat /input/a.txt /input/b.bin | sha256sum > /output/sum.txt
mkdir /output/sub && echo "$GREETING" > /output/sub/hello.txt
echo out; echo err >&2
touch /input/x 2>/dev/null && echo input-writable
touch /etc-new 2>/dev/null && echo root-writable
touch /tmp/ok && echo tmp-writable
hostname
"""


def test_inputs_and_outputs_match_an_independent_result_root(run_job, runtime: ContainerRuntime, tmp_path: Path):
    inputs = {"a.txt": b"alpha\n", "b.bin": bytes(range(256))}
    receipt = run_job(*SH, CONFINEMENT, inputs=inputs, env=(("GREETING", "hi there"),))
    assert receipt.outcome is Outcome.OK and receipt.exit_code == 0, receipt.stderr
    assert receipt.stdout == b"out\ntmp-writable\nmercato\n" and receipt.stderr == b"err\n"
    assert [o.path for o in receipt.outputs] == ["sub/hello.txt", "sum.txt"]
    output_dir = next(tmp_path.glob("ws0/mercato-job-*/output"))
    want = hashlib.sha256(b"alpha\n" + bytes(range(256))).hexdigest()
    assert (output_dir / "sum.txt").read_text().split()[0] == want
    assert (output_dir / "sub" / "hello.txt").read_text() == "hi there\n"
    assert receipt.result_root == _independent_root(output_dir, receipt)
    assert receipt.deterministic is False and receipt.fuel_used == 0
    usage = receipt.resource_seconds
    assert usage is not None and usage.vcpu_s > 0 and usage.gib_s > 0 and usage.gpu_s == 0
    assert receipt.to_json()["deterministic"] is False


def test_exit_status_is_reported(run_job):
    receipt = run_job(*SH, "echo bye; exit 3")
    assert receipt.outcome is Outcome.EXIT_NONZERO and receipt.exit_code == 3 and receipt.stdout == b"bye\n"


def test_memory_cap_is_a_clean_failure(run_job):
    # tmpfs pages count against the container's memory: 200 MiB into /tmp under a 32 MiB cap
    receipt = run_job(*SH, "dd if=/dev/zero of=/tmp/fill bs=1M count=200 && echo survived",
                      memory_bytes=32 << 20, container=ContainerSpec(tmp_bytes=256 << 20))
    assert receipt.outcome is Outcome.MEMORY_EXCEEDED, (receipt.outcome, receipt.stderr)
    assert receipt.exit_code is None and b"survived" not in receipt.stdout
    assert receipt.to_json()["outcome"] == "memory_exceeded"


def test_no_network(run_job):
    receipt = run_job(*SH, "cat /proc/net/dev | tail -n +3 | cut -d: -f1; nc -w 3 1.1.1.1 80 </dev/null")
    assert receipt.outcome is Outcome.EXIT_NONZERO
    assert receipt.stdout.split() == [b"lo"]  # the loopback is the only interface
    assert b"Network is unreachable" in receipt.stderr


def test_image_archive_with_another_digest_is_rejected(run_job, engine: Engine, blobs: BlobStore, image: str,
                                                       other_image: str, tmp_path: Path):
    archive = blobs.put(_save(engine, other_image, tmp_path / "other.tar"))
    fresh = "sha256:" + "0" * 64  # declared but on no machine: the archive must be it
    with pytest.raises(ImageRejected, match="holds image " + other_image):
        run_job("/bin/busybox", "true", workload=fresh, container=ContainerSpec(image_archive=archive))
    # the archive was never loaded under the declared digest
    assert subprocess.run(engine.argv("image", "exists", fresh), env=engine.environ()).returncode != 0


def test_image_archive_is_loaded_and_checked(run_job, engine: Engine, blobs: BlobStore, context: Path,
                                             image_tag: str, tmp_path: Path):
    stamp = secrets.token_hex(4)
    shipped = _build(engine, f"{image_tag}-ship{stamp}", context, "--label", f"mercato.test={stamp}")
    archive = blobs.put(_save(engine, shipped, tmp_path / "ship.tar"))
    subprocess.run(engine.argv("rmi", "--force", shipped.removeprefix("sha256:")), check=True,
                   capture_output=True, env=engine.environ())
    try:
        receipt = run_job("/bin/busybox", "echo", "loaded", workload=shipped,
                          container=ContainerSpec(image_archive=archive))
        assert receipt.outcome is Outcome.OK and receipt.stdout == b"loaded\n"
        assert receipt.timings.compile_ms > 0  # loading the archive is the preparation step
    finally:
        subprocess.run(engine.argv("rmi", "--force", shipped.removeprefix("sha256:")), capture_output=True,
                       env=engine.environ())


def test_missing_image_without_source_is_rejected(run_job):
    with pytest.raises(ImageRejected, match="not on this machine"):
        run_job("/bin/busybox", "true", workload="sha256:" + "1" * 64)


def test_timeout_kills_and_cleans(run_job, runtime: ContainerRuntime, engine: Engine):
    start = time.monotonic()
    receipt = run_job(*SH, "echo started; sleep 30; echo finished", wall_clock_s=1.5)
    elapsed = time.monotonic() - start
    assert receipt.outcome is Outcome.WALL_CLOCK_EXCEEDED and receipt.exit_code is None
    assert receipt.stdout == b"started\n" and elapsed < 15
    assert _containers(engine, runtime.settings.namespace) == []


def test_output_cap(run_job):
    receipt = run_job(*SH, "dd if=/dev/zero of=/output/big bs=64k count=64 2>/dev/null; sleep 5", output_bytes=1 << 20)
    assert receipt.outcome is Outcome.OUTPUT_TOO_LARGE and receipt.outputs == ()
    assert receipt.timings.run_ms < 5000  # killed once the folder passed the cap, not at exit


def test_stdout_cap(run_job):
    receipt = run_job(*SH, "yes mercato | head -c 100000", stdout_bytes=1000)
    assert receipt.outcome is Outcome.OUTPUT_TOO_LARGE and len(receipt.stdout) == 1000


def test_cleanup_stale_removes_what_a_crash_left(runtime: ContainerRuntime, engine: Engine, image: str):
    ns = runtime.settings.namespace
    name = f"mercato-{ns}-crashed-{secrets.token_hex(3)}"
    subprocess.run(engine.argv("run", "-d", "--name", name, "--label", f"{LABEL_NAMESPACE}={ns}",
                               "--label", f"{LABEL_JOB}=crashed", "--network", "none",
                               image.removeprefix("sha256:"), "/bin/busybox", "sleep", "300"),
                   check=True, capture_output=True, env=engine.environ())
    assert _containers(engine, ns) == [name]
    assert runtime.cleanup_stale() == [name]
    assert _containers(engine, ns) == []
    assert runtime.cleanup_stale() == []


def test_state_reports_the_limits(runtime: ContainerRuntime, engine: Engine, image: str, tmp_path: Path):
    """The flags reach the engine: inspect a created (never started) container."""
    from mercato.runtimes.container import RunPlan, create_argv

    ws = Workspace.create(tmp_path)
    plan = RunPlan(name=f"mercato-{runtime.settings.namespace}-inspect", image=image,
                   namespace=runtime.settings.namespace, job="inspect", input_dir=ws.input_dir,
                   output_dir=ws.output_dir, cpu_millis=1500, memory_bytes=48 << 20, pids=77)
    subprocess.run(create_argv(engine, plan), check=True, capture_output=True, env=engine.environ())
    try:
        raw = subprocess.run(engine.argv("inspect", plan.name), check=True, capture_output=True, text=True,
                             env=engine.environ()).stdout
        host = json.loads(raw)[0]["HostConfig"]
        assert host["Memory"] == 48 << 20 and host["MemorySwap"] == 48 << 20
        assert host["PidsLimit"] == 77 and host["NanoCpus"] == 1_500_000_000
        assert host["ReadonlyRootfs"] is True and host["NetworkMode"] == "none"
    finally:
        runtime.cleanup_stale()


def test_gpu_reaches_the_container(engine: Engine, blobs: BlobStore, image: str, tmp_path: Path):
    """Where this machine has an NVIDIA GPU (and a CDI spec), a job asking for one sees it."""
    from mercato.runtimes.gpu import detect_gpus, has_cdi_spec

    gpus = detect_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU here: detection reports none (the decline is unit-tested)")
    rt = ContainerRuntime(blobs, state_dir=tmp_path / "state", engine=engine, gpus=gpus,
                          settings=ContainerSettings(namespace=f"t{secrets.token_hex(4)}"))
    spec = JobSpec(runtime="container", workload=image, args=(*SH, "ls /dev | grep -c '^nvidia[0-9]'"),
                   limits=Limits(wall_clock_s=60.0), container=ContainerSpec(gpus=1))
    if not has_cdi_spec():
        from mercato.errors import GpuUnavailable

        with pytest.raises(GpuUnavailable, match="CDI"):
            rt.run(spec, Workspace.create(tmp_path))
        return
    receipt = rt.run(spec, Workspace.create(tmp_path))
    assert receipt.outcome is Outcome.OK and receipt.stdout == b"1\n", receipt.stderr
    assert receipt.resource_seconds is not None and receipt.resource_seconds.gpu_s > 0
