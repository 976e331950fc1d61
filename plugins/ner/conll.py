"""The classic CoNLL text format: one token per line, its tag in the last column.

::

    -DOCSTART- -X- -X- O

    EU NNP B-NP B-ORG
    rejects VBZ B-VP O
    ...

Columns are separated by whitespace; the token is the first column and the tag the last,
so CoNLL-2003's four columns and plain ``token tag`` files both read. A blank line ends a
sentence; ``-DOCSTART-`` lines (document boundaries) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

#: File suffixes read as CoNLL text; other files go to the core's readers (csv, json, parquet, ...).
SUFFIXES = (".conll", ".iob", ".bio", ".txt")
#: The columns a CoNLL file gives: the NER task's default column names.
TOKENS, TAGS = "tokens", "ner_tags"


def is_conll(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def sentences(lines: Iterable[str]) -> Iterator[dict[str, list[str]]]:
    """The sentences of CoNLL lines as ``{"tokens": [...], "ner_tags": [...]}``.

    A line with a single column raises ValueError naming its line number.
    """
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(lines, 1):
        columns = line.split()
        if columns and columns[0] == "-DOCSTART-":
            continue
        if not columns:
            if tokens:
                yield {TOKENS: tokens, TAGS: tags}
            tokens, tags = [], []
            continue
        if len(columns) < 2:
            raise ValueError(f"line {number}: expected a token and its tag separated by whitespace, got {line.strip()!r}")
        tokens.append(columns[0])
        tags.append(columns[-1])
    if tokens:
        yield {TOKENS: tokens, TAGS: tags}


def read_conll(path: Path) -> Dataset:
    """A CoNLL file as a split, kept in the datasets cache under a hash of its sentences.

    An Arrow-backed split (rather than one in memory) lets the core cache its tokenization
    and a tokenizer trained on it, exactly as for the other file formats. The hash of the
    sentences follows any change to the file.
    """
    from datasets import Dataset, Features, Sequence, Value

    from ftrun import text_lines

    rows = list(sentences(text_lines(path)))  # a line that is not UTF-8 is refused by its number
    if not rows:  # datasets' own message for this names no file and no cause
        raise ValueError("no sentences (expected a token and its tag per line, a blank line between sentences)")
    features = Features({TOKENS: Sequence(Value("string")), TAGS: Sequence(Value("string"))})
    return Dataset.from_generator(_rows, features=features, gen_kwargs={"rows": rows})


def _rows(rows: list[dict[str, list[str]]]) -> Iterator[dict[str, list[str]]]:
    yield from rows
