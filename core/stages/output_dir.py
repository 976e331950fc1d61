"""The output directory of a run: one run at a time in it, and an earlier run kept until a new one replaces it.

- **One writer.** A run holds an exclusive lock on ``.ftrun.lock`` in the folder from its first
  check to its last file; a second run on the same folder refuses at once, naming the first.
- **Only ftrun's own files.** A run is known by its marker, ``ftrun-run.json`` (the files it
  wrote), not by a file name; ``--overwrite`` and ``--resume`` take a folder that holds nothing
  but an earlier run's files, its checkpoints and ftrun's own folders, and never the current
  folder, one that holds it, or one that holds what the run reads (data, manifest, model).
- **--overwrite loses nothing.** A run that replaces an earlier one trains in ``.ftrun-next``
  inside the folder, next to the earlier run, which stays whole until the new run has written
  all of its outputs; then the earlier run's files and the new ones swap, in steps that the
  next run in the folder finishes if this one is killed in the middle (:func:`replace_earlier_run`).
  Killed or failed before that, the new run leaves the earlier one as it was, and ``--resume``
  continues the new one.
- **--resume goes on with the same run**: the task, model and training data its marker or
  checkpoint records.

Everything stays inside the output directory: a run changes no file outside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrun.stages.output import RUN_SEAL, STAGING_NAME, publish, run_files
from ftrun.stages.training import SEAL_NAME, checkpoints, is_sealed, latest_checkpoint, remove_unsealed
from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from accelerate import PartialState

    from ftrun.manifest.config import RunConfig

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
OWN_NAMES = frozenset({LOCK_NAME, NEXT_NAME, EARLIER_NAME, INCOMING_NAME, STAGING_NAME})
#: Where TensorBoard's event files go as a run with ``report_to = "tensorboard"`` trains, and how they are named.
TENSORBOARD_DIR, TENSORBOARD_PREFIX = "runs", "events.out.tfevents."


@dataclasses.dataclass
class OutputDir:
    """Where a run writes: ``path``, the folder named, or ``path/.ftrun-next`` while it replaces an earlier run."""

    path: Path
    work: Path
    checkpoint: Path | None
    """The checkpoint a resumed run continues from."""
    overwrite: bool
    resume: bool | str = False
    where: str = "--resume"
    """How the user asked to resume, as messages name it."""
    identity: dict[str, Any] | None = None
    """What the run is (:func:`ftrun.stages.output.run_identity`), sealed into each checkpoint."""

    @property
    def replacing(self) -> bool:
        return self.work != self.path

    def clear_leftovers(self, announce: Callable[[str], None]) -> None:
        """What an earlier run left: a replacement an --overwrite run did not finish, checkpoints half written."""
        if self.overwrite and self.replacing and self.work.exists():
            shutil.rmtree(self.work)
            announce(f"removed {self.work}: an --overwrite run that did not finish")
        for path in remove_unsealed(self.work) if self.work.is_dir() else ():
            announce(f"removed {path.name}: it was being written when the run stopped")

    def finish(self) -> None:
        """Once the run has written its final outputs: put them in the place of the earlier run."""
        if self.replacing:
            replace_earlier_run(self.path)


@contextlib.contextmanager
def claimed(
    output_dir: Path,
    *,
    overwrite: bool,
    resume: bool | str,
    where: str,
    state: PartialState,
    announce: Callable[[str], None],
    reads: Sequence[tuple[str, Path]] = (),
    identity: dict[str, Any] | None = None,
) -> Iterator[OutputDir]:
    """The output directory, held by this run alone while the ``with`` block runs; checked, and refused with one line if unfit.

    A run on an empty folder trains there; ``overwrite`` of an earlier run trains in
    ``.ftrun-next``; ``resume`` continues the run there (the same run: ``identity``), or the
    --overwrite run that was stopped. ``reads`` are what the run reads (:func:`inputs_of`), which
    no output directory may hold. Only the main process locks and changes the folder; the others wait for it.
    """
    check_path(output_dir)
    if overwrite and resume:
        raise FtrunError("--overwrite and --resume: choose one (replace the run, or continue it)")
    with OutputLock(output_dir) if state.is_main_process and fcntl is not None else contextlib.nullcontext():
        if state.is_main_process:
            finish_stopped_writes(output_dir, announce)
        state.wait_for_everyone()
        check_contents(output_dir, overwrite, bool(resume), reads)
        next_run = output_dir / NEXT_NAME
        replacing = (overwrite and holds_a_run(output_dir)) or (bool(resume) and next_run.is_dir())
        work = next_run if replacing else output_dir
        checkpoint = resume_checkpoint(work, resume, where)
        if resume:
            check_same_run(identity, where, work / RUN_SEAL, checkpoint / SEAL_NAME if checkpoint else None)
        yield OutputDir(output_dir, work, checkpoint, overwrite, resume, where, identity)


def finish_stopped_writes(output_dir: Path, announce: Callable[[str], None]) -> None:
    """What a killed run was doing when it stopped, finished: moving its sealed outputs into place, swapping it with the run it replaces."""
    for folder in (output_dir / NEXT_NAME, output_dir):
        if (folder / STAGING_NAME / RUN_SEAL).exists():
            publish(folder / STAGING_NAME, folder)
            announce(f"{folder}: finished moving into place the outputs of the run that was stopped while moving them")
    if any((output_dir / name).exists() for name in (INCOMING_NAME, EARLIER_NAME, f"{NEXT_NAME}/{RUN_SEAL}")):
        replace_earlier_run(output_dir)
        announce(f"{output_dir}: finished replacing the earlier run with the --overwrite run that was stopped after writing its outputs")


def inputs_of(config: RunConfig, manifest: Path | None = None) -> list[tuple[str, Path]]:
    """What a run reads from local paths, by key: its ``manifest`` file, and every file or folder the config names (data, model, tokenizer)."""
    found = [("manifest", manifest)] if manifest is not None else []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                if key or name not in ("output_dir", "resume"):  # where the run writes, not what it reads
                    walk(item, f"{key}.{name}" if key else name)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and Path(value).is_absolute() and Path(value).exists():  # the manifest's local paths are made absolute
            found.append((key, Path(value)))

    walk(config.manifest, "")
    return found


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
    """Whether ``output_dir`` holds a run: a finished one (its marker) or one that was stopped (its checkpoints)."""
    return (output_dir / RUN_SEAL).exists() or bool(checkpoints(output_dir))


def check_contents(output_dir: Path, overwrite: bool, resume: bool, reads: Sequence[tuple[str, Path]] = ()) -> None:
    """Refuse a non-empty output directory unless told to overwrite it or to resume the run in it, and then unless it holds an ftrun run alone."""
    if not run_entries(output_dir):
        return
    if not (overwrite or resume):
        raise FtrunError(f"--output-dir: {output_dir} is not empty (pass --overwrite to replace it, or --resume to continue it)")
    what = "replace" if overwrite else "resume"
    folder, here = output_dir.resolve(), Path.cwd().resolve()
    if folder == here or folder in here.parents:
        where = "the current folder" if folder == here else "a folder that holds the current one"
        raise FtrunError(f"--output-dir: {output_dir} is {where}; refusing to {what} it: give the run a folder of its own")
    for key, path in reads:
        if folder == path.resolve() or folder in path.resolve().parents:
            raise FtrunError(f"--output-dir: {output_dir} holds what this run reads ({key}: {path}); refusing to {what} it: give the run a folder of its own")
    # Only ever replace or continue a folder that an earlier run wrote, and nothing in it that the run did not write.
    foreign = foreign_files(output_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FtrunError(f"--output-dir: {output_dir} holds files that no ftrun run wrote ({shown}); refusing to {what} it")


def foreign_files(output_dir: Path) -> list[str]:
    """The files of ``output_dir`` (relative paths) that are neither its run's (by its marker) nor ftrun's own: checkpoints, TensorBoard logs, lock and staging."""
    listed = {*run_files(output_dir), RUN_SEAL}
    skipped = OWN_NAMES | {path.name for path in checkpoints(output_dir)}
    found = []
    for root, folders, files in os.walk(output_dir):  # links are not followed: a link is a file of the folder
        relative = Path(root).relative_to(output_dir)
        if relative == Path("."):
            folders[:] = [name for name in folders if name not in skipped]
            files = [name for name in files if name not in skipped]
        links = [name for name in folders if (Path(root) / name).is_symlink()]
        for name in (*files, *links):
            path = (relative / name).as_posix()
            if path not in listed and not is_tensorboard_log(path):
                found.append(path)
    return sorted(found)


def is_tensorboard_log(path: str) -> bool:
    return path.startswith(f"{TENSORBOARD_DIR}/") and Path(path).name.startswith(TENSORBOARD_PREFIX)


def check_same_run(identity: dict[str, Any] | None, where: str, *seals: Path | None) -> None:
    """A resumed run must be the run it continues: the task, model and training data that its marker and checkpoint's seal record."""
    for path in seals:
        try:
            before = json.loads(path.read_text(encoding="utf-8")).get("run") if identity and path else None
        except (OSError, ValueError, AttributeError):
            before = None  # no seal, or one from before ftrun recorded the run in it: nothing to compare
        if not isinstance(before, dict):
            continue
        differs = [f"{key} {before[key]!r}, not {value!r}" for key, value in identity.items() if key in before and before[key] != value]
        if differs:
            raise FtrunError(
                f"{where}: {path.parent} was trained with {'; '.join(differs)}: resume a run with what it started with, "
                "or start this one in another --output-dir (or from those weights, as model.name)"
            )


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

    1. The earlier run's files (those its marker lists, its checkpoints, its logs) move into
       ``.ftrun-earlier``, its marker first: a folder holding a marker holds a complete run, and
       from then on the earlier one is not. Anything else in the folder stays where it is.
    2. ``.ftrun-next`` becomes ``.ftrun-incoming``, in one rename: from then on the files in
       the folder are the new run's.
    3. Those move up, the marker last; then ``.ftrun-earlier`` is deleted.

    Each step is renames inside one folder, each atomic; run again after a kill, this function
    goes on from the step it was in.
    """
    next_run, incoming, earlier = output_dir / NEXT_NAME, output_dir / INCOMING_NAME, output_dir / EARLIER_NAME
    if (next_run / RUN_SEAL).exists():
        earlier.mkdir(exist_ok=True)
        for path in earlier_run(output_dir):
            os.replace(path, earlier / path.name)
        os.replace(next_run, incoming)
    if incoming.exists():
        for path in sorted(incoming.iterdir(), key=lambda p: p.name == RUN_SEAL):
            os.replace(path, output_dir / path.name)
        incoming.rmdir()
    if earlier.exists():
        shutil.rmtree(earlier)


def earlier_run(output_dir: Path) -> list[Path]:
    """The entries of ``output_dir`` that are its run's: its marker first, then what the marker lists, its checkpoints and logs, staged files.

    Read from the marker where it is, in ``output_dir`` or already moved into ``.ftrun-earlier``.
    """
    marker = output_dir / RUN_SEAL
    listed = run_files(output_dir if marker.exists() else output_dir / EARLIER_NAME)
    names = {name.split("/")[0] for name in listed} | {path.name for path in checkpoints(output_dir)} | {STAGING_NAME}
    logs = output_dir / TENSORBOARD_DIR
    if (
        logs.is_dir()
        and not logs.is_symlink()
        and all(is_tensorboard_log(path.relative_to(output_dir).as_posix()) for path in logs.rglob("*") if path.is_file())
    ):
        names.add(TENSORBOARD_DIR)
    entries = [output_dir / name for name in sorted(names - {RUN_SEAL}) if os.path.lexists(output_dir / name)]
    return [marker, *entries] if marker.exists() else entries


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
