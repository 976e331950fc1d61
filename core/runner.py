"""One run, top to bottom: data → head → metrics → trainer → train → evaluate → save → predict."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Iterator

from transformers import PreTrainedModel, Trainer, TrainerCallback, set_seed

from .config import RunConfig
from .display import Display, RichProgressCallback
from .distributed import check_engines, process_state
from .errors import FtrunError
from .memory import keep_freed_memory
from .output import MANIFEST_NAME, write_outputs
from .plugin_manager import PluginManager
from .task import Metrics, Task, TaskData
from .training import SEAL_NAME, SealCheckpoints, StopOnSignal, checkpoints, is_sealed, latest_checkpoint, remove_unsealed


@dataclasses.dataclass
class RunResult:
    output_dir: Path
    eval_metrics: dict[str, float]
    train_metrics: dict[str, float]
    predictions: list[Any]
    data: TaskData


def check_output_dir(output_dir: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a non-empty output directory unless told to overwrite it or to resume the run in it."""
    existing = next((p for p in (output_dir, *output_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise FtrunError(f"--output-dir: {existing} is a file, not a directory")
    if existing is not None and not os.access(existing, os.W_OK):
        raise FtrunError(f"--output-dir: cannot write to {existing} (permission denied)")
    if overwrite and resume:
        raise FtrunError("--overwrite and --resume: choose one (replace the run, or continue it)")
    if not (output_dir.is_dir() and any(output_dir.iterdir())):
        return
    if not (overwrite or resume):
        raise FtrunError(f"--output-dir: {output_dir} is not empty (pass --overwrite to replace it, or --resume to continue it)")
    # Only ever replace or continue a folder that an earlier run wrote.
    if not ((output_dir / MANIFEST_NAME).exists() or checkpoints(output_dir)):
        what = "replace" if overwrite else "resume"
        raise FtrunError(f"--output-dir: {output_dir} holds files that are not an ftrun run; refusing to {what} it")


def resume_checkpoint(output_dir: Path, resume: bool | str, where: str) -> Path | None:
    """The checkpoint to resume from: the one named, or the newest complete one in ``output_dir``."""
    if isinstance(resume, str):
        path = Path(resume)
        if not path.is_dir():
            raise FtrunError(f"{where}: {path} is not a checkpoint directory")
        if not is_sealed(path):
            raise FtrunError(f"{where}: {path} is not a complete checkpoint (no valid {SEAL_NAME}: it was being written when the run stopped)")
        return path
    return latest_checkpoint(output_dir) if resume else None


@contextlib.contextmanager
def writing(output_dir: Path) -> Iterator[None]:
    """A full disk or a refused write is one line naming the folder, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise FtrunError(f"cannot write to {output_dir}: {exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")) from exc


def run(
    config: RunConfig,
    manager: PluginManager,
    output_dir: Path,
    *,
    overwrite: bool = False,
    resume: bool | str | None = None,
    display: Display | None = None,
) -> RunResult:
    """Train, evaluate, save and predict as ``config`` says; bad input raises FtrunError before anything is written.

    ``resume`` (default: the manifest's) continues from a checkpoint; Ctrl-C or SIGTERM stops after
    the current step with a checkpoint, raising :class:`Interrupted`.
    """
    display = display or Display()
    task = manager.task(config.task)
    stage = manager.call_stage  # each stage hook, with a check of the type of its answer
    state = process_state(config)  # which process of a distributed run this is; one alone is the main one
    resume = config.resume if resume is None else resume
    where = "--resume" if resume is not config.resume else config.where("resume")
    check_output_dir(output_dir, overwrite, bool(resume))
    checkpoint = resume_checkpoint(output_dir, resume, where)
    task.check_model(config)  # a missing model fails now, not after tokenizing
    check_engines(config)
    with display.active():
        # The others wait, then load what the first process on their machine tokenized and cached.
        with state.local_main_process_first():
            data = stage("ftrun_load_data", TaskData, task=task, config=config)
        for name, stats in data.stats.items():
            how = "loaded from the cache" if stats.cached else f"tokenized in {stats.seconds:.2f} s"
            features = f" → {stats.features} features" if stats.features != stats.examples else ""
            display.print(f"{name}: {stats.examples} examples{features}, {how}")
        set_seed(config.training["seed"])  # as run_classification.py: the same new weights on every run and process
        model = stage("ftrun_build_head", PreTrainedModel, task=task, config=config, data=data)
        metrics = stage("ftrun_build_metrics", Metrics, task=task, config=config, data=data)
        stop = StopOnSignal(display.print)
        callbacks = [SealCheckpoints(), stop, *trainer_callbacks(manager, task, config)]
        # Only now, every check above having passed: clear what an earlier run left.
        if state.is_main_process:
            if overwrite and output_dir.is_dir():
                shutil.rmtree(output_dir)
            for path in remove_unsealed(output_dir) if output_dir.is_dir() else ():
                display.print(f"removed {path.name}: it was being written when the run stopped")
        state.wait_for_everyone()  # no process writes there before the earlier run is gone
        if resume:
            display.print(f"resuming from {checkpoint}" if checkpoint else f"no complete checkpoint in {output_dir}: starting from the beginning")
        trainer = stage(
            "ftrun_build_trainer",
            Trainer,
            task=task, config=config, data=data, model=model, metrics=metrics, callbacks=callbacks, output_dir=str(output_dir),
        )
        use_rich_progress(trainer, display)
        # Across processes a signal reaches each at another step, and one stopping alone would leave
        # the others waiting: there torchrun ends them all, and --resume starts from the last checkpoint.
        with keep_freed_memory(trainer.args.device):
            with writing(output_dir), stop.installed(state.num_processes == 1):
                train_metrics = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None).metrics
            if stop.received:
                raise Interrupted(stop.received, trainer.state.global_step, latest_checkpoint(output_dir))
            eval_metrics = trainer.evaluate()
    examples = config.predict.examples
    predictions: list[Any] = []
    if trainer.is_world_process_zero():
        inputs = [task.read_input(example, config.where("predict.examples")) for example in examples]
        predictions = task.predict(trainer.model, data.tokenizer, inputs, config) if examples else []
    with writing(output_dir):
        write_outputs(output_dir, trainer, task, config, train_metrics, eval_metrics, examples, predictions)
    return RunResult(output_dir, eval_metrics, train_metrics, predictions, data)


class Interrupted(FtrunError):
    """Ctrl-C or SIGTERM stopped the run after a step, with a checkpoint to resume from."""

    label = "stopped"

    def __init__(self, received: signal.Signals, step: int, checkpoint: Path | None) -> None:
        self.exit_code = 128 + received.value  # what a shell reports for a process the signal ended
        saved = f"checkpoint saved in {checkpoint}; run the same command with --resume to continue" if checkpoint else "no checkpoint was saved"
        super().__init__(f"{received.name} at step {step}: {saved}")


def trainer_callbacks(manager: PluginManager, task: Task, config: RunConfig) -> list[Any]:
    """Every plugin's ``ftrun_trainer_callbacks``, joined; anything but lists of callbacks is an error."""
    hook = manager.hook.ftrun_trainer_callbacks
    callbacks: list[Any] = []
    for group in hook(task=task, config=config):
        is_list = isinstance(group, (list, tuple))
        wrong = [c for c in group if not isinstance(c, TrainerCallback)] if is_list else [group]
        if wrong:
            # pluggy joins the answers without saying whose is whose: name every plugin that gives some.
            plugins = " or ".join(manager.label(impl.plugin_name) for impl in hook.get_hookimpls())
            what = f"a list holding {type(wrong[0]).__name__}" if is_list else type(group).__name__
            raise FtrunError(f"{plugins}: ftrun_trainer_callbacks returned {what}, expected a list of transformers.TrainerCallback")
        callbacks += group
    return callbacks


def use_rich_progress(trainer: Any, display: Display) -> None:
    """Swap the Trainer's tqdm bars and printed log dicts for the run's rich display."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(RichProgressCallback(display))
