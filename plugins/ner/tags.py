"""Entity tags: which tagging schemes are accepted, and word tags spread over sub-tokens."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A tag of IOB1, IOB2 or IOBES: O, or a B-/I-/E-/S- prefix and an entity type.
TAG = re.compile(r"O|[BIES]-\S+")
IGNORED = -100
"""The label id that the loss and the metric skip (PyTorch's cross-entropy ignore_index)."""


def invalid_tags(tags: Iterable[str]) -> list[str]:
    """The tags that are not IOB1 / IOB2 / IOBES, sorted."""
    return sorted(tag for tag in tags if not TAG.fullmatch(tag))


def uses_iobes(labels: Iterable[str]) -> bool:
    """IOBES data has E- or S- tags; seqeval must then parse it with that scheme, strictly."""
    return any(label.startswith(("E-", "S-")) for label in labels)


def entity_types(labels: Iterable[str]) -> list[str]:
    """The entity types of a tag set (PER, LOC, ...), sorted."""
    return sorted({label[2:] for label in labels if label != "O"})


def continuation_ids(labels: list[str]) -> list[int]:
    """For each label id, the label of a word's later sub-tokens: I-X after B-X, else the same.

    As run_ner.py does with ``label_all_tokens``: a word's second sub-token does not begin an entity.
    """
    index = {label: i for i, label in enumerate(labels)}
    return [index.get("I-" + label[2:], i) if label.startswith("B-") else i for i, label in enumerate(labels)]


def align_labels(word_ids: list[int | None], tag_ids: list[int], continuation: list[int] | None = None) -> list[int]:
    """Word-level tag ids spread over a tokenized sentence's sub-tokens.

    Special tokens ([CLS], [SEP]) get IGNORED; the first sub-token of each word gets the
    word's tag; later sub-tokens get IGNORED, or with ``continuation`` (``label_all_tokens``)
    the tag it maps the word's tag to.
    """
    labels = []
    previous = None
    for word in word_ids:
        if word is None:
            labels.append(IGNORED)
        elif word != previous:
            labels.append(tag_ids[word])
        else:
            labels.append(continuation[tag_ids[word]] if continuation else IGNORED)
        previous = word
    return labels
