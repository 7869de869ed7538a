"""From a raw engine result and the output folder to a ``Receipt`` with its result root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mercato.domain.jobs import Limits, Outcome, OutputFile, Receipt, Timings
from mercato.runtimes._sandbox import RawResult
from mercato.verification.result_root import result_root

__all__ = ["build_receipt", "collect_outputs"]

# A run that ends abnormally with its memory this close to the cap ran out of memory: wasm's
# memory.grow fails quietly (returns -1), so the guest's own failure is what we observe.
MEMORY_SLACK_DIVISOR = 16
MEMORY_SLACK_MIN = 2 << 20


def collect_outputs(output_dir: Path, cap: int) -> tuple[tuple[OutputFile, ...], bool]:
    """Regular files under ``output_dir`` in sorted path order, and whether they exceed ``cap``.

    Links and special files are ignored (never followed). Hashing stops once the cap is passed.
    """
    files: list[tuple[str, Path, int]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(output_dir, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            if not path.is_file() or path.is_symlink():
                continue
            total += st.st_size
            if total > cap:
                return (), True
            files.append((path.relative_to(output_dir).as_posix(), path, st.st_size))
    files.sort(key=lambda f: f[0].encode("utf-8"))
    return tuple(OutputFile(rel, _sha256_file(p), size) for rel, p, size in files), False


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def judge(raw: RawResult, limits: Limits, outputs_too_large: bool) -> tuple[Outcome, int, str]:
    """The outcome, the fuel to report and a one-line message."""
    if raw.trap == "output" or raw.stream_overflow:
        # the streams are drained on wasmtime's own thread, so where the guest stops is
        # host-dependent: the whole cap is charged, as for the wall clock
        return Outcome.OUTPUT_TOO_LARGE, limits.fuel, f"stdout or stderr passed {limits.stdout_bytes} bytes"
    if raw.trap == "fuel":
        return Outcome.FUEL_EXHAUSTED, limits.fuel, f"fuel exhausted after {limits.fuel} fuel; raise --fuel"
    if raw.trap == "interrupt":
        # where the clock stopped the guest is host-dependent: the whole cap is charged
        return Outcome.WALL_CLOCK_EXCEEDED, limits.fuel, f"wall clock passed {limits.wall_clock_s} s"
    if outputs_too_large:
        return Outcome.OUTPUT_TOO_LARGE, raw.fuel_used, f"files under /output passed {limits.output_bytes} bytes"
    abnormal = raw.trap is not None or (raw.exit_code or 0) != 0
    slack = max(limits.memory_bytes // MEMORY_SLACK_DIVISOR, MEMORY_SLACK_MIN)
    if abnormal and raw.memory_bytes >= limits.memory_bytes - slack:
        return Outcome.MEMORY_EXCEEDED, raw.fuel_used, f"memory cap of {limits.memory_bytes} bytes reached"
    if raw.trap is not None:
        return Outcome.TRAP, raw.fuel_used, f"trap: {raw.trap}"
    if raw.exit_code:
        return Outcome.EXIT_NONZERO, raw.fuel_used, f"exited with code {raw.exit_code}"
    return Outcome.OK, raw.fuel_used, ""


def build_receipt(raw: RawResult, limits: Limits, output_dir: Path, compile_ms: float, wall_ms: float) -> Receipt:
    """Judge ``raw``, hash the outputs and compute the result root."""
    outputs, too_large = collect_outputs(output_dir, limits.output_bytes)
    outcome, fuel, message = judge(raw, limits, too_large)
    exit_code = raw.exit_code if raw.trap is None else None
    if outcome is Outcome.OUTPUT_TOO_LARGE:
        outputs = ()
    root = result_root(
        outputs=[(o.path, o.sha256) for o in outputs],
        stdout=raw.stdout,
        stderr=raw.stderr,
        outcome=outcome.value,
        exit_code=exit_code,
    )
    return Receipt(
        outcome=outcome,
        exit_code=exit_code,
        fuel_used=fuel,
        stdout=raw.stdout,
        stderr=raw.stderr,
        outputs=outputs,
        result_root=root,
        timings=Timings(compile_ms=compile_ms, run_ms=raw.run_ms, wall_ms=wall_ms),
        message=message,
    )
