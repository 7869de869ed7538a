"""BlobStore (hash-checked, capped) and FakeRuntime (deterministic stand-in)."""

from __future__ import annotations

import pytest

from mercato.domain.jobs import JobSpec, Outcome
from mercato.errors import InputError, WorkloadError
from mercato.runtimes import BlobStore, FakeRuntime, Runtime, Workspace, content_hash, runtime_for


def test_put_get_roundtrip(tmp_path):
    store = BlobStore(tmp_path)
    ref = store.put(b"hello")
    assert ref == content_hash(b"hello") and store.has(ref) and store.size(ref) == 5
    assert store.get(ref) == b"hello"
    assert store.put(b"hello") == ref  # idempotent


def test_corrupt_blob_fails_its_hash_check(tmp_path):
    store = BlobStore(tmp_path)
    ref = store.put(b"hello")
    path = tmp_path / "sha256" / ref[7:9] / ref[9:]
    path.write_bytes(b"jello")
    with pytest.raises(InputError, match="hash check"):
        store.get(ref)


def test_caps_and_missing(tmp_path):
    store = BlobStore(tmp_path, max_blob_bytes=4)
    with pytest.raises(InputError, match="cap"):
        store.put(b"too big")
    with pytest.raises(InputError, match="not in the store"):
        store.get(content_hash(b"nope"))
    with pytest.raises(InputError, match="content hash"):
        store.get("md5:abc")


def test_workspace_layout_and_staging(tmp_path):
    ws = Workspace.create(tmp_path)
    ws.stage_input("a.txt", b"x")
    ws.seal_inputs()
    assert (ws.input_dir / "a.txt").read_bytes() == b"x"
    assert ws.output_dir.is_dir() and ws.tmp_dir.is_dir()
    ws.remove()
    assert not ws.root.exists()


def test_fake_runtime_is_deterministic_per_spec(tmp_path):
    fake = FakeRuntime(outputs={"r.txt": b"1"})
    assert isinstance(fake, Runtime)
    spec = JobSpec(runtime="wasm", workload=content_hash(b"w"))
    other = JobSpec(runtime="wasm", workload=content_hash(b"w"), args=("x",))
    a = fake.run(spec, Workspace.create(tmp_path))
    b = fake.run(spec, Workspace.create(tmp_path))
    c = fake.run(other, Workspace.create(tmp_path))
    assert a == b and a.result_root != c.result_root and a.outcome is Outcome.OK
    assert len(fake.calls) == 3 and a.outputs[0].path == "r.txt"


def test_runtime_for_unknown_name(tmp_path):
    with pytest.raises(WorkloadError, match="no runtime"):
        runtime_for("vm", BlobStore(tmp_path))
