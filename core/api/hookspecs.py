"""Hook specifications: every way a plugin can take part in a run.

A run calls the hooks in this order::

    ftrun_register_tasks              once, when the tasks are first asked for
    ftrun_register_tables             once, when a manifest is first validated
    ftrun_load_data                   data stage
    ftrun_preflight                   the pre-flight report (ftrun check, and every run first)
    ftrun_build_head                  head stage
    ftrun_build_metrics               metric stage
    ftrun_trainer_callbacks           trainer stage (callbacks, collected from every plugin)
    ftrun_build_trainer               trainer stage
    ftrun_training_loss               trainer stage (at most one plugin's loss), and the pre-flight
    ftrun_after_training              after training and the final evaluation
    ftrun_save_model                  the final save into the output directory
    ftrun_model_card                  the model card, before it is written

The four stage hooks are ``firstresult``: the first plugin that returns something other
than ``None`` wins. The built-in implementations (``ftrun.api.default_stages``, which cannot be
blocked) are ``trylast`` and run the shared stage code (``ftrun.stages.data``, ``ftrun.stages.head``,
the task's ``build_metrics``, ``ftrun.stages.training``) with the task's own parts, so a plugin
overrides one stage of one task by implementing the hook and returning ``None`` for every
other task::

    @hookimpl
    def ftrun_build_metrics(task, config, data):
        if task.name == "text-classification":
            return Metrics(compute=my_compute, best="f1")

Arguments are passed by name; an implementation may accept any subset of them, so a spec
can grow an argument without breaking a plugin. The plugin manager's typed methods
(``plugins.load_data(task, config)``, ...) call the stages, check the type of each answer and
name the plugin that gave a wrong one. A new-style wrapper
(``@hookimpl(wrapper=True)``) changes a stage's answer, whoever gives it. docs/plugins.md is
the guide to all of this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import BaseModel
    from torch import Tensor
    from torch.nn import Module
    from transformers import PreTrainedModel, Trainer, TrainerCallback

    from ftrun.api.task import BaseTask, Metrics, Task
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData
    from ftrun.stages.output import ModelCard
    from ftrun.stages.preflight import Preflight

hookspec = pluggy.HookspecMarker("ftrun")


@hookspec
def ftrun_register_tasks(register: Callable[[Task], None]) -> None:
    """Register the tasks this plugin provides.

    Called once per plugin when the plugin manager is built. Call ``register(task)`` with
    a :class:`ftrun.Task` (or :class:`ftrun.BaseTask`) instance for each task; a name that another plugin already
    registered is an error naming both plugins. Returns nothing.
    """


@hookspec
def ftrun_register_tables(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Register the manifest tables this plugin reads (a plugin that is not a task: ``[peft]``, ...).

    Called once per plugin, when a manifest is first validated. Call ``register(name, model)`` with the table's name and a pydantic model of its keys
    (subclass :class:`ftrun.Section`: unknown keys and wrong types are errors). A manifest's
    table is validated by it like every other table, listed by ``ftrun schema`` and written into
    the run's ``ftrun.toml``; hooks read it as ``config.tables[name]``, which is absent when the
    manifest has no such table. A name that ftrun or another plugin uses is an error naming both.
    Returns nothing.
    """


@hookspec(firstresult=True)
def ftrun_load_data(task: BaseTask, config: RunConfig, sample: int | None, labels: list[str] | None, splits: tuple[str, ...]) -> TaskData | None:
    """Data stage: load the train and eval splits, check them, and tokenize them.

    Called first in a run, before any model weights are loaded, by ``ftrun check`` and by
    ``ftrun eval``. Receives the task, the validated run config and ``sample``: ``None`` in a run; in
    ``ftrun check`` the number of examples of each split to encode, to fail fast what would
    fail at tokenization (an implementation may ignore it and encode everything). ``labels``:
    ``None``, or in ``ftrun eval`` the trained model's label names, in its order, which the
    encoded labels follow. ``splits``: the splits to encode, ``("train", "eval")``, or
    ``("eval",)`` in ``ftrun eval`` (whose config names the eval data as both splits). Returns a
    :class:`ftrun.TaskData` holding the tokenized splits (none with a ``sample``), the
    processor (``task.load_processor``: a tokenizer, an image processor, ...), the label names and the raw splits; bad data raises :class:`ftrun.FtrunError`.
    ``firstresult``: stops at the first non-``None`` result.
    """


@hookspec
def ftrun_preflight(task: BaseTask, config: RunConfig, data: TaskData, report: Preflight) -> None:
    """Add findings to the pre-flight report: what this plugin's tables need of the run.

    Called after the task's own ``preflight``, by ``ftrun check`` and at the start of every run,
    before any model weights load. ``data`` is the data stage's: in a run, both splits encoded;
    in ``ftrun check``, which encodes a sample of each split, ``data.train`` and ``data.eval`` are
    ``None`` while ``data.raw``, ``data.processor``, ``data.labels`` and ``data.stats`` are there.
    Call ``report.warn(key, message)`` or ``report.fail(key, message)``; an error stops the run
    before it starts. Returns nothing.
    """


@hookspec(firstresult=True)
def ftrun_build_head(task: BaseTask, config: RunConfig, data: TaskData) -> PreTrainedModel | Module | None:
    """Head stage: build the model with the task's output layer, labels wired in.

    Called after the data stage. Receives the task, the config and the data stage's
    result (label names, processor). Returns a ``transformers.PreTrainedModel``, loaded
    from ``config.model.name`` or built from ``config.model.config``, or a module wrapping
    one (a ``peft.PeftModel``: anything whose ``get_base_model()`` is a ``PreTrainedModel``).
    ``ftrun predict`` loads the trained model through it too: ``config.model.name`` is then the
    run's output directory, and ``data`` holds its processor only (``data.train`` is ``None``).
    ``firstresult``: stops at the first non-``None`` result.
    """


@hookspec(firstresult=True)
def ftrun_build_metrics(task: BaseTask, config: RunConfig, data: TaskData) -> Metrics | None:
    """Metric stage: the ``compute_metrics`` function and the metric that picks the best model.

    Called after the head stage. Returns a :class:`ftrun.Metrics`.
    ``firstresult``: stops at the first non-``None`` result.
    """


@hookspec
def ftrun_trainer_callbacks(task: BaseTask, config: RunConfig) -> list[TrainerCallback] | None:
    """Trainer stage: ``transformers.TrainerCallback`` objects to add to the run.

    Called before ``ftrun_build_trainer``. Returns a list of ``TrainerCallback`` instances
    (or ``None``); the lists from every plugin are concatenated and handed to ``ftrun_build_trainer``.
    Use it for events inside the training loop (logging, early stopping, ...).
    """


@hookspec(firstresult=True)
def ftrun_build_trainer(
    task: BaseTask,
    config: RunConfig,
    data: TaskData,
    model: PreTrainedModel,
    metrics: Metrics,
    callbacks: list[TrainerCallback],
    output_dir: str,
) -> Trainer | None:
    """Trainer stage: training arguments, collator and ``Trainer`` (or a subclass).

    Called last, after the callbacks are collected. Receives everything the earlier
    stages returned and the directory checkpoints go to. Returns a ready
    ``transformers.Trainer``; the runner then trains, evaluates and saves with it.
    ``firstresult``: stops at the first non-``None`` result.
    """


@hookspec
def ftrun_training_loss(task: BaseTask, config: RunConfig, data: TaskData) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The training loss in place of the model's own, for a task whose head gives logits over labels.

    Called once the trainer stage has built the Trainer (a run, ``ftrun eval``), and by the pre-flight
    report (``ftrun check``, and every run first), with the data stage's result. Returns ``None``
    (the plugin's table is not in ``config.tables``), or a function ``loss(logits, labels)``:
    ``logits`` are float32, one row of scores over the labels per scored position (``[N, labels]``),
    ``labels`` the ``N`` label ids (``-100`` left out; a causal LM's shifted by one); it returns
    the ``N`` losses, one per position, unreduced. ftrun makes it the Trainer's
    ``compute_loss_func``: it sums the losses and divides by the Trainer's count of the labels
    of the whole accumulated batch (``num_items_in_batch``), so gradient accumulation and
    several processes change nothing; the eval loss goes through it too, except where a
    seq2seq task evaluates by generating (the model's own loss then). A task whose
    ``logits_over_labels`` is false, or a second plugin answering, is an error naming the
    plugins. Every plugin's is called.
    """


@hookspec
def ftrun_after_training(task: BaseTask, config: RunConfig, trainer: Trainer) -> str | None:
    """After training and the final evaluation, before the final save.

    Called once per run, by every process. Receives the ``Trainer`` (its ``state`` holds the log history and the best checkpoint).
    Returns a line for the run's summary (what the plugin did: "stopped early at ..."), or
    ``None``. Every plugin's is called.
    """


@hookspec(firstresult=True)
def ftrun_save_model(task: BaseTask, config: RunConfig, trainer: Trainer, output_dir: Path) -> bool | None:
    """The final save: write the trained model (and its processor) into ``output_dir``.

    Called by every process (a distributed save gathers the shards), with a staging folder that
    ftrun moves into the run's output directory once everything is written. ftrun adds its own
    files (results, ``ftrun.toml``, the model card) beside what this writes. The default is
    ``trainer.save_model(output_dir)``; return ``True`` when this implementation saved instead.
    ``firstresult``: stops at the first non-``None`` result.
    """


@hookspec
def ftrun_model_card(task: BaseTask, config: RunConfig, card: ModelCard) -> None:
    """Change the model card before it is written: add metadata (``card.data``, a
    ``huggingface_hub.ModelCardData``) or a section (``card.sections[title] = markdown``).

    Called once, by the main process, after the final save. Every plugin's is called. Returns nothing.
    """


def hook_names() -> list[str]:
    """The names of every hook spec, for listings and documentation checks."""
    return sorted(name for name, value in globals().items() if name.startswith("ftrun_") and callable(value))
