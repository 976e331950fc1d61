"""One run, top to bottom: data → head → metrics → trainer → train → evaluate → save → predict."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback, set_seed

from ftrun.api.plugin_manager import PluginManager
from ftrun.api.task import BaseTask
from ftrun.manifest.config import RunConfig
from ftrun.stages.data import TaskData
from ftrun.stages.distributed import check_engines, process_state
from ftrun.stages.head import check_model, model_config_of
from ftrun.stages.output import RunOutputs, run_identity, write_outputs
from ftrun.stages.output_dir import OutputDir, claimed, inputs_of
from ftrun.stages.plots import run_figures
from ftrun.stages.predict import predict_as_evaluated
from ftrun.stages.preflight import Preflight, remote_code_warning
from ftrun.stages.training import SealCheckpoints, StopOnSignal, check_best_model, check_resumable, latest_checkpoint, log_destinations, use_rich_progress
from ftrun.util.display import Display
from ftrun.util.errors import FtrunError
from ftrun.util.memory import keep_freed_memory
from ftrun.util.precision import choose_precision


@dataclasses.dataclass
class RunResult:
    output_dir: Path
    eval_metrics: dict[str, float]
    train_metrics: dict[str, float]
    predictions: list[Any]
    data: TaskData


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
    plugins: PluginManager,
    output_dir: Path,
    *,
    overwrite: bool = False,
    resume: bool | str | None = None,
    display: Display | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    manifest: Path | None = None,
) -> RunResult:
    """Train, evaluate, save and predict as ``config`` says; bad input raises FtrunError before anything is written.

    ``resume`` (default: the manifest's) continues from a checkpoint (Ctrl-C or SIGTERM stop with one, raising
    :class:`Interrupted`); ``callbacks`` join the plugins'; ``manifest``: the file ``config`` came from, never an output.
    """
    display, task, state = display or Display(), plugins.task(config.task), process_state(config)  # state: which process this is
    check_model(config)  # a missing model fails now, not after tokenizing
    check_engines(config)
    with claim(output_dir, config, overwrite=overwrite, resume=resume, manifest=manifest, state=state, display=display) as out, display.active():
        with state.local_main_process_first():  # the others load what the first process on their machine cached
            data = plugins.load_data(task, config)
        report = plugins.preflight(task, config, data)
        config = report.config  # with a default warmup sized to the run
        announce(display, config, output_dir, report, data)
        set_seed(config.training["seed"])  # as run_classification.py: the same new weights on every run and process
        model = plugins.build_head(task, config, data)
        metrics = plugins.build_metrics(task, config, data)
        stop = StopOnSignal(display.print)
        callbacks = [SealCheckpoints(out.identity), stop, *plugins.trainer_callbacks(task, config), *callbacks]
        clear_leftovers(out, state, display)
        trainer = plugins.build_trainer(task, config, data, model, metrics, callbacks=callbacks, output_dir=str(out.work))
        use_rich_progress(trainer, display)
        with keep_freed_memory(trainer.args.device):
            train_metrics = train(trainer, starting_checkpoint(out, trainer, display), stop, state, out)
            eval_metrics = evaluate(trainer)
        for line in plugins.after_training(task, config, trainer):
            display.print(line)
        predictions = predict_examples(task, trainer, data, config)
        outputs = RunOutputs(task, config, trainer, train_metrics, eval_metrics, predictions, report.warnings, data, run_figures(task, trainer, data, config))
        with writing(out.work):
            write_outputs(out.work, outputs, plugins)
            if state.is_main_process:
                out.finish()
    return RunResult(output_dir, eval_metrics, train_metrics, predictions, data)


def claim(output_dir: Path, config: RunConfig, *, overwrite: bool, resume: bool | str | None, manifest: Path | None, state: Any, display: Display) -> Any:
    """The output directory, claimed for this run (:func:`ftrun.stages.output_dir.claimed`): ``resume`` defaults to the manifest's."""
    resume = config.resume if resume is None else resume
    where = "--resume" if resume is not config.resume else config.where("resume")
    reads = inputs_of(config, manifest)
    return claimed(output_dir, overwrite=overwrite, resume=resume, where=where, state=state, announce=display.print, reads=reads, identity=run_identity(config))


def announce(display: Display, config: RunConfig, output_dir: Path, report: Preflight, data: TaskData) -> None:
    """The run's first line (task, model, precision, output, what was sized to the run), its warnings, then each split; errors stop it."""
    from rich.markup import escape

    from ftrun import __version__

    sized = f"; {escape(report.sized)}" if report.sized else ""
    logs = log_destinations(config.training, output_dir)
    display.print(
        f"ftrun {__version__}: task [bold]{config.task}[/], model {config.model.name or 'built from a config'}, "
        f"precision {choose_precision(config.training, model_config_of(config))}, output {output_dir}{sized}" + (f"; logs to {escape(logs)}" if logs else "")
    )
    if config.model.trust_remote_code:
        display.print(f"[bold yellow]warning:[/] {escape(remote_code_warning(config))}", highlight=False)
    for finding in report.warnings:
        display.print(f"[bold yellow]warning:[/] {escape(str(finding))}", highlight=False)
    if report.errors:
        raise FtrunError(str(report.errors[0]))
    for name, stats in data.stats.items():
        how = "encoded as they are read" if stats.lazy else "loaded from the cache" if stats.cached else f"tokenized in {stats.seconds:.2f} s"
        features = f" → {stats.features} features" if stats.features != stats.examples else ""
        display.print(f"{name}: {stats.examples} examples{features}, {how}")


def clear_leftovers(out: OutputDir, state: Any, display: Display) -> None:
    """Only now, every check having passed: clear what an earlier run left in the output directory.

    An earlier run that --overwrite replaces stays whole until this one has written its outputs.
    """
    if state.is_main_process:
        out.clear_leftovers(display.print)
    state.wait_for_everyone()  # no process writes there before the leftovers are gone


def starting_checkpoint(out: OutputDir, trainer: Trainer, display: Display) -> Path | None:
    """The checkpoint to resume from (one that another number of processes wrote, if its steps can go on), or ``None``."""
    checkpoint = out.checkpoint
    if checkpoint:
        kept = check_resumable(checkpoint, trainer.args, out.where)
        display.print(f"resuming from {checkpoint}" + (f"; {kept}" if kept else ""))
    elif out.resume:
        display.print(f"no complete checkpoint in {out.work}: starting from the beginning")
    return checkpoint


def evaluate(trainer: Trainer) -> dict[str, float]:
    """The final evaluation, of the model the run publishes, which must be the best checkpoint where one is kept (one line otherwise)."""
    metrics = trainer.evaluate()
    check_best_model(trainer, metrics)
    return metrics


def train(trainer: Trainer, checkpoint: Path | None, stop: StopOnSignal, state: Any, out: OutputDir) -> dict[str, float]:
    """``trainer.train``, stopped cleanly by Ctrl-C or SIGTERM (raising :class:`Interrupted`), a full disk one line.

    Across processes a signal reaches each at another step, and one stopping alone would leave
    the others waiting: there torchrun ends them all, and --resume starts from the last checkpoint.
    """
    with writing(out.work), stop.installed(state.num_processes == 1):
        metrics = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None).metrics
    if stop.received:
        raise Interrupted(stop.received, trainer.state.global_step, latest_checkpoint(out.work), out.replacing)
    return metrics


def predict_examples(task: BaseTask, trainer: Trainer, data: TaskData, config: RunConfig) -> list[Any]:
    """The task's predictions on ``[predict] examples`` (read by the task when the manifest was validated), by the main process, as a smoke test of the trained model."""
    examples = config.predict.examples
    if not examples or not trainer.is_world_process_zero():
        return []
    return predict_as_evaluated(task, trainer.model, data.processor, examples, config)


class Interrupted(FtrunError):
    """Ctrl-C or SIGTERM stopped the run after a step, with a checkpoint to resume from."""

    label = "stopped"

    def __init__(self, received: signal.Signals, step: int, checkpoint: Path | None, replacing: bool = False) -> None:
        self.exit_code = 128 + received.value  # what a shell reports for a process the signal ended
        again = "again with --resume in place of --overwrite (the earlier run is kept until then)" if replacing else "the same command with --resume"
        saved = f"checkpoint saved in {checkpoint}; run {again} to continue" if checkpoint else "no checkpoint was saved"
        super().__init__(f"{received.name} at step {step}: {saved}")
