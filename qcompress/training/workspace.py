"""Where a fit writes, and what is left of it when the fit stops early.

Three cases, decided before anything loads:
- a new run is written straight into ``--out`` (so a run killed after its first checkpoint can be
  resumed); stopped before that checkpoint, whatever it wrote is removed again;
- ``--force`` over an existing run trains in a staging directory beside it and replaces the old run
  only once the new one is complete; stopped early, the staging directory goes and the old run stays;
- ``--resume`` continues in ``--out`` and never removes anything there.

The messages for an interruption and for a diverged loss are made here because only the workspace
knows which of these is true.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows has no flock: runs are not locked there
    fcntl = None

from qcompress.atomic import remove_stale_leftovers, remove_stale_siblings, replace_directory, staging_directory
from qcompress.errors import InputError
from qcompress.training.run_dir import HEADER, read_header


def is_run_dir(path: Path) -> bool:
    """A directory holding a qcompress run header (the only kind of directory ``--force`` replaces)."""
    try:
        header = json.loads((path / HEADER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and "config_sha256" in header


def lock_directory(folder: Path) -> int | None:
    """An exclusive lock on ``folder`` held until the returned descriptor is closed, so two fits
    (or a fit and a --resume) cannot write one run at once. The kernel drops it when the process
    dies, so a kill -9 never leaves a stale lock. ``None`` where the platform has no flock."""
    if fcntl is None:
        return None
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise InputError(f"{folder} is being written by another qcompress process: wait for it to end, or choose another --out") from None
    return descriptor


@dataclass
class RunWorkspace:
    out: Path
    resume: bool
    replacing: bool
    existed_empty: bool
    run_dir: Path | None = None
    step: int = 0
    last_checkpoint: int | None = None
    done: bool = False
    lock: int | None = None  # descriptor holding the lock on --out, released by close()
    follower: bool = False  # a rank other than 0: reads the run, writes nothing

    @classmethod
    def open(cls, out: Path, *, resume: bool, force: bool) -> RunWorkspace:
        """Check ``out`` for the requested kind of fit; nothing is written or removed here but the
        leftovers of killed processes."""
        if resume and force:
            raise InputError("--resume and --force contradict each other: --force starts over, --resume continues")
        if out.is_symlink():
            raise InputError(f"--out {out} is a symbolic link: give the directory it points to, or another --out")
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} is a file, not a run directory: choose another --out")
        occupied = out.is_dir() and any(out.iterdir())
        if resume:
            read_header(out)  # says precisely why it is not a run to continue
            remove_stale_leftovers(out)
        elif occupied and not is_run_dir(out):  # neither --resume nor --force would be taken: do not suggest them
            raise InputError(f"{'refusing to --force over' if force else '--out'} {out}: it is not empty and not a qcompress "
                             "run directory (no run header); choose another --out")
        elif occupied and not force:
            raise InputError(f"{out} already exists and is not empty: choose another --out, add --resume, or --force")
        remove_stale_siblings(out)
        workspace = cls(out, resume, replacing=occupied and not resume, existed_empty=out.is_dir() and not occupied)
        if out.is_dir():
            workspace.lock = lock_directory(out)
        return workspace

    @classmethod
    def follow(cls, out: Path, resume: bool) -> RunWorkspace:
        """The workspace of a rank other than 0 in a multi-process fit: it reads ``out`` (to
        resume) but never writes, locks or removes anything; rank 0 owns the run."""
        return cls(out, resume, replacing=False, existed_empty=False, follower=True)

    def start(self) -> Path:
        """The directory to write into, created now that the model, data and method have loaded."""
        if self.resume or self.follower:
            self.run_dir = self.out
        elif self.replacing:
            self.run_dir = staging_directory(self.out)
        else:
            try:
                self.out.mkdir(parents=True, exist_ok=self.existed_empty)
            except FileExistsError:
                raise InputError(f"{self.out} was created by another process while this fit loaded: choose another --out") from None
            self.lock = self.lock if self.lock is not None else lock_directory(self.out)
            if any(self.out.iterdir()):
                raise InputError(f"{self.out} was written by another process while this fit loaded: choose another --out")
            self.run_dir = self.out
        return self.run_dir

    def checkpointed(self, step: int | None) -> None:
        self.last_checkpoint = step

    def finish(self) -> None:
        """The run is complete (or deliberately stopped with a checkpoint): publish it."""
        if self.replacing and self.run_dir is not None and not self.follower:
            replace_directory(self.run_dir, self.out)
        self.done = True

    def close(self) -> None:
        """Release --out; after a failure, drop what cannot be resumed, never a run that existed before."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None
        if self.done or self.run_dir is None or self.follower:
            return
        if self.replacing:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        elif not self.resume and self.last_checkpoint is None:
            if self.existed_empty:
                for child in self.out.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            else:
                shutil.rmtree(self.out, ignore_errors=True)

    @property
    def keeps_a_run(self) -> bool:
        """Whether ``--out`` holds a run after a failure (so starting over needs --force)."""
        return self.resume or self.replacing or self.last_checkpoint is not None

    def _kept(self) -> str:
        """What the user still has after a failure, as the tail of a sentence."""
        if self.run_dir is None:
            return f"nothing was written and {self.out} is as it was" if self.resume else "nothing was written"
        if self.replacing:
            return f"the new run was discarded and {self.out} still holds the previous one"
        if self.last_checkpoint is not None:
            return f"the checkpoint of step {self.last_checkpoint} in {self.out} is intact"
        return f"{self.out} has no checkpoint yet" if self.resume else "nothing was kept"

    def interrupted_message(self) -> str:
        where = f"at step {self.step}" if self.step else "before the first step"
        resumable = self.resume or (self.run_dir is not None and not self.replacing and self.last_checkpoint is not None)
        then = "--resume continues it" if resumable else "run the same command again to start over"
        return f"interrupted {where}; {self._kept()}: {then}"

    def diverged_message(self, loss: float, lr: float) -> str:
        again = "fit again with --force (or another --out)" if self.keeps_a_run else "fit again"
        return f"loss became {loss} at step {self.step} (lr {lr:.3g}): lower --lr or check the data, then {again}; {self._kept()}"
