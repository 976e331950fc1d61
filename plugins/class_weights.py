"""Class weights in the loss: on imbalanced data, the errors on each label count by its weight.

A plugin that is not a task, written against ftrun's public API alone, for the tasks whose
model scores every label of ``data.labels`` and learns integer label ids: text classification
(one per example) and NER (one per token, ``-100`` where a token is not scored).
transformers' classification heads take no class weights (huggingface/transformers#35061),
so a ``[class_weights]`` table supplies the training loss (``ftrun_training_loss``): a
cross-entropy in which each label's errors count by its weight.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
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


class ClassWeightsTable(Section):
    """[class_weights]: weigh each label in the cross-entropy loss, for imbalanced data."""

    weights: Literal["balanced"] | dict[str, float] = Field(
        description='"balanced": n_samples / (n_classes * count) of each label in the train split, as scikit-learn\'s; '
        "or a table of weights by label name, where the labels it leaves out weigh 1.0."
    )

    @field_validator("weights", mode="wrap")
    @classmethod
    def _balanced_or_a_table(cls, value: Any, handler: Callable[[Any], Any]) -> Any:
        # Said whole: pydantic's words would name each member of the union.
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f'expected "balanced" or a table of weights by label name, got {value!r}') from None


class WeightedCrossEntropy:
    """The training loss (``ftrun_training_loss``): each scored label's cross-entropy times its label's weight.

    ftrun sums these and divides by the number of labels, as scikit-learn's sample weights: with
    ``"balanced"`` weights the mean weight over the train labels is 1, so the loss keeps the scale
    of the unweighted one.
    """

    def __init__(self, weights: Sequence[float], names: Sequence[str], how: str, label_smoothing: float = 0.0) -> None:
        import torch

        self.weight = torch.tensor(weights, dtype=torch.float32)
        self.names = list(names)
        self.how = how
        self.label_smoothing = label_smoothing  # training.label_smoothing_factor, which the model's own loss would apply

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        weight = self.weight.to(logits.device)
        return F.cross_entropy(logits, labels, weight=weight, reduction="none", label_smoothing=self.label_smoothing)

    def describe(self) -> str:
        """The weights, for the run's summary: ``class weights (balanced): neg 0.56, pos 5.00``."""
        pairs = [f"{name} {weight:.2f}" for name, weight in zip(self.names, self.weight.tolist())]
        more = f", and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else ""
        return f"class weights ({self.how}): {', '.join(pairs[:SHOWN])}{more}"


@hookimpl
def ftrun_register_tables(register: Callable[[str, type[Section]], None]) -> None:
    register("class_weights", ClassWeightsTable)


@hookimpl
def ftrun_preflight(task: Task, config: RunConfig, data: TaskData, report: Preflight) -> None:
    """Refuse, before any model loads, what a weight per label cannot apply to, and names that are no label."""
    settings = config.tables.get("class_weights")
    if settings is None:
        return
    if data.labels is None:  # translation, question answering: no set of labels to weigh
        report.fail(
            "class_weights.weights",
            f"task {task.name} has no class labels to weigh: class weights are for tasks that pick one label per example or per token (text-classification, ner)",
        )
        return
    if train_label_ids(task, config, data) is None:
        report.fail(
            "class_weights.weights",
            f"the train labels of task {task.name} are not class ids but numbers per label (several labels per example?): "
            "class weights are for tasks that pick one label per example or per token",
        )
        return
    if settings.weights == "balanced":
        return
    for name, weight in settings.weights.items():
        if name not in data.labels:
            close = difflib.get_close_matches(name, data.labels, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            shown = ", ".join(data.labels[:SHOWN]) + (", ..." if len(data.labels) > SHOWN else "")
            report.fail(f"class_weights.weights.{name}", f"the data has no label {name!r}{hint}; its labels: {shown}")
        elif weight <= 0:
            report.fail(f"class_weights.weights.{name}", f"a weight must be greater than 0, got {weight:g}")


@hookimpl
def ftrun_training_loss(task: Task, config: RunConfig, data: TaskData) -> WeightedCrossEntropy | None:
    settings = config.tables.get("class_weights")
    if settings is None:
        return None
    if settings.weights == "balanced":
        weights, how = balanced_weights(train_label_ids(task, config, data), len(data.labels)), "balanced"
    else:
        weights, how = [settings.weights.get(name, 1.0) for name in data.labels], "given"
    return WeightedCrossEntropy(weights, data.labels, how, config.training.get("label_smoothing_factor", 0.0))


@hookimpl
def ftrun_after_training(trainer: Trainer) -> str | None:
    loss = getattr(trainer.compute_loss_func, "loss", None)  # ftrun's wrapper of the loss a plugin supplies
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
