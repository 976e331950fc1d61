"""Metrics that work offline (classification with scikit-learn, generated text with sacrebleu and rouge-score),
with any other name sent to `evaluate`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ftrun import FtrunError, first_line

#: A score of (references, predictions).
Scorer = Callable[[Any, Any], float]


def classification_metrics(names: list[str], num_labels: int, where: str) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """A function of (predicted ids, reference ids) computing ``names``.

    F1, precision and recall are binary for two classes (the second label is positive)
    and macro-averaged otherwise.
    """
    from sklearn import metrics as sk

    average = "binary" if num_labels == 2 else "macro"
    scorers: dict[str, Scorer] = {
        "accuracy": sk.accuracy_score,
        "f1": lambda y, p: sk.f1_score(y, p, average=average, zero_division=0),
        "precision": lambda y, p: sk.precision_score(y, p, average=average, zero_division=0),
        "recall": lambda y, p: sk.recall_score(y, p, average=average, zero_division=0),
    }
    return _computed(names, scorers, where)


#: The ROUGE variants of rouge-score, as run_summarization.py reports them.
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def generation_metrics(names: list[str], where: str) -> Callable[[list[str], list[str]], dict[str, float]]:
    """A function of (generated texts, reference texts) computing ``names``.

    BLEU and chrF are sacrebleu's corpus scores, from 0 to 100 as run_translation.py reports
    them; ROUGE-1, -2, -L and -Lsum are rouge-score's F-measures with Porter stemming, averaged
    over the examples and scaled to 0 to 100 as run_summarization.py reports them.
    """
    from sacrebleu.metrics import BLEU, CHRF

    scorers: dict[str, Scorer] = {
        "bleu": lambda references, texts: BLEU().corpus_score(texts, [references]).score,
        "chrf": lambda references, texts: CHRF().corpus_score(texts, [references]).score,
        **{kind: lambda references, texts, kind=kind: rouge(kind, texts, references) for kind in ROUGE},
    }
    return _computed(names, scorers, where)


def rouge(kind: str, texts: list[str], references: list[str]) -> float:
    """The mean ROUGE F-measure of ``texts`` against ``references`` (0 to 100).

    The mean of the examples' scores, which evaluate's ``rouge`` approximates by bootstrap.
    ROUGE-Lsum reads one sentence a line: run_summarization.py splits sentences with nltk's
    punkt model, a download; here at sentence-ending punctuation followed by a space.
    """
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    if kind == "rougeLsum":
        texts, references = ([SENTENCE_END.sub("\n", text) for text in group] for group in (texts, references))
    scores = [scorer.score(reference, text)[kind].fmeasure for text, reference in zip(texts, references)]
    return 100 * float(np.mean(scores)) if scores else 0.0


#: Where one sentence ends and the next starts, for ROUGE-Lsum.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _computed(names: list[str], scorers: dict[str, Scorer], where: str) -> Callable[[Any, Any], dict[str, float]]:
    """A function of (predictions, references) computing ``names`` with ``scorers``, offline.

    Other names are loaded now with ``evaluate.load`` (the Hub or a local path), so that a
    bad name fails before training.
    """
    loaded = {name: _load(name, where, offline=list(scorers)) for name in names if name not in scorers}

    def compute(predictions: Any, references: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in names:
            if name in scorers:
                out[name] = float(scorers[name](references, predictions))
            else:
                out.update(loaded[name].compute(predictions=predictions, references=references))
        return out

    return compute


def _load(name: str, where: str, offline: list[str]):
    import evaluate

    try:
        return evaluate.load(name)
    except Exception as exc:  # evaluate raises many kinds of error for an unknown or unreachable metric
        raise FtrunError(f"{where}: cannot load metric {name!r} ({first_line(exc)}); offline metrics are {', '.join(offline)}") from exc
