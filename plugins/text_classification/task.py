"""Text classification: one text or a text pair → one of N named labels (BERT on IMDB).

Registered through the ``ftrun`` entry-point group, exactly as a third-party plugin is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from ftrun import FtrunError, Metrics, Preflight, RunConfig, Splits, Task, TaskData, TextDataConfig, check_text_column, hookimpl, require_columns, where_row

from ..demo import small_bert
from ..labels import LabelNames, check_eval_labels, first_missing, named_labels
from ..metrics import classification_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from transformers import EvalPrediction

DEMO_DIR = Path(__file__).parent / "data"


class TextClassificationData(TextDataConfig):
    text_column: str = Field("text", description="Column holding the text.")
    text_pair_column: str | None = Field(None, description="Second text column, for text-pair tasks (NLI, paraphrase, ...).")
    label_column: str = Field("label", description="Column holding the label: a ClassLabel, strings, or integers.")
    label_names: LabelNames = Field(None, description="Names of integer labels 0..N-1, when the data has none.")


class TextClassificationTask(Task):
    name = "text-classification"
    description = "classify a text or a text pair into named labels"
    pipeline_tag = "text-classification"
    data_config = TextClassificationData
    #: The seed recipe: BERT fine-tuned on 1000 IMDB reviews with the Trainer.
    defaults = {
        "model": {"name": "bert-base-uncased"},
        "data": {
            "dataset": "imdb",
            "train_split": "train",
            "eval_split": "test",
            "max_train_samples": 1000,
            "max_eval_samples": 200,
        },
        "training": {
            "num_train_epochs": 3,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "warmup_steps": 500,
            "weight_decay": 0.01,
        },
        "metrics": {"names": ["accuracy", "f1"], "best": "accuracy"},
        "predict": {
            "examples": [
                "I loved this movie! The acting was great and the story kept me hooked.",
                "This was a terrible film. I want my two hours back.",
            ]
        },
    }

    #: A real IMDB sample shipped in the package and a small BERT trained from scratch on it.
    demo = {
        "model": {
            "config": small_bert(max_positions=256),
            "tokenizer_vocab_size": 4000,
        },
        "data": {
            "train_file": str(DEMO_DIR / "imdb-train.jsonl.gz"),
            "eval_file": str(DEMO_DIR / "imdb-eval.jsonl.gz"),
            "label_names": ["neg", "pos"],
            "max_length": 256,
        },
        # A model trained from scratch wants a higher rate and no long warmup.
        "training": {"num_train_epochs": 4, "learning_rate": 1e-3, "warmup_steps": 0, "per_device_train_batch_size": 16},
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    # -- data stage --------------------------------------------------------------------

    def logits_over_labels(self, config: RunConfig) -> bool:
        """One class per example: the logits score each label."""
        return True

    def check_data(self, splits: Splits, config: RunConfig) -> list[str]:
        data: TextClassificationData = config.data
        columns = {"text_column": data.text_column, "text_pair_column": data.text_pair_column, "label_column": data.label_column}
        require_columns(splits.train, columns, config, "train")
        require_columns(splits.eval, columns, config, "eval")
        for key in ("text_column", "text_pair_column"):
            for name in ("train", "eval") if getattr(data, key) else ():
                check_text_column(getattr(splits, name), config, key, name)
        names = label_names(splits.train, config, "train")
        check_eval_labels(names, label_names(splits.eval, config, "eval", used_only=True), config.where("data.label_column"))
        if len(names) < 2:
            raise FtrunError(f"{config.where('data.label_column')}: the train split has only the label {names[0]!r}; classification needs two or more")
        return names

    def text_of(self, split: Any, config: RunConfig) -> Iterable[str]:
        columns = [c for c in (config.data.text_column, config.data.text_pair_column) if c]
        for row in split.select_columns(columns).iter(batch_size=1000):
            for column in columns:
                yield from row[column]

    def inputs_of(self, split: Any, config: RunConfig) -> list[tuple[str, ...]]:
        columns = [c for c in (config.data.text_column, config.data.text_pair_column) if c]
        texts = split.select_columns(columns)[:]  # as lists: a Column reads row by row
        return list(zip(*(texts[column] for column in columns)))

    def labels_of(self, split: Any, config: RunConfig) -> list[list[str]]:
        column = config.data.label_column
        names = getattr(split.features[column], "names", None) or config.data.label_names
        values = split.select_columns([column])[:][column]
        return [[value if isinstance(value, str) else names[value] if names else str(value)] for value in values]

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        settings: TextClassificationData = config.data
        pairs = batch[settings.text_pair_column] if settings.text_pair_column else None
        encoded = data.tokenizer(batch[settings.text_column], pairs, truncation=True, max_length=settings.max_length)
        indexed = uses_indices(data.raw.train, config)
        label2id = data.label2id
        encoded["labels"] = [
            label2id[value if isinstance(value, str) else data.labels[value] if indexed else str(value)] for value in batch[settings.label_column]
        ]
        return encoded

    # -- metric stage ------------------------------------------------------------------

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

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> str | dict[str, str]:
        """A text, or a text pair as ``{"text": ..., "text_pair": ...}`` (what the pipeline takes)."""
        if isinstance(value, str):
            return value
        if (
            not isinstance(value, dict)
            or set(value) - {"text", "text_pair"}
            or not all(isinstance(value.get(key, ""), str) for key in ("text", "text_pair"))
            or "text" not in value
        ):
            raise FtrunError(f"{where}: expected a text, or a table with a text and an optional text_pair, got {value!r}")
        return value

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[str | dict[str, str]]:
        """Each row's text, or its text pair as ``read_input`` takes one."""
        settings: TextClassificationData = config.data
        texts = batch[settings.text_column]
        if not settings.text_pair_column:
            return list(texts)
        return [{"text": text, "text_pair": pair} for text, pair in zip(texts, batch[settings.text_pair_column])]

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
    if nested is not None:  # several labels per text, or a table: not this task's
        what = "lists" if isinstance(nested, list) else "tables"
        raise FtrunError(
            f"{where}: labels must be strings or integers; the {name} split's {column!r} holds {what} (several labels per text need a multi-label task plugin)"
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


TASK = TextClassificationTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
