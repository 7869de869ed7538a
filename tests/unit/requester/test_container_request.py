"""Container jobs on the requester side: job.toml, JobRequest.from_container, the image check
made before anything is sent, and which blobs travel."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from mercato.domain.jobs import ContainerSpec, Limits
from mercato.errors import ImageRejected, SpecError
from mercato.requester import JobRequest, load_job_toml
from mercato.runtimes import content_hash

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CONFIG = b'{"architecture":"amd64","config":{"Cmd":["/bin/busybox","true"]}}'
IMAGE = "sha256:" + hashlib.sha256(CONFIG).hexdigest()


def _archive(config: bytes = CONFIG) -> bytes:
    digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{digest}.json", "RepoTags": [], "Layers": []}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("manifest.json", manifest), (f"{digest}.json", config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _toml(tmp_path: Path, body: str) -> Path:
    (tmp_path / "img.tar").write_bytes(_archive())
    (tmp_path / "data.bin").write_bytes(b"payload")
    path = tmp_path / "job.toml"
    path.write_text(body)
    return path


BASE = """[job]
runtime = "container"
image_archive = "img.tar"
args = ["/bin/busybox", "sh", "-c", "cat /input/data.bin"]
env = { B = "2", A = "1" }
[inputs]
"data.bin" = "data.bin"
[limits]
memory_mib = 128
wall_clock_s = 30
"""


def test_the_example_container_job_loads(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "job_container.toml", tmp_path / "job.toml")
    shutil.copy(EXAMPLES / "job_container_words.txt", tmp_path / "job_container_words.txt")
    (tmp_path / "busybox.tar").write_bytes(_archive())
    req = load_job_toml(tmp_path / "job.toml")
    assert req.spec.runtime == "container" and req.spec.workload == IMAGE
    assert req.spec.container == ContainerSpec(cpu_millis=500, pids=64, tmp_bytes=16 << 20,
                                               image_archive=content_hash(_archive()))
    assert (req.redundancy, req.compare, req.max_price) == (1, "exact", 500_000)


def test_archive_gives_the_image_and_travels_as_a_blob(tmp_path: Path) -> None:
    req = load_job_toml(_toml(tmp_path, BASE + "[container]\ncpus = 1.5\ngpus = 1\ngpu_model = \"H100\"\n"
                                             "gpu_memory_mib = 40000\ntmp_mib = 32\n"))
    spec = req.spec
    archive_ref = content_hash(_archive())
    assert spec.workload == IMAGE and spec.args[-1] == "cat /input/data.bin"
    assert spec.env == (("A", "1"), ("B", "2")) and spec.limits.memory_bytes == 128 << 20
    assert spec.container == ContainerSpec(cpu_millis=1500, gpus=1, gpu_model="H100", gpu_memory_mb=40000,
                                           tmp_bytes=32 << 20, image_archive=archive_ref)
    # the archive and the input are uploaded; the image ID names no blob
    assert spec.blob_refs() == (archive_ref, content_hash(b"payload"))
    assert req.blob(archive_ref) == _archive() and IMAGE not in dict(req.files)


def test_declared_image_must_be_the_archives(tmp_path: Path) -> None:
    other = "sha256:" + "4" * 64
    with pytest.raises(ImageRejected, match=f"holds image {IMAGE}, not the declared {other}") as err:
        load_job_toml(_toml(tmp_path, BASE.replace('runtime = "container"', f'runtime = "container"\nimage = "{other}"')))
    assert "job.toml" in str(err.value) and "image_archive" in str(err.value)
    same = load_job_toml(_toml(tmp_path, BASE.replace('runtime = "container"', f'runtime = "container"\nimage = "{IMAGE}"')))
    assert same.spec.workload == IMAGE


def test_image_by_id_or_registry_reference_ships_no_archive(tmp_path: Path) -> None:
    ref = "registry.example/busybox@sha256:" + "cd" * 32
    body = BASE.replace('image_archive = "img.tar"', f'image = "{IMAGE}"\nimage_ref = "{ref}"')
    req = load_job_toml(_toml(tmp_path, body))
    assert req.spec.container is not None and req.spec.container.image_archive == ""
    assert req.spec.container.image_ref == ref and req.spec.blob_refs() == (content_hash(b"payload"),)


def test_verify_section(tmp_path: Path) -> None:
    req = load_job_toml(_toml(tmp_path, BASE + "[verify]\nredundancy = 3\ncompare = \"cmp.py\"\n"))
    assert req.redundancy == 3 and req.compare == str(tmp_path / "cmp.py")
    req = load_job_toml(_toml(tmp_path, BASE + "[verify]\ncompare = \"reputation-only\"\n"))
    assert (req.redundancy, req.compare) == (1, "reputation-only")


@pytest.mark.parametrize(("extra", "field", "match"), [
    ("[container]\ncpus = 1\ncpu_millis = 1000\n", "container.cpus", "same setting"),
    ("[container]\ncpus = -1\n", "container.cpus", "positive number"),
    ("[container]\ngpus = -2\n", "container.gpus", "integer >= 0"),
    ("[container]\nnetwork = \"host\"\n", "container.network", "none, bridge"),
    ("[container]\ngpu_model = \"H100;rm\"\n", "container.gpu_model", "letters"),
    ("[container]\nswap = 1\n", "container.swap", "not a known key"),
    ("[verify]\nredundancy = 0\n", "verify.redundancy", "1 to 16"),
    ("[verify]\ncompare = \"majority\"\n", "verify.compare", "comparator"),
])
def test_container_errors_name_the_field(tmp_path: Path, extra: str, field: str, match: str) -> None:
    with pytest.raises(SpecError, match=match) as err:
        load_job_toml(_toml(tmp_path, BASE + extra))
    assert err.value.field == field


@pytest.mark.parametrize(("body", "field", "match"), [
    (BASE.replace('image_archive = "img.tar"', 'workload = "x.wasm"'), "job.workload", "not used by container"),
    (BASE.replace('image_archive = "img.tar"', ""), "job.image", "is missing"),
    (BASE.replace('image_archive = "img.tar"', 'image = "latest"'), "job.image", "image ID"),
    (BASE.replace('image_archive = "img.tar"', 'image_archive = "nope.tar"'), "job.files", "cannot read"),
    ('[job]\nworkload = "a.wasm"\nimage = "x"\n', "job.image", "only for runtime"),
    ('[job]\nworkload = "a.wasm"\n[container]\ngpus = 1\n', "container", "only for runtime"),
])
def test_container_job_shape_errors(tmp_path: Path, body: str, field: str, match: str) -> None:
    with pytest.raises(SpecError, match=match) as err:
        load_job_toml(_toml(tmp_path, body))
    assert err.value.field == field


def test_from_container_in_code(tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    archive.write_bytes(_archive())
    req = JobRequest.from_container(archive=archive, command=["/bin/busybox", "true"], limits=Limits(wall_clock_s=5),
                                    container=ContainerSpec(cpu_millis=250), max_price=10_000)
    assert req.spec.workload == IMAGE and req.spec.container is not None
    assert req.spec.container.cpu_millis == 250 and req.spec.container.image_archive == content_hash(_archive())
    with pytest.raises(SpecError) as err:
        JobRequest.from_container(command=["true"])
    assert err.value.field == "image"
    with pytest.raises(ImageRejected, match="neither manifest.json nor index.json"):
        (tmp_path / "bad.tar").write_bytes(io.BytesIO().getvalue() or _empty_tar())
        JobRequest.from_container(archive=tmp_path / "bad.tar")
    with pytest.raises(SpecError, match="redundancy"):
        JobRequest(spec=req.spec, files=req.files, redundancy=0)


def _empty_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return buf.getvalue()
