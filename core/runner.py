"""One run, top to bottom: data → head → metrics → trainer → train → evaluate → save → predict."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, Trainer, TrainerCallback, set_seed

from .config import RunConfig
from .display import Display, RichProgressCallback
from .distributed import check_engines, process_state
from .errors import FtrunError
from .output import MANIFEST_NAME, write_outputs
from .plugin_manager import PluginManager
from .task import Metrics, Task, TaskData


@dataclasses.dataclass
class RunResult:
    output_dir: Path
    eval_metrics: dict[str, float]
    train_metrics: dict[str, float]
    predictions: list[Any]
    data: TaskData


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty output directory unless told to overwrite it."""
    if output_dir.exists() and not output_dir.is_dir():
        raise FtrunError(f"--output-dir: {output_dir} is a file, not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise FtrunError(f"--output-dir: {output_dir} is not empty (pass --overwrite to replace it)")
        # --overwrite deletes the folder: only ever one that an earlier run wrote.
        if not ((output_dir / MANIFEST_NAME).exists() or any(output_dir.glob("checkpoint-*"))):
            raise FtrunError(f"--output-dir: {output_dir} holds files that are not an ftrun run; refusing to replace it")


def run(config: RunConfig, manager: PluginManager, output_dir: Path, *, overwrite: bool = False, display: Display | None = None) -> RunResult:
    """Train, evaluate, save and predict as ``config`` says; bad input raises FtrunError before anything is written."""
    display = display or Display()
    task = manager.task(config.task)
    stage = manager.call_stage  # each stage hook, with a check of the type of its answer
    state = process_state(config)  # which process of a distributed run this is; one alone is the main one
    check_output_dir(output_dir, overwrite)
    task.check_model(config)  # a missing model fails now, not after tokenizing
    check_engines(config)
    with display.active():
        # The others wait, then load what the first process on their machine tokenized and cached.
        with state.local_main_process_first():
            data = stage("ftrun_load_data", TaskData, task=task, config=config)
        for name, stats in data.stats.items():
            how = "loaded from the cache" if stats.cached else f"tokenized in {stats.seconds:.2f} s"
            display.print(f"{name}: {stats.examples} examples, {how}")
        set_seed(config.training["seed"])  # as run_classification.py: the same new weights on every run and process
        model = stage("ftrun_build_head", PreTrainedModel, task=task, config=config, data=data)
        metrics = stage("ftrun_build_metrics", Metrics, task=task, config=config, data=data)
        callbacks = trainer_callbacks(manager, task, config)
        if overwrite and state.is_main_process and output_dir.is_dir():
            shutil.rmtree(output_dir)  # only now: every check above has passed
        state.wait_for_everyone()  # no process writes there before the earlier run is gone
        trainer = stage(
            "ftrun_build_trainer",
            Trainer,
            task=task, config=config, data=data, model=model, metrics=metrics, callbacks=callbacks, output_dir=str(output_dir),
        )
        use_rich_progress(trainer, display)
        train_metrics = trainer.train().metrics
        eval_metrics = trainer.evaluate()
    trainer.save_model(str(output_dir))  # by every process: FSDP and DeepSpeed gather the shards
    examples = config.predict.examples
    predictions: list[Any] = []
    if trainer.is_world_process_zero():
        predictions = task.predict(trainer.model, data.tokenizer, examples) if examples else []
        write_outputs(output_dir, trainer, task, config, train_metrics, eval_metrics, examples, predictions)
    return RunResult(output_dir, eval_metrics, train_metrics, predictions, data)


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
