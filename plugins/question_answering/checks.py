"""What a split in the Hub's ``squad`` layout must hold, checked before anything is tokenized.

Each failure is one line naming the file (or the dataset's split), the row (counted from 1) and
its id: a wrong ``answer_start`` would otherwise train the model on the wrong span without a word.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftrun import FtrunError, RunConfig, require_columns, source_row, split_source, where_row

if TYPE_CHECKING:
    from datasets import Dataset

#: The manifest keys of the columns, and what each holds.
COLUMN_KEYS = ("id_column", "question_column", "context_column", "answers_column")


def check_split(split: Dataset, config: RunConfig, name: str) -> None:
    """Columns present; texts that are strings; answers whose texts are at their ``answer_start``; ids unique."""
    settings = config.data
    require_columns(split, {key: getattr(settings, key) for key in COLUMN_KEYS}, config, name)
    columns = split.select_columns([getattr(settings, key) for key in COLUMN_KEYS])[:]  # as lists: a Column reads row by row
    rows = zip(*(columns[getattr(settings, key)] for key in COLUMN_KEYS))
    seen: dict[Any, int] = {}
    for row, (example_id, question, context, answers) in enumerate(rows):
        if example_id in seen:
            twice = f"rows {source_row(split, seen[example_id])} and {source_row(split, row)}"
            raise FtrunError(f"{config.where('data.id_column')}: {split_source(config, name)} has the id {example_id!r} twice ({twice})")
        seen[example_id] = row
        where = f"{where_row(config, split, name, row)} (id {example_id!r})"
        if not isinstance(question, str):
            raise FtrunError(f"{config.where('data.question_column')}: {where} has no question text, but {question!r}")
        if not isinstance(context, str) or not context.strip():
            raise FtrunError(f"{config.where('data.context_column')}: {where} has no context text, but {context!r}")
        check_answers(answers, context, config, where)


def check_answers(answers: Any, context: str, config: RunConfig, where: str) -> None:
    """``{"text": [...], "answer_start": [...]}``: as many starts as texts, at least one, each text found at its start."""
    prefix = f"{config.where('data.answers_column')}: {where}"
    texts = answers.get("text") if isinstance(answers, dict) else None
    starts = answers.get("answer_start") if isinstance(answers, dict) else None
    if not (isinstance(texts, list) and isinstance(starts, list) and len(texts) == len(starts)):
        raise FtrunError(f'{prefix}: answers must be {{"text": [...], "answer_start": [...]}}, as many starts as texts; got {answers!r:.120}')
    if not texts:
        raise FtrunError(f"{prefix} has no answer (unanswerable questions, as in SQuAD v2, are not supported)")
    for text, start in zip(texts, starts):
        if not (isinstance(text, str) and text and isinstance(start, int) and start >= 0):
            raise FtrunError(f"{prefix}: an answer must be a text and its start in the context; got {text!r} at {start!r}")
        found = context[start : start + len(text)]
        if found != text:
            raise FtrunError(f"{prefix}: answer {text!r} is not at answer_start {start} of its context, which has {found!r} there")
