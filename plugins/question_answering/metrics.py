"""SQuAD's exact match and F1, offline, with torchmetrics (what run_qa.py loads from the Hub through evaluate).

An answer is scored against each of its example's reference answers, and keeps its best
score, after SQuAD's normalisation (lowercase, no punctuation, no articles, single spaces).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import EvalPrediction

#: The metrics this task computes, from 0 to 100 as SQuAD and run_qa.py report them.
METRICS = ("exact_match", "f1")


def squad_metrics(names: list[str]) -> Callable[[EvalPrediction], dict[str, float]]:
    """``compute`` of one answer per example (``predictions``) against its reference texts (``label_ids``)."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        from torchmetrics.functional.text import squad

        answers = [{"id": str(i), "prediction_text": answer["answer"]} for i, answer in enumerate(prediction.predictions)]
        references = [{"id": str(i), "answers": {"text": list(texts)}} for i, texts in enumerate(prediction.label_ids)]
        scores = squad(answers, references)
        return {name: float(scores[name]) for name in names}

    return compute
