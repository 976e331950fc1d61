"""Label names, shared by the tasks that predict named labels (text classification, NER).

Labels come as strings (their own names), as integers with a ``ClassLabel`` feature's names,
or as integers named by the task's ``label_names`` key; the saved model always gets names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator

from ftrun import FtrunError, RunConfig


def unique_names(names: list[str] | None) -> list[str] | None:
    """``label_names`` name each class once: a name twice would make two classes one label, in training and in the saved model's label2id."""
    for index, name in enumerate(names or ()):
        if name in names[:index]:
            raise ValueError(f"{name!r} is named twice: each label needs a name of its own")
    return names


#: A ``[data] label_names`` key: names of integer labels 0..N-1, each once.
LabelNames = Annotated[list[str] | None, AfterValidator(unique_names)]


def first_missing(labels: Iterable[Any]) -> int | None:
    """The index of the first missing label, if any: null (JSON null, a key missing from a row) or empty (a csv's empty cell).

    No label name is empty: an empty string means the row was left unlabelled.
    """
    return next((index for index, value in enumerate(labels) if value is None or value == ""), None)


def named_labels(values: Counter, class_names: list[str] | None, config: RunConfig, key: str, split: str, used_only: bool = False) -> list[str] | None:
    """The label names of one split, from the count of each label value in it.

    ``class_names`` are the dataset's ``ClassLabel`` names, if any; ``key`` is the task's
    ``[data]`` key of the label column, for messages. Strings are their own names, sorted;
    integers index ``class_names`` or ``config.data.label_names``: all of those names, or with
    ``used_only`` (for an eval split) the ones the values use. ``None`` for integers with no
    names, which each task treats its own way. Missing labels are the caller's to refuse
    first (:func:`first_missing`), naming their row.
    """
    where = config.where(f"data.{key}")
    kinds = {type(value).__name__ for value in values}
    if kinds - {"str", "int"} or len(kinds) > 1:
        raise FtrunError(f"{where}: labels must be all strings or all integers; the {split} split has {', '.join(sorted(kinds))}")
    if kinds == {"str"}:
        return sorted(values)
    names = class_names or config.data.label_names
    if names is None:
        return None
    bad = sorted(value for value in values if not 0 <= value < len(names))
    if bad:
        source = "the dataset's label names" if class_names else "label_names"
        raise FtrunError(f"{where}: the {split} split has label {bad[0]}, outside the {len(names)} of {source}")
    return [names[value] for value in values] if used_only else list(names)


def check_eval_labels(train: Iterable[str], evaluation: Iterable[str], where: str, what: str = "labels") -> None:
    """A label only the eval split has can never be predicted: fail before training instead."""
    unknown = sorted(set(evaluation) - set(train))
    if unknown:
        raise FtrunError(f"{where}: eval {what} missing from the train split: {', '.join(map(repr, unknown[:10]))}")
