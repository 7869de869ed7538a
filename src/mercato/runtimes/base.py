"""The runtime seam: the ``Runtime`` protocol and the per-job ``Workspace``.

    ws = Workspace.create(tmp_dir)
    receipt = runtime.run(spec, ws)      # outputs land in ws.output_dir

A provider's executor and ``mercato exec`` both go through ``Runtime.run``; unit tests of the
layers above use ``FakeRuntime``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from mercato.domain.jobs import JobSpec, Receipt

__all__ = ["FIXED_MTIME", "Runtime", "Workspace"]

FIXED_MTIME = 1_704_067_200  # every staged file and folder carries this time (2024-01-01Z)


@runtime_checkable
class Runtime(Protocol):
    """Runs one job spec inside a workspace and reports what happened."""

    name: str

    def run(self, spec: JobSpec, workspace: Workspace) -> Receipt:
        """Execute ``spec``; resource exhaustion is an outcome in the receipt, not an exception."""
        ...


@dataclass(frozen=True, slots=True)
class Workspace:
    """A job's private folders: ``input`` (staged, read-only to the guest), ``output``
    (writable), ``tmp`` (writable scratch, never hashed) and ``job`` (the workload file, for
    runtimes that read it as a file)."""

    root: Path

    @classmethod
    def create(cls, parent: Path | str | None = None) -> Workspace:
        """A fresh workspace in a new folder under ``parent`` (the system temp dir if None)."""
        root = Path(tempfile.mkdtemp(prefix="mercato-job-", dir=parent))
        for sub in ("input", "output", "tmp", "job"):
            (root / sub).mkdir()
        return cls(root)

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def job_dir(self) -> Path:
        """Read-only folder for the workload itself where a runtime needs it as a file."""
        return self.root / "job"

    def stage_input(self, name: str, data: bytes) -> None:
        """Write one input file with a fixed time, read-only (call in sorted name order)."""
        path = self.input_dir / name
        path.write_bytes(data)
        path.chmod(0o444)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))

    def seal_inputs(self) -> None:
        """Fix the folders' own times once every input is staged."""
        for folder in (self.input_dir, self.output_dir, self.tmp_dir):
            os.utime(folder, (FIXED_MTIME, FIXED_MTIME))

    def remove(self) -> None:
        """Delete the workspace and everything in it."""
        for dirpath, dirnames, _files in os.walk(self.root):
            for d in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, d), 0o700)
                except OSError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
