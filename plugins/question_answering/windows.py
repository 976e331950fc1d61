"""Questions and contexts → windows of tokens: run_qa.py's prepare_train_features and prepare_validation_features.

A context longer than the model takes is cut into windows that overlap by ``stride`` tokens,
each with the whole question, so that an answer cut by one window's edge is whole in the next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase


def question_first(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the question is the first text of each pair: for tokenizers that pad on the left, the context is, as in run_qa.py."""
    return tokenizer.padding_side == "right"


def context_sequence(tokenizer: PreTrainedTokenizerBase) -> int:
    """The sequence id (0 or 1) of the context's tokens."""
    return 1 if question_first(tokenizer) else 0


def too_long_question(tokenizer: PreTrainedTokenizerBase, questions: list[str], max_length: int, stride: int) -> tuple[int, int] | None:
    """The first question (its index and its number of tokens) that leaves no more than ``stride`` tokens of a window for its context.

    The tokenizer cannot make windows for it: `tokenizers` panics, which no ``except Exception`` catches.
    """
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    for index, ids in enumerate(tokenizer(questions, add_special_tokens=False)["input_ids"]):
        if room - len(ids) <= stride:
            return index, len(ids)
    return None


def encode_windows(tokenizer: PreTrainedTokenizerBase, questions: list[str], contexts: list[str], max_length: int, stride: int) -> BatchEncoding:
    """Each (question, context) pair as one or more windows of at most ``max_length`` tokens.

    Only the context is cut; ``overflow_to_sample_mapping`` gives each window's pair, and
    ``offset_mapping`` each token's characters in its own text.
    """
    first = question_first(tokenizer)
    return tokenizer(
        questions if first else contexts,
        contexts if first else questions,
        truncation="only_second" if first else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def context_span(sequence_ids: list[int | None], context: int) -> tuple[int, int]:
    """The first and last token of a window's context."""
    first = sequence_ids.index(context)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(context)
    return first, last


def answer_positions(encoded: BatchEncoding, answers: list[dict[str, list]], tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The first and last token of each window's answer (the first answer of its example); the CLS token where the window lacks it.

    run_qa.py's training labels: a window that holds only part of the answer, or none of it,
    teaches the model to point at CLS there.
    """
    context = context_sequence(tokenizer)
    starts, ends = [], []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        input_ids = encoded["input_ids"][window]
        cls = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        answer = answers[encoded["overflow_to_sample_mapping"][window]]
        first, last = context_span(encoded.sequence_ids(window), context)
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            starts.append(cls)
            ends.append(cls)
            continue
        while first <= last and offsets[first][0] <= start_char:
            first += 1
        while offsets[last][1] >= end_char:
            last -= 1
        starts.append(first - 1)
        ends.append(last + 1)
    return starts, ends


def window_offsets(encoded: BatchEncoding, tokenizer: PreTrainedTokenizerBase) -> list[list[Any]]:
    """Each window's character offsets, ``None`` for every token that is not the context's: post-processing picks spans among the rest."""
    context = context_sequence(tokenizer)
    return [
        [offset if sequence == context else None for offset, sequence in zip(offsets, encoded.sequence_ids(window))]
        for window, offsets in enumerate(encoded["offset_mapping"])
    ]
