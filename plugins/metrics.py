"""Classification metrics that work offline (scikit-learn), with any other name sent to `evaluate`."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ftrun import FtrunError
from ftrun.errors import first_line

OFFLINE = ("accuracy", "f1", "precision", "recall")


def classification_metrics(names: list[str], num_labels: int, where: str) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """A function of (predicted ids, reference ids) computing ``names``.

    F1, precision and recall are binary for two classes (the second label is positive)
    and macro-averaged otherwise. Names outside :data:`OFFLINE` are loaded now with
    ``evaluate.load`` (the Hub or a local path), so a bad name fails before training.
    """
    from sklearn import metrics as sk

    average = "binary" if num_labels == 2 else "macro"
    scorers = {
        "accuracy": sk.accuracy_score,
        "f1": lambda y, p: sk.f1_score(y, p, average=average, zero_division=0),
        "precision": lambda y, p: sk.precision_score(y, p, average=average, zero_division=0),
        "recall": lambda y, p: sk.recall_score(y, p, average=average, zero_division=0),
    }
    loaded = {name: _load(name, where) for name in names if name not in scorers}

    def compute(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in names:
            if name in scorers:
                out[name] = float(scorers[name](references, predictions))
            else:
                out.update(loaded[name].compute(predictions=predictions, references=references))
        return out

    return compute


def _load(name: str, where: str):
    import evaluate

    try:
        return evaluate.load(name)
    except Exception as exc:  # evaluate raises many kinds of error for an unknown or unreachable metric
        raise FtrunError(
            f"{where}: cannot load metric {name!r} ({first_line(exc)}); offline metrics are {', '.join(OFFLINE)}"
        ) from exc
