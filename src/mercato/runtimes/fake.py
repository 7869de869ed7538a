"""``FakeRuntime``: a scripted stand-in for upper layers' unit tests (no wasmtime).

    fake = FakeRuntime(stdout=b"42\\n", fuel_used=5 * 10**9)
    receipt = fake.run(spec, Workspace.create(tmp))

By default it is deterministic in the spec: the same spec gives the same receipt, and a
different spec (other args, inputs or seed) a different result root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mercato.domain.jobs import JobSpec, Outcome, OutputFile, Receipt, Timings
from mercato.verification.result_root import result_root, sha256_hex

__all__ = ["FakeRuntime"]


@dataclass
class FakeRuntime:
    """Records each spec it runs in ``calls``; ``outputs`` are written into the workspace."""

    name: str = "wasm"
    outcome: Outcome = Outcome.OK
    exit_code: int | None = 0
    fuel_used: int | None = None  # None: derived from the spec hash
    stdout: bytes | None = None  # None: the spec hash, so results differ by spec
    stderr: bytes = b""
    outputs: dict[str, bytes] = field(default_factory=dict)
    calls: list[JobSpec] = field(default_factory=list)

    def run(self, spec: JobSpec, workspace: object) -> Receipt:
        self.calls.append(spec)
        digest = spec.spec_hash()
        stdout = self.stdout if self.stdout is not None else digest.encode() + b"\n"
        fuel = self.fuel_used if self.fuel_used is not None else int(digest[7:15], 16) % spec.limits.fuel
        files = []
        out_dir = getattr(workspace, "output_dir", None)
        for path, data in sorted(self.outputs.items()):
            if out_dir is not None:
                target = out_dir / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            files.append(OutputFile(path, sha256_hex(data), len(data)))
        root = result_root(
            outputs=[(f.path, f.sha256) for f in files],
            stdout=stdout,
            stderr=self.stderr,
            outcome=self.outcome.value,
            exit_code=self.exit_code,
        )
        return Receipt(self.outcome, self.exit_code, fuel, stdout, self.stderr, tuple(files), root, Timings())
