"""Class weights in the loss: on imbalanced data, the errors on each label count by its weight.

A plugin that is not a task, written against ftrun's public API alone, for the tasks whose
model scores every label of ``data.labels`` and learns integer label ids: text classification
(one per example) and NER (one per token, ``-100`` where a token is not scored).
transformers' classification heads take no class weights (huggingface/transformers#35061),
so a ``[loss]`` table replaces the loss of whichever Trainer the trainer stage builds
(``Trainer.compute_loss_func``) with a weighted cross-entropy.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator

from ftrun import Section, hookimpl

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import Trainer

    from ftrun import Preflight, RunConfig, Task, TaskData

#: The label of a position the loss leaves out (a word's later sub-tokens, padding), as PyTorch's ``ignore_index``.
IGNORED = -100
#: Examples ``ftrun check``, which encodes no whole split, encodes to see the labels' type.
SAMPLE = 32
#: Labels the run's summary line shows at most.
SHOWN = 12


class LossTable(Section):
    """[loss]: weigh each label in the cross-entropy loss, for imbalanced data."""

    class_weights: Literal["balanced"] | dict[str, float] = Field(
        description='"balanced": n_samples / (n_classes * count) of each label in the train split, as scikit-learn\'s; '
        "or a table of weights by label name, where the labels it leaves out weigh 1.0."
    )

    @field_validator("class_weights", mode="wrap")
    @classmethod
    def _balanced_or_a_table(cls, value: Any, handler: Callable[[Any], Any]) -> Any:
        # Said whole: pydantic's words would name each member of the union.
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f'expected "balanced" or a table of weights by label name, got {value!r}') from None


class WeightedCrossEntropy:
    """The Trainer's loss (``compute_loss_func``): cross-entropy with a weight per label, over the labels that are not -100."""

    def __init__(self, weights: Sequence[float], names: Sequence[str], how: str, label_smoothing: float = 0.0) -> None:
        import torch

        self.weight = torch.tensor(weights, dtype=torch.float32)
        self.names = list(names)
        self.how = how
        self.label_smoothing = label_smoothing  # training.label_smoothing_factor, which the Trainer's own loss would apply

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        import torch.nn.functional as F

        logits = outputs["logits"].float()  # in fp32 under mixed precision, as the weights
        logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device)
        weight = self.weight.to(logits.device)
        loss = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORED, label_smoothing=self.label_smoothing)
        if num_items_in_batch is None:  # evaluation: this batch's mean
            return loss
        # In training, the Trainer takes a compute_loss_func's loss as normalised over the whole accumulated batch
        # (num_items_in_batch labels; of every process with average_tokens_across_devices) and does not divide it by
        # the accumulation steps: each batch counts by its share of those labels.
        return loss * (labels != IGNORED).sum() / num_items_in_batch

    def describe(self) -> str:
        """The weights, for the run's summary: ``class weights (balanced): neg 0.56, pos 5.00``."""
        pairs = [f"{name} {weight:.2f}" for name, weight in zip(self.names, self.weight.tolist())]
        more = f", and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else ""
        return f"class weights ({self.how}): {', '.join(pairs[:SHOWN])}{more}"


@hookimpl
def ftrun_register_tables(register: Callable[[str, type[Section]], None]) -> None:
    register("loss", LossTable)


@hookimpl
def ftrun_preflight(task: Task, config: RunConfig, data: TaskData, report: Preflight) -> None:
    """Refuse, before any model loads, what a weight per label cannot apply to, and names that are no label."""
    settings = config.tables.get("loss")
    if settings is None:
        return
    if data.labels is None:  # translation, question answering: no set of labels to weigh
        report.fail(
            "loss.class_weights",
            f"task {task.name} has no class labels to weigh: class weights are for tasks that pick one label per example or per token (text-classification, ner)",
        )
        return
    if train_label_ids(task, config, data) is None:
        report.fail(
            "loss.class_weights",
            f"the train labels of task {task.name} are not class ids but numbers per label (several labels per example?): "
            "class weights are for tasks that pick one label per example or per token",
        )
        return
    if settings.class_weights == "balanced":
        return
    for name, weight in settings.class_weights.items():
        if name not in data.labels:
            close = difflib.get_close_matches(name, data.labels, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            shown = ", ".join(data.labels[:SHOWN]) + (", ..." if len(data.labels) > SHOWN else "")
            report.fail(f"loss.class_weights.{name}", f"the data has no label {name!r}{hint}; its labels: {shown}")
        elif weight <= 0:
            report.fail(f"loss.class_weights.{name}", f"a weight must be greater than 0, got {weight:g}")


@hookimpl(wrapper=True)
def ftrun_build_trainer(task: Task, config: RunConfig, data: TaskData) -> Generator[None, Trainer, Trainer]:
    trainer = yield  # whichever plugin built it, or ftrun's trainer stage
    settings = config.tables.get("loss")
    if settings is None:
        return trainer
    if settings.class_weights == "balanced":
        weights, how = balanced_weights(train_label_ids(task, config, data), len(data.labels)), "balanced"
    else:
        weights, how = [settings.class_weights.get(name, 1.0) for name in data.labels], "given"
    trainer.compute_loss_func = WeightedCrossEntropy(weights, data.labels, how, trainer.args.label_smoothing_factor)
    return trainer


@hookimpl
def ftrun_after_training(trainer: Trainer) -> str | None:
    loss = trainer.compute_loss_func
    return loss.describe() if isinstance(loss, WeightedCrossEntropy) else None


def train_label_ids(task: Task, config: RunConfig, data: TaskData) -> np.ndarray | None:
    """Every label id of the train features, -100 left out; ``None`` when the labels are not integers.

    In a run, every feature's; in ``ftrun check``, which encodes no whole split, a sample's, encoded now.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if data.train is not None:
        labels = data.train.with_format("arrow")["labels"]
    else:
        sample = data.raw.train.select(range(min(SAMPLE, len(data.raw.train))))[:]
        labels = pa.array(task.encode(sample, data, config, "train")["labels"])
    while pa.types.is_list(labels.type) or pa.types.is_large_list(labels.type) or pa.types.is_fixed_size_list(labels.type):
        labels = pc.list_flatten(labels)  # NER: a label per token
    if not pa.types.is_integer(labels.type):
        return None
    ids = labels.to_numpy()
    return ids[ids != IGNORED]


def balanced_weights(ids: np.ndarray, num_labels: int) -> list[float]:
    """scikit-learn's ``compute_class_weight("balanced")`` (n_samples / (n_classes * count)) of each label present.

    A label the train split lacks, which the loss never meets, weighs 1.0.
    """
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(ids)
    weights = np.ones(num_labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=ids)
    return weights.tolist()
