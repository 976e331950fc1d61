"""Early stopping: end a run once its best metric stops improving, and keep its best checkpoint.

A plugin that is not a task, written against ftrun's public API alone. An ``[early_stopping]``
table turns it on; transformers' ``EarlyStoppingCallback`` does the stopping; a pre-flight check
refuses, before anything loads, the ``[training]`` settings that callback cannot work with
(which would otherwise fail an assertion once training starts, or stop the run on a model past
its best); and the run's summary says whether it stopped, when, and which checkpoint it kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ftrun import Section, hookimpl

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback

    from ftrun import Preflight, RunConfig, Task


class EarlyStoppingTable(Section):
    """[early_stopping]: stop training once the best metric has not improved for a few evaluations."""

    patience: int = Field(3, gt=0, description="Evaluations without improvement after which training stops.")
    threshold: float = Field(0.0, ge=0, description="The least improvement of the best metric that counts as one.")


@hookimpl
def ftrun_register_tables(register: Callable[[str, type[Section]], None]) -> None:
    register("early_stopping", EarlyStoppingTable)


@hookimpl
def ftrun_trainer_callbacks(config: RunConfig) -> list[TrainerCallback] | None:
    settings = config.tables.get("early_stopping")
    if settings is None:
        return None
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=settings.patience, early_stopping_threshold=settings.threshold)]


@hookimpl
def ftrun_preflight(task: Task, config: RunConfig, report: Preflight) -> None:
    """What EarlyStoppingCallback needs of ``[training]``: evaluations to compare, and the best of them kept.

    It compares each evaluation of ``metric_for_best_model`` (ftrun sets it to ``metrics.best``)
    with the best so far; with ``load_best_model_at_end`` the run ends on the best checkpoint,
    which TrainingArguments allows only when every save falls on an evaluation.
    """
    settings = config.tables.get("early_stopping")
    if settings is None:
        return
    training = training_settings(task, config)
    evaluation, save = (strategy_name(training[key]) for key in ("eval_strategy", "save_strategy"))
    every = training["eval_steps"] or training["logging_steps"]  # as TrainingArguments fills eval_steps in
    if evaluation == "no":
        report.fail("training.eval_strategy", 'early stopping compares evaluations, and this run has none: set eval_strategy = "epoch" or "steps"')
    elif not training["load_best_model_at_end"]:
        report.fail(
            "training.load_best_model_at_end",
            f"early stopping ends a run {counted(settings.patience, 'evaluation')} after its best: set load_best_model_at_end = true to end it on the best checkpoint",
        )
    elif save not in (evaluation, "best"):
        report.fail(
            "training.save_strategy",
            f'early stopping keeps the best checkpoint, so checkpoints are saved when the run evaluates: set save_strategy = "{evaluation}" (as eval_strategy) or "best"',
        )
    elif save == "steps" and not is_multiple(training["save_steps"], every):
        report.fail(
            "training.save_steps",
            f"early stopping keeps the best checkpoint, so checkpoints are saved when the run evaluates: save_steps = {training['save_steps']} is not a multiple of eval_steps = {every}",
        )
    elif report.schedule.evaluations_per_epoch is not None:
        evaluations = int(report.schedule.evaluations_per_epoch * report.schedule.epochs)
        if evaluations <= settings.patience + 1:
            report.warn(
                "early_stopping.patience",
                f"the run evaluates {counted(evaluations, 'time')}, and stopping early takes {settings.patience + 1} evaluations "
                f"(a best one, then {settings.patience} without improvement): it cannot stop before its end; lower patience, or evaluate more often",
            )


@hookimpl
def ftrun_after_training(config: RunConfig, trainer: Trainer) -> str | None:
    settings = config.tables.get("early_stopping")
    if settings is None:
        return None
    state, args = trainer.state, trainer.args
    metric = args.metric_for_best_model if args.metric_for_best_model.startswith("eval_") else f"eval_{args.metric_for_best_model}"
    if state.best_metric is None:
        return f"early stopping: the run was never evaluated, so it could not stop early (step {state.global_step} of {state.max_steps})"
    when = f"step {state.global_step} of {state.max_steps}" + (
        f" (epoch {round(state.epoch, 2):g} of {args.num_train_epochs:g})" if args.max_steps <= 0 else ""
    )
    patience = f"{counted(settings.patience, 'evaluation')} without {metric} improving by more than {settings.threshold:g}"
    checkpoint = Path(state.best_model_checkpoint).name if state.best_model_checkpoint else "none saved"
    kept = f"the model is the best checkpoint, {checkpoint} ({metric} {state.best_metric:.4g})"
    if state.global_step < state.max_steps:  # ftrun's own stops (a signal, a NaN loss) end a run before its summary
        return f"early stopping: stopped at {when}, after {patience}; {kept}"
    return f"early stopping: never triggered (never {patience}), trained to {when}; {kept}"


def training_settings(task: Task, config: RunConfig) -> dict[str, Any]:
    """``[training]`` over the defaults of the task's ``TrainingArguments`` class: what the Trainer will run with."""
    defaults = {f.name: f.default for f in dataclasses.fields(task.training_arguments_class) if f.default is not dataclasses.MISSING}
    return {**defaults, **config.training}


def strategy_name(value: Any) -> str:
    """An interval strategy as the manifest spells it, whether a string or transformers' enum."""
    return str(getattr(value, "value", value))


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def is_multiple(save_steps: float, eval_steps: float) -> bool:
    """Whether saves fall on evaluations, as TrainingArguments checks it: both in steps, or both shares of the run (below 1)."""
    if save_steps % eval_steps == 0:
        return True
    return save_steps < 1 and eval_steps < 1 and round(save_steps * 1_000_000) % round(eval_steps * 1_000_000) == 0
