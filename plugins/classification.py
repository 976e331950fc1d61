"""One named label per example, whatever the input: what text, image and audio classification share.

The labels (strings, integers with a ``ClassLabel``'s names, or integers named by ``[data]
label_names``), their checks, their ids in the features, the metrics (accuracy, F1, precision,
recall), the confusion matrix and the pre-flight's word on F1. A task mixes
:class:`OneLabelPerExample` in before its base (``class ImageTask(OneLabelPerExample, BaseTask)``);
its ``[data]`` table has ``label_column`` and ``label_names``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ftrun import FtrunError, Metrics, Preflight, RunConfig, Splits, TaskData, where_row

from .labels import check_eval_labels, first_missing, named_labels
from .metrics import classification_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from transformers import EvalPrediction


class OneLabelPerExample:
    """The parts of a task that classifies each example into one of N named labels."""

    def logits_over_labels(self, config: RunConfig) -> bool:
        """One class per example: the logits score each label."""
        return True

    def check_labels(self, splits: Splits, config: RunConfig) -> list[str]:
        """The train split's label names; eval labels train lacks, or a single label, fail now."""
        names = label_names(splits.train, config, "train")
        check_eval_labels(names, label_names(splits.eval, config, "eval", used_only=True), config.where("data.label_column"))
        if len(names) < 2:
            raise FtrunError(f"{config.where('data.label_column')}: the train split has only the label {names[0]!r}; classification needs two or more")
        return names

    def labels_of(self, split: Any, config: RunConfig) -> list[list[str]]:
        column = config.data.label_column
        names = getattr(split.features[column], "names", None) or config.data.label_names
        values = split.select_columns([column])[:][column]
        return [[value if isinstance(value, str) else names[value] if names else str(value)] for value in values]

    def label_ids(self, values: list[Any], data: TaskData, config: RunConfig) -> list[int]:
        """The ids of a batch's labels (as its label column holds them), in ``data.labels``' order."""
        indexed = uses_indices(data.raw.train, config)
        label2id = data.label2id
        return [label2id[value if isinstance(value, str) else data.labels[value] if indexed else str(value)] for value in values]

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        names = config.metrics.names or ["accuracy", "f1"]
        best = config.metrics.best or names[0]
        compute = classification_metrics(names, num_labels=len(data.labels), where=config.where("metrics.names"))
        if best not in names:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        return Metrics(compute=lambda p: compute(np.argmax(p.predictions, axis=-1), p.label_ids), best=best)

    def plots(self, prediction: EvalPrediction, data: TaskData, config: RunConfig) -> dict[str, Figure]:
        """The confusion matrix of the eval split, by label name."""
        from ftrun import plots

        names = data.labels
        predicted = [names[i] for i in np.argmax(prediction.predictions, axis=-1)]
        return {"confusion_matrix": plots.confusion_matrix([names[i] for i in prediction.label_ids], predicted, names)}

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """The shared report, and whether the best metric can be computed on the eval split's labels.

        F1, precision and recall count the positive label (the second) of two, and every label
        of more (their macro average): one the eval split lacks leaves the score at 0.
        """
        report = super().preflight(config, data)
        best, counts = config.metrics.best, report.splits["eval"].labels or {}
        if best in ("f1", "precision", "recall") and data.labels:
            missing = [label for label in (data.labels[1:] if len(data.labels) == 2 else data.labels) if not counts.get(label)]
            if len(data.labels) == 2 and missing:
                report.warn(
                    "metrics.best",
                    f"{best} cannot be computed on the eval split: it has no examples of the positive label {missing[0]!r} "
                    "(the second), so it is 0 at every evaluation and picks no best checkpoint",
                )
            elif missing:
                report.warn(
                    "metrics.best",
                    f"{best} averages over every label, and the eval split has no examples of {', '.join(map(repr, missing[:5]))}: "
                    "their score counts as 0 whenever the model predicts them",
                )
        return report

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        return f"{prediction['label']} ({prediction['score']:.3f})"


def uses_indices(split: Any, config: RunConfig) -> bool:
    """Whether integer labels are indices into names (a ClassLabel, or ``label_names``)."""
    return hasattr(split.features[config.data.label_column], "names") or config.data.label_names is not None


def label_names(split: Any, config: RunConfig, name: str, used_only: bool = False) -> list[str]:
    """The label names of a split (see ``named_labels``); integers without names are named by their values."""
    column = config.data.label_column
    where = config.where("data.label_column")
    labels = split.select_columns([column])[:][column]  # as a list: a Column reads row by row
    nested = next((value for value in labels if isinstance(value, (list, dict))), None)
    if nested is not None:  # several labels per example, or a table: not this task's
        what = "lists" if isinstance(nested, list) else "tables"
        raise FtrunError(
            f"{where}: labels must be strings or integers; the {name} split's {column!r} holds {what} (several labels per example need a multi-label task plugin)"
        )
    missing = first_missing(labels)
    if missing is not None:
        raise FtrunError(f"{where}: {where_row(config, split, name, missing)} has no label (empty, null or missing)")
    values = Counter(labels)
    names = named_labels(values, getattr(split.features[column], "names", None), config, "label_column", name, used_only)
    if names is not None:
        return names
    negative = next((row for row, value in enumerate(labels) if value < 0), None)
    if negative is not None:  # as GLUE's test splits mark their unlabelled rows
        raise FtrunError(
            f"{where}: {where_row(config, split, name, negative)} has the label {labels[negative]}: a negative label marks a row "
            "without one; leave such rows out, or give label_names"
        )
    return [str(value) for value in sorted(values)]
