"""Start and end logits of each window → one answer per example: run_qa.py's postprocess_qa_predictions, exact.

run_qa.py looks only at pairs of the ``n_best_size`` (20) highest start and end logits and
drops the invalid ones (in the question, reversed, too long); when the top logits fall in
the question, no pair may be valid, or the best valid span is missed. Here every valid span
of every window is scored, in numpy, and the best is taken: exactly the span of the highest
start + end logit with start <= end, at most ``max_answer_length`` tokens, inside the context.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np


def window_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: Sequence[Any], max_answer_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Every valid span of one window: its first and last token and its score (start + end logit); ``None`` without context.

    ``offsets`` are the window's, ``None`` outside the context; the logits may be longer
    (padded across batches). Spans come in order of their first token, then their last.
    """
    context = np.array([token for token, offset in enumerate(offsets) if offset is not None], dtype=np.int64)
    if not len(context):
        return None
    # In float64, where the sum of two float32 logits is exact: ties are ties whatever adds them.
    start = start_logits[context].astype(np.float64)
    end = end_logits[context].astype(np.float64)
    # Span (i, i + d) of the context's tokens, for the d that can keep within max_answer_length.
    first = np.repeat(np.arange(len(context)), max_answer_length)
    last = first + np.tile(np.arange(max_answer_length), len(context))
    inside = last < len(context)
    first, last = first[inside], last[inside]
    valid = context[last] - context[first] + 1 <= max_answer_length
    first, last = first[valid], last[valid]
    return context[first], context[last], start[first] + end[last]


def best_answer(windows: list[tuple[np.ndarray, np.ndarray, Sequence[Any]]], context: str, max_answer_length: int) -> dict[str, Any]:
    """The best span over all ``(start_logits, end_logits, offsets)`` windows of one example, as text of its context.

    ``score`` is the span's probability among all valid spans of the example (a softmax of
    their scores); on a tie, the first window's, then the earliest span wins. An example
    without context gets the empty answer.
    """
    best: tuple[float, int, int, Sequence[Any]] | None = None
    scores = []
    for start_logits, end_logits, offsets in windows:
        spans = window_spans(start_logits, end_logits, offsets, max_answer_length)
        if spans is None:
            continue
        firsts, lasts, span_scores = spans
        top = int(np.argmax(span_scores))
        if best is None or span_scores[top] > best[0]:
            best = (float(span_scores[top]), int(firsts[top]), int(lasts[top]), offsets)
        scores.append(span_scores)
    if best is None:
        return {"answer": "", "score": 0.0, "start": 0, "end": 0}
    score, first, last, offsets = best
    every = np.concatenate(scores)
    probability = 1.0 / float(np.sum(np.exp(every - score)))
    start, end = offsets[first][0], offsets[last][1]
    return {"answer": context[start:end], "score": probability, "start": int(start), "end": int(end)}


def best_answers(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    example_ids: Sequence[Any],
    offsets: Sequence[Sequence[Any]],
    ids: Sequence[Any],
    contexts: Sequence[str],
    max_answer_length: int,
) -> list[dict[str, Any]]:
    """One answer per example (``ids``, ``contexts``), from the logits of every window (``example_ids``, ``offsets``), in the windows' order."""
    windows = defaultdict(list)
    for index, example_id in enumerate(example_ids):
        windows[example_id].append((start_logits[index], end_logits[index], offsets[index]))
    return [best_answer(windows[example_id], context, max_answer_length) for example_id, context in zip(ids, contexts)]
