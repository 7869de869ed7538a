"""Container runtime overhead: start-up time and a small CPU job in a container vs directly.

    python bench/container_overhead.py [--runs 20] [--cpu-runs 5]

Builds the test busybox image locally (tests/integration/runtimes/images/busybox; no
registry), then measures, each as a median:

- ``container_start_ms``: create + start (attached) + exit of ``busybox true`` with the
  runtime's own flags (limits, read-only root, no network), container removal not included;
- ``remove_ms``: the forced removal that follows every run;
- ``runtime_job_ms``: one whole ``ContainerRuntime.run`` of ``busybox true`` (staging,
  image check, create, init, OOM watch, attach, inspect, removal, receipt);
- the same small CPU job (a shell loop plus a SHA-256 over 64 MiB) run directly with the
  host's busybox and through ``ContainerRuntime.run``: seconds each and their ratio.

Prints one line per figure on stderr, then ONE JSON object as the last line of stdout.
Needs podman and busybox-static (``make setup`` installs them); no timing asserts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mercato.domain.jobs import ContainerSpec, JobSpec, Limits, Outcome
from mercato.runtimes import BlobStore, Workspace
from mercato.runtimes.container import ContainerRuntime, ContainerSettings, Engine, RunPlan, create_argv, find_engine, remove_argv

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "tests" / "integration" / "runtimes" / "images" / "busybox" / "Containerfile"
BUSYBOX = Path("/bin/busybox")
TAG = "localhost/mercato-bench/busybox:latest"
CPU_JOB = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; head -c 67108864 /dev/zero | sha256sum"


def _engine_run(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(engine.argv(*args), capture_output=True, text=True, check=True, env=engine.environ())


def _build(engine: Engine, tmp: Path) -> str:
    ctx = tmp / "ctx"
    (ctx / "root" / "bin").mkdir(parents=True)
    shutil.copy(CONTAINERFILE, ctx / "Containerfile")
    shutil.copy2(BUSYBOX, ctx / "root" / "bin" / "busybox")
    _engine_run(engine, "build", "-q", "-t", TAG, str(ctx))
    ident = _engine_run(engine, "image", "inspect", "--format", "{{.Id}}", TAG).stdout.strip()
    return ident if ident.startswith("sha256:") else "sha256:" + ident


def _start_ms(engine: Engine, image: str, tmp: Path, runs: int) -> tuple[float, float]:
    """Medians of create+start+exit and of the removal, with the runtime's flags."""
    ws = Workspace.create(tmp)
    starts, removes = [], []
    for i in range(runs):
        plan = RunPlan(name=f"mercato-bench-start-{i}", image=image, namespace="bench", job="start",
                       input_dir=ws.input_dir, output_dir=ws.output_dir, command=("/bin/busybox", "true"),
                       memory_bytes=64 << 20)
        t0 = time.perf_counter()
        subprocess.run(create_argv(engine, plan), check=True, capture_output=True, env=engine.environ())
        subprocess.run(engine.argv("start", "--attach", plan.name), check=True, capture_output=True,
                       env=engine.environ())
        t1 = time.perf_counter()
        subprocess.run(remove_argv(engine, plan.name), check=True, capture_output=True, env=engine.environ())
        starts.append((t1 - t0) * 1000)
        removes.append((time.perf_counter() - t1) * 1000)
    return statistics.median(starts), statistics.median(removes)


def _runtime_job(rt: ContainerRuntime, image: str, tmp: Path, command: tuple[str, ...]) -> tuple[float, float]:
    """Wall ms of one ``ContainerRuntime.run`` and the container's own run ms."""
    spec = JobSpec(runtime="container", workload=image, args=command, limits=Limits(memory_bytes=256 << 20),
                   container=ContainerSpec())
    ws = Workspace.create(tmp)
    t0 = time.perf_counter()
    receipt = rt.run(spec, ws)
    wall = (time.perf_counter() - t0) * 1000
    ws.remove()
    assert receipt.outcome is Outcome.OK, receipt.stderr
    return wall, receipt.timings.run_ms


def _direct_s() -> float:
    t0 = time.perf_counter()
    subprocess.run([str(BUSYBOX), "sh", "-c", CPU_JOB], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cpu-runs", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        settings = ContainerSettings(engine="podman", namespace="bench")
        engine = find_engine(settings, state_dir=tmp / "state")
        image = _build(engine, tmp)
        start_ms, remove_ms = _start_ms(engine, image, tmp, opts.runs)
        print(f"container start (create+start+exit of busybox true): {start_ms:.1f} ms p50 over {opts.runs}; "
              f"removal {remove_ms:.1f} ms", file=sys.stderr)
        rt = ContainerRuntime(BlobStore(tmp / "blobs"), state_dir=tmp / "state", engine=engine, gpus=[],
                              settings=settings)
        rt.cleanup_stale()
        true_cmd = ("/bin/busybox", "true")
        _runtime_job(rt, image, tmp, true_cmd)  # warm
        job_ms = statistics.median(_runtime_job(rt, image, tmp, true_cmd)[0] for _ in range(opts.runs))
        print(f"ContainerRuntime.run of busybox true: {job_ms:.1f} ms p50", file=sys.stderr)
        _direct_s()
        direct = statistics.median(_direct_s() for _ in range(opts.cpu_runs))
        cpu_cmd = ("/bin/busybox", "sh", "-c", CPU_JOB)
        runs = [_runtime_job(rt, image, tmp, cpu_cmd) for _ in range(opts.cpu_runs)]
        in_ct = statistics.median(w for w, _ in runs) / 1000
        in_ct_run = statistics.median(r for _, r in runs) / 1000
        print(f"cpu job: direct {direct:.3f} s, container run {in_ct_run:.3f} s (container alone), "
              f"{in_ct:.3f} s (whole ContainerRuntime.run), ratio {in_ct / direct:.2f}", file=sys.stderr)
        engine_version = _engine_run(engine, "--version").stdout.strip()
    print(json.dumps({
        "container_start_ms": round(start_ms, 1),
        "container_remove_ms": round(remove_ms, 1),
        "runtime_job_ms": round(job_ms, 1),
        "cpu_job_direct_s": round(direct, 4),
        "cpu_job_container_s": round(in_ct, 4),
        "cpu_job_container_run_s": round(in_ct_run, 4),
        "cpu_job_ratio": round(in_ct / direct, 3),
        "cpu_job_overhead_ms": round((in_ct - direct) * 1000, 1),
        "engine": engine_version,
        "runs": opts.runs,
        "cpu_runs": opts.cpu_runs,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
