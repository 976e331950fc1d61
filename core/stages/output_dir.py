"""The output directory of a run: one run at a time in it, and an earlier run kept until a new one replaces it.

- **One writer.** A run holds an exclusive lock on ``.ftrun.lock`` in the folder from its first
  check to its last file; a second run on the same folder refuses at once, naming the first.
- **--overwrite loses nothing.** A run that replaces an earlier one trains in ``.ftrun-next``
  inside the folder, next to the earlier run, which stays whole until the new run has written
  all of its outputs; then the two swap, in steps that the next run in the folder finishes if
  this one is killed in the middle (:func:`replace_earlier_run`). Killed or failed before
  that, the new run leaves the earlier one as it was, and ``--resume`` continues the new one.

Everything stays inside the output directory: a run changes no file outside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ftrun.stages.output import MANIFEST_NAME
from ftrun.stages.training import SEAL_NAME, checkpoints, is_sealed, latest_checkpoint, remove_unsealed
from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from accelerate import PartialState

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None

LOCK_NAME = ".ftrun.lock"
#: Where an --overwrite run trains and writes, until it has written its final outputs.
NEXT_NAME = ".ftrun-next"
#: Where the earlier run's files wait, and the new run's, while they swap.
EARLIER_NAME, INCOMING_NAME = ".ftrun-earlier", ".ftrun-incoming"
#: What ftrun itself keeps in an output directory, besides a run.
OWN_NAMES = frozenset({LOCK_NAME, NEXT_NAME, EARLIER_NAME, INCOMING_NAME})


@dataclasses.dataclass
class OutputDir:
    """Where a run writes: ``path``, the folder named, or ``path/.ftrun-next`` while it replaces an earlier run."""

    path: Path
    work: Path
    checkpoint: Path | None
    """The checkpoint a resumed run continues from."""
    overwrite: bool

    @property
    def replacing(self) -> bool:
        return self.work != self.path

    def clear_leftovers(self, announce: Callable[[str], None]) -> None:
        """What an earlier run left: a replacement an --overwrite run did not finish, checkpoints half written."""
        if self.overwrite and self.work.exists():
            shutil.rmtree(self.work)
            announce(f"removed {self.work}: an --overwrite run that did not finish")
        for path in remove_unsealed(self.work) if self.work.is_dir() else ():
            announce(f"removed {path.name}: it was being written when the run stopped")

    def finish(self) -> None:
        """Once the run has written its final outputs: put them in the place of the earlier run."""
        if self.replacing:
            replace_earlier_run(self.path)


@contextlib.contextmanager
def claimed(output_dir: Path, *, overwrite: bool, resume: bool | str, where: str, state: PartialState, announce: Callable[[str], None]) -> Iterator[OutputDir]:
    """The output directory, held by this run alone while the ``with`` block runs; checked, and refused with one line if unfit.

    A run on an empty folder trains there; ``overwrite`` of an earlier run trains in
    ``.ftrun-next``; ``resume`` continues the run there, or the --overwrite run that was stopped.
    Only the main process locks and changes the folder; the others wait for it.
    """
    check_path(output_dir)
    if overwrite and resume:
        raise FtrunError("--overwrite and --resume: choose one (replace the run, or continue it)")
    with OutputLock(output_dir) if state.is_main_process and fcntl is not None else contextlib.nullcontext():
        if state.is_main_process and any((output_dir / name).exists() for name in (INCOMING_NAME, EARLIER_NAME, f"{NEXT_NAME}/{MANIFEST_NAME}")):
            replace_earlier_run(output_dir)
            announce(f"{output_dir}: finished replacing the earlier run with the --overwrite run that was stopped after writing its outputs")
        state.wait_for_everyone()
        check_contents(output_dir, overwrite, bool(resume))
        next_run = output_dir / NEXT_NAME
        replacing = (overwrite and holds_a_run(output_dir)) or (bool(resume) and next_run.is_dir())
        work = next_run if replacing else output_dir
        yield OutputDir(output_dir, work, resume_checkpoint(work, resume, where), overwrite)


def check_path(output_dir: Path) -> None:
    """The folder, or the first of its parents that exists, must be a folder this process may write to."""
    existing = next((p for p in (output_dir, *output_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise FtrunError(f"--output-dir: {existing} is a file, not a directory")
    if existing is not None and not os.access(existing, os.W_OK):
        raise FtrunError(f"--output-dir: cannot write to {existing} (permission denied)")


def run_entries(output_dir: Path) -> list[Path]:
    """What the folder holds besides ftrun's own lock and staging folders."""
    return [path for path in output_dir.iterdir() if path.name not in OWN_NAMES] if output_dir.is_dir() else []


def holds_a_run(output_dir: Path) -> bool:
    return (output_dir / MANIFEST_NAME).exists() or bool(checkpoints(output_dir))


def check_contents(output_dir: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a non-empty output directory unless told to overwrite it or to resume the run in it."""
    if not run_entries(output_dir):
        return
    if not (overwrite or resume):
        raise FtrunError(f"--output-dir: {output_dir} is not empty (pass --overwrite to replace it, or --resume to continue it)")
    # Only ever replace or continue a folder that an earlier run wrote.
    if not holds_a_run(output_dir):
        what = "replace" if overwrite else "resume"
        raise FtrunError(f"--output-dir: {output_dir} holds files that are not an ftrun run; refusing to {what} it")


def resume_checkpoint(work: Path, resume: bool | str, where: str) -> Path | None:
    """The checkpoint to resume from: the one named, or the newest complete one where the run writes."""
    if isinstance(resume, str):
        path = Path(resume)
        if not path.is_dir():
            raise FtrunError(f"{where}: {path} is not a checkpoint directory")
        if not is_sealed(path):
            raise FtrunError(f"{where}: {path} is not a complete checkpoint (no valid {SEAL_NAME}: it was being written when the run stopped)")
        return path
    return latest_checkpoint(work) if resume else None


def replace_earlier_run(output_dir: Path) -> None:
    """Swap the complete run in ``.ftrun-next`` with the earlier run around it, in steps that a kill cannot break.

    1. The earlier run's files move into ``.ftrun-earlier``, its manifest first: a folder
       holding ``ftrun.toml`` holds a complete run, and from then on the earlier one is not.
    2. ``.ftrun-next`` becomes ``.ftrun-incoming``, in one rename: from then on the files in
       the folder are the new run's.
    3. Those move up, the manifest last; then ``.ftrun-earlier`` is deleted.

    Each step is renames inside one folder, each atomic; run again after a kill, this function
    goes on from the step it was in.
    """
    next_run, incoming, earlier = output_dir / NEXT_NAME, output_dir / INCOMING_NAME, output_dir / EARLIER_NAME
    if (next_run / MANIFEST_NAME).exists():
        earlier.mkdir(exist_ok=True)
        for path in sorted(run_entries(output_dir), key=lambda p: p.name != MANIFEST_NAME):
            os.replace(path, earlier / path.name)
        os.replace(next_run, incoming)
    if incoming.exists():
        for path in sorted(incoming.iterdir(), key=lambda p: p.name == MANIFEST_NAME):
            os.replace(path, output_dir / path.name)
        incoming.rmdir()
    if earlier.exists():
        shutil.rmtree(earlier)


class OutputLock:
    """An exclusive ``flock`` on ``.ftrun.lock`` in the output directory, which says who holds it.

    flock rather than the filelock package: the kernel drops the lock when its holder dies, so
    a killed run never leaves it taken, and the file names the run that holds it, for the
    refusal to say (filelock's native lock records no holder). Released, the file is removed,
    and so are the folders taking it created, when the run wrote nothing: a run refused for
    bad input leaves nothing behind.
    """

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / LOCK_NAME
        self.created = [p for p in (output_dir, *output_dir.parents) if not p.exists()]
        self.fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 500).decode("utf-8", "replace").strip() or "another run"
                os.close(fd)
                raise FtrunError(f"--output-dir: {self.path.parent} is in use by {holder}: wait for it to end, or choose another --output-dir") from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the run that held it removed the file as it let go: lock the one there now
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"ftrun process {os.getpid()} on {socket.gethostname()}, started {started}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)  # before letting go: a run waiting on this file then takes a new one
        os.close(self.fd)
        for folder in self.created:  # the innermost first; one that holds anything stays
            try:
                folder.rmdir()
            except OSError:
                break
