"""``load_job_toml`` and ``JobRequest``: good files build the spec; bad ones name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mercato.errors import SpecError
from mercato.requester import JobRequest, load_job_toml
from mercato.requester.request import seed_from_text
from mercato.runtimes.blobs import content_hash

GOOD = """
[job]
workload = "job.wasm"
args = ["1000", "7"]
seed = "first-job"
env = { B = "2", A = "1" }
out_dir = "out"
[inputs]
"data.bin" = "data.bin"
[limits]
fuel = 5_000_000_000
memory_mib = 256
wall_clock_s = 60
[market]
max_price = "0.5"
deadline_s = 300
accept_window_s = 20
bid_window_ms = 400
"""


def write(tmp: Path, text: str) -> Path:
    (tmp / "job.wasm").write_bytes(b"\x00asm")
    (tmp / "data.bin").write_bytes(b"data")
    path = tmp / "job.toml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    req = load_job_toml(write(tmp_path, GOOD))
    spec = req.spec
    assert spec.runtime == "wasm" and spec.args == ("1000", "7") and spec.env == (("A", "1"), ("B", "2"))
    assert spec.workload == content_hash(b"\x00asm") and spec.inputs == (("data.bin", content_hash(b"data")),)
    assert spec.limits.fuel == 5 * 10**9 and spec.limits.memory_bytes == 256 << 20
    assert spec.seed == seed_from_text("first-job")
    assert req.max_price == 500_000 and req.collateral_floor == 19 * 500_000
    assert (req.deadline_s, req.accept_window_s, req.bid_window) == (300, 20, 0.4)
    assert req.out_dir == tmp_path / "out" and req.name == "job"
    assert req.blob(spec.workload) == b"\x00asm"


@pytest.mark.parametrize(("edit", "message", "field"), [
    (('fuel = 5_000_000_000', 'fuel = "lots"'), "job.toml: [limits].fuel must be a positive integer, got 'lots'",
     "limits.fuel"),
    (('fuel = 5_000_000_000', 'fuel = -1'), "[limits].fuel must be a positive integer, got -1", "limits.fuel"),
    (('max_price = "0.5"', 'max_price = 0.5'), "[market].max_price must be a decimal string", "market.max_price"),
    (('max_price = "0.5"', 'max_price = "0.0000001"'), "[market].max_price has more than 6 decimals",
     "market.max_price"),
    (('max_price = "0.5"', 'max_price = "cheap"'), "[market].max_price must be a decimal number", "market.max_price"),
    (('deadline_s = 300', 'deadline_s = 10'), "accept_window_s (20) must not exceed deadline_s (10)",
     "market.accept_window_s"),
    (('workload = "job.wasm"', 'workload = "missing.wasm"'), "cannot read the workload file", "job.files"),
    (('workload = "job.wasm"', 'workload = "job.exe"'), "cannot tell the runtime of job.exe", "job.runtime"),
    (('args = ["1000", "7"]', 'args = [1000]'), "[job].args must be a list of strings", "job.args"),
    (('wall_clock_s = 60', 'wall_clock = 60'), "[limits].wall_clock is not a known key", "limits.wall_clock"),
    (('[market]', '[markets]'), "[markets] is not a known section", "markets"),
    (('workload = "job.wasm"', ''), "[job].workload is missing", "job.workload"),
    (('"data.bin" = "data.bin"', '"../x" = "data.bin"'), "input name '../x'", "job.inputs"),
    (('env = { B = "2", A = "1" }', 'env = { B = 2 }'), "[job].env must map names to strings", "job.env"),
])
def test_bad_files_name_the_field(tmp_path: Path, edit: tuple[str, str], message: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        load_job_toml(write(tmp_path, GOOD.replace(*edit)))
    assert message in str(info.value)
    assert info.value.field == field


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="job.toml is not valid TOML"):
        load_job_toml(write(tmp_path, "[job\n"))
    with pytest.raises(SpecError, match="does not exist"):
        load_job_toml(tmp_path / "nope.toml")


def test_a_file_changed_after_hashing_is_refused(tmp_path: Path) -> None:
    req = load_job_toml(write(tmp_path, GOOD))
    (tmp_path / "job.wasm").write_bytes(b"changed")
    with pytest.raises(SpecError, match="changed since the job was built"):
        req.blob(req.spec.workload)


def test_request_needs_a_source_for_every_blob(tmp_path: Path) -> None:
    req = JobRequest.from_files(write(tmp_path, GOOD).parent / "job.wasm")
    with pytest.raises(SpecError, match="no local file or blob"):
        JobRequest(spec=req.spec)
    assert JobRequest(spec=req.spec, blobs={req.spec.workload: b"\x00asm"}).blob(req.spec.workload) == b"\x00asm"
