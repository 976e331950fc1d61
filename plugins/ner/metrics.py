"""Entity-level precision, recall and F1 with seqeval (offline), overall and per entity type.

An entity counts as found only when its type and its whole span are right, as in the
CoNLL shared tasks' conlleval script; accuracy is per labelled token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .tags import IGNORED, entity_types, uses_iobes

if TYPE_CHECKING:
    from transformers import EvalPrediction

#: The metrics this task computes; all but accuracy are also given per entity type (PER_f1, ...).
METRICS = ("precision", "recall", "f1", "accuracy")
#: seqeval's names for them in its classification report.
REPORT_KEYS = {"precision": "precision", "recall": "recall", "f1": "f1-score"}


def metric_keys(names: list[str], labels: list[str]) -> list[str]:
    """Every key the metric function returns for ``names``: overall, then per entity type."""
    per_type = [name for name in names if name in REPORT_KEYS]
    return list(names) + [f"{kind}_{name}" for kind in entity_types(labels) for name in per_type]


def entity_scores(true: list[list[str]], predicted: list[list[str]], names: list[str], labels: list[str]) -> dict[str, float]:
    """seqeval's scores of tag sequences; IOBES tag sets are parsed strictly as IOBES.

    Every entity type of ``labels`` gets its scores, 0.0 when the eval split has none, so
    that each evaluation reports the same keys.
    """
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOBES

    scheme = {"mode": "strict", "scheme": IOBES} if uses_iobes(labels) else {}
    report = classification_report(true, predicted, output_dict=True, zero_division=0, **scheme)
    scores = {}
    for key in metric_keys(names, labels):
        kind, _, name = key.rpartition("_")  # "PER_f1" -> PER, f1; "f1" -> "", f1 (overall)
        if name == "accuracy":
            scores[key] = float(accuracy_score(true, predicted))
        else:
            scores[key] = float(report.get(kind or "micro avg", {}).get(REPORT_KEYS[name], 0.0))
    return scores


def entity_metrics(names: list[str], labels: list[str]) -> Callable[[EvalPrediction], dict[str, float]]:
    """The Trainer's ``compute_metrics``: argmax over the logits, ignored positions dropped."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        return entity_scores(*tag_sequences(prediction, labels), names, labels)

    return compute


def tag_sequences(prediction: EvalPrediction, labels: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """The true and the predicted tags of each sentence's labelled words: argmax over the logits, ignored positions dropped."""
    guesses = np.argmax(prediction.predictions, axis=-1)
    true, predicted = [], []
    for guess, gold in zip(guesses, prediction.label_ids):
        kept = gold != IGNORED
        true.append([labels[i] for i in gold[kept]])
        predicted.append([labels[i] for i in guess[kept]])
    return true, predicted
