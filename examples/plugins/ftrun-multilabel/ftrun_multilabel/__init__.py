"""Multi-label text classification for ftrun: each text gets any number of named labels.

A third-party plugin, packaged on its own: the entry point in its pyproject.toml registers
the task, and ftrun gives it the whole run (manifest validation, ``ftrun check``, cached
tokenization, training, outputs, ``ftrun predict``). The model scores each label on its
own (a sigmoid per label, ``problem_type="multi_label_classification"``) and a text gets
every label that scores at least ``[metrics] threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from transformers import AutoModelForSequenceClassification

from ftrun import (
    FtrunError,
    Metrics,
    MetricsConfig,
    RunConfig,
    Splits,
    Task,
    TaskData,
    TextDataConfig,
    hookimpl,
    require_columns,
)

#: The ftrun versions this plugin is written for: ftrun refuses to load it into any other.
ftrun_requires = ">=0.1,<0.2"

#: A small sample of customer messages, each tagged with the topics it raises (see README.md).
DATA = Path(__file__).parent / "data"


class MultiLabelData(TextDataConfig):
    text_column: str = Field("text", description="Column holding the text.")
    labels_column: str = Field("labels", description="Column holding each text's labels: a list of names, possibly empty.")
    label_names: list[str] | None = Field(None, description="Every label, in the model's order; default: the train split's, sorted.")


class MultiLabelMetrics(MetricsConfig):
    threshold: float = Field(0.5, gt=0, lt=1, description="A text gets every label whose sigmoid score reaches this.")


def f1(average: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """F1 over every (text, label) decision (``micro``), or the mean of each label's F1 (``macro``)."""

    def score(references: np.ndarray, predicted: np.ndarray) -> float:
        from sklearn.metrics import f1_score  # imported when scoring, so that listing plugins stays quick

        return f1_score(references, predicted, average=average, zero_division=0)

    return score


def exact_match(references: np.ndarray, predicted: np.ndarray) -> float:
    """The share of texts whose whole set of labels is right."""
    return float(np.mean(np.all(references == predicted, axis=1)))


#: The metrics this task computes offline, by name.
SCORERS = {"f1_micro": f1("micro"), "f1_macro": f1("macro"), "exact_match": exact_match}


class MultiLabelTask(Task):
    name = "multilabel-classification"
    description = "tag a text with any number of named labels (a sigmoid per label)"
    pipeline_tag = "text-classification"
    auto_model = AutoModelForSequenceClassification
    data_config = MultiLabelData
    metrics_config = MultiLabelMetrics
    defaults = {
        "model": {"name": "bert-base-uncased"},
        "training": {"num_train_epochs": 3, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8},
        "metrics": {"names": ["f1_micro", "f1_macro"], "best": "f1_micro"},
        "predict": {"examples": ["My parcel never came and I was charged twice.", "I cannot log in to my account."]},
    }

    #: The package's sample of customer messages and a small BERT trained from scratch on it.
    demo = {
        "model": {
            "config": {
                "model_type": "bert",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "max_position_embeddings": 128,
            },
            "tokenizer_vocab_size": 1000,
        },
        "data": {"train_file": str(DATA / "train.jsonl"), "eval_file": str(DATA / "eval.jsonl"), "max_length": 64},
        # A model trained from scratch wants a higher rate.
        "training": {"num_train_epochs": 8, "learning_rate": 2e-3, "per_device_train_batch_size": 16},
    }

    # -- data stage ------------------------------------------------------------------

    def check_data(self, splits: Splits, config: RunConfig) -> list[str]:
        data: MultiLabelData = config.data
        columns = {"text_column": data.text_column, "labels_column": data.labels_column}
        require_columns(splits.train, columns, config, "train")
        require_columns(splits.eval, columns, config, "eval")
        where = config.where("data.labels_column")
        train = label_set(splits.train, data.labels_column, where, "train")
        evaluation = label_set(splits.eval, data.labels_column, where, "eval")
        names = data.label_names or sorted(train)
        unknown = sorted((train | evaluation) - set(names))
        if unknown:
            known = "data.label_names" if data.label_names else "the train split's labels"
            raise FtrunError(f"{where}: labels not among {known}: {', '.join(unknown[:10])}")
        if len(names) < 2:
            raise FtrunError(f"{where}: the data has {len(names)} label name(s); multi-label classification needs two or more")
        return names

    def text_of(self, split: Any, config: RunConfig) -> Iterable[str]:
        return split[config.data.text_column]

    def inputs_of(self, split: Any, config: RunConfig) -> list[tuple[str, ...]]:
        """The texts, for `ftrun check`'s empty-input, duplicate and train/eval overlap checks (and its token lengths)."""
        return [(text,) for text in split.select_columns([config.data.text_column])[:][config.data.text_column]]

    def labels_of(self, split: Any, config: RunConfig) -> list[list[str]]:
        """Each text's labels, for `ftrun check`'s label counts and the eval labels train lacks."""
        return split.select_columns([config.data.labels_column])[:][config.data.labels_column]

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        encoded = data.tokenizer(batch[config.data.text_column], truncation=True, max_length=config.data.max_length)
        # One float per label (1.0: the text has it), as the head's BCEWithLogitsLoss wants.
        encoded["labels"] = [[float(name in labels) for name in data.labels] for labels in batch[config.data.labels_column]]
        return encoded

    # -- head stage --------------------------------------------------------------------

    def head_kwargs(self, data: TaskData, config: RunConfig) -> dict[str, Any]:
        # The threshold is saved in config.json, so that predictions (here and in `ftrun predict`) use the one the run was scored with.
        return {**super().head_kwargs(data, config), "problem_type": "multi_label_classification", "multilabel_threshold": config.metrics.threshold}

    # -- metric stage ------------------------------------------------------------------

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        names = config.metrics.names or self.defaults["metrics"]["names"]
        unknown = [name for name in names if name not in SCORERS]
        if unknown:
            raise FtrunError(f"{config.where('metrics.names')}: unknown metric {unknown[0]!r} (this task computes {', '.join(SCORERS)})")
        best = config.metrics.best or names[0]
        if best not in names:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        # sigmoid(logit) >= threshold exactly when logit >= log(threshold / (1 - threshold)): no overflow.
        cut = np.log(config.metrics.threshold / (1 - config.metrics.threshold))

        def compute(prediction: Any) -> dict[str, float]:
            predicted = (prediction.predictions >= cut).astype(int)
            references = prediction.label_ids.astype(int)
            return {name: float(SCORERS[name](references, predicted)) for name in names}

        return Metrics(compute=compute, best=best)

    # -- predictions -------------------------------------------------------------------

    def predict(self, model: Any, tokenizer: Any, inputs: list[str], config: RunConfig) -> list[dict[str, Any]]:
        from transformers import pipeline

        threshold = getattr(model.config, "multilabel_threshold", 0.5)
        classify = pipeline(self.pipeline_tag, model=model, tokenizer=tokenizer, top_k=None, function_to_apply="sigmoid")
        return [
            {"labels": [s["label"] for s in scores if s["score"] >= threshold], "scores": {s["label"]: s["score"] for s in scores}}
            for scores in classify(inputs)
        ]

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        labels = [f"{label} ({prediction['scores'][label]:.3f})" for label in prediction["labels"]]
        return ", ".join(labels) or "no label"


def label_set(split: Any, column: str, where: str, name: str) -> set[str]:
    """Every label name a split uses; a row whose labels are not a list of names is an error."""
    names: set[str] = set()
    for labels in split[column]:
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise FtrunError(f"{where}: the {name} split has {labels!r}, not a list of label names")
        names.update(labels)
    return names


@hookimpl
def ftrun_register_tasks(register):
    register(MultiLabelTask())
