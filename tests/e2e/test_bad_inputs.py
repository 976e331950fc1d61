"""Every bad input a user can give: exit code 2, one line naming what and where, nothing written.

Each case fails before training, so the file runs in seconds. ``run`` and ``check`` must
agree: ``check`` exists to find exactly these problems without a run.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ftrun import FtrunError
from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.testing import TINY_BERT, TINY_ROWS, TINY_T5, TINY_TRAINING, plugins_of_other_distributions, write_jsonl

#: How an unknown-task error lists the installed tasks.
# As ftrun's own tests see them: another distribution's plugins are blocked (ftrun_no_installed_plugins).
INSTALLED = "installed: " + ", ".join(sorted(get_plugin_manager(blocked=plugins_of_other_distributions()).tasks()))

MISSING = object()
"""A value that removes the key from the manifest."""


@pytest.fixture
def tables(reviews) -> dict:
    """The tables of a good offline manifest, for a case to spoil."""
    train, evaluation = reviews
    return {
        "task": "text-classification",
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
        "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
        "training": dict(TINY_TRAINING),
    }


def spoil(tables: dict, dotted: str, value) -> dict:
    """``tables`` with ``section.key`` (or a top-level key) set to ``value``, or removed."""
    *sections, key = dotted.split(".")
    node = tables
    for section in sections:
        node = node.setdefault(section, {})
    if value is MISSING:
        node.pop(key, None)
    else:
        node[key] = value
    return tables


def run_and_check(fails, manifest: Path, words: tuple[str, ...]) -> None:
    """The same one-line error from a run and from ``ftrun check``."""
    ran = fails("--manifest", manifest, "--output-dir", manifest.parent / "out", words=words)
    checked = fails("check", "--manifest", manifest, words=words)
    assert ran == checked


# -- the manifest file itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(b'task = "text-classification"\n[training\nnum_train_epochs = 1\n', ("run.toml", "invalid TOML", "line 2"), id="malformed-toml"),
        pytest.param('task = "text-classification"\n# caf\u00e9\n'.encode("latin-1"), ("run.toml", "not UTF-8"), id="not-utf8"),
    ],
)
def test_unreadable_manifest(fails, tmp_path, content, words):
    manifest = tmp_path / "run.toml"
    manifest.write_bytes(content)
    run_and_check(fails, manifest, words)


def test_missing_manifest(fails, tmp_path):
    run_and_check(fails, tmp_path / "nope.toml", ("nope.toml", "not found"))


def test_manifest_that_is_a_directory(fails, tmp_path):
    (tmp_path / "run.toml").mkdir()
    run_and_check(fails, tmp_path / "run.toml", ("run.toml", "is a directory"))


# -- keys and values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        # Unknown keys, with a suggestion.
        pytest.param("training.num_epochs", 1, ("training.num_epochs", "unknown key", "did you mean num_train_epochs?"), id="unknown-training-key"),
        pytest.param("data.text_colum", "text", ("data.text_colum", "unknown key", "did you mean text_column?"), id="unknown-data-key"),
        pytest.param("trainer", {"num_train_epochs": 1}, ("unknown key", "did you mean training?"), id="unknown-table"),
        # Wrong types: never coerced.
        pytest.param("training.num_train_epochs", "three", ("training.num_train_epochs", "expected float, got a string 'three'"), id="epochs-string"),
        pytest.param("data.max_train_samples", "10", ("data.max_train_samples", "integer", "'10'"), id="max-samples-string"),
        pytest.param("data.text_column", 3, ("data.text_column", "string", "got 3"), id="column-number"),
        pytest.param("model.config", 3, ("model.config", "got 3"), id="model-config-number"),
        pytest.param("training", 3, ("expected a table",), id="training-not-table"),
        # Negative numbers.
        pytest.param("data.max_train_samples", -5, ("data.max_train_samples", "greater than 0", "-5"), id="negative-max-samples"),
        pytest.param("training.learning_rate", -1, ("training.learning_rate", "must not be negative", "-1"), id="negative-learning-rate"),
        # Absurd numbers: accepted by the libraries, failing (or doing nothing) long after the start.
        pytest.param("training.per_device_train_batch_size", 0, ("must be greater than 0, got 0",), id="zero-batch-size"),
        pytest.param("training.gradient_accumulation_steps", 0, ("must be greater than 0, got 0",), id="zero-accumulation"),
        pytest.param("data.max_length", 100_000, ("100000 tokens is more than the model takes (128)",), id="max-length-beyond-the-model"),
        pytest.param("model.config", {**TINY_BERT, "hidden_size": -32}, (".hidden_size: must be greater than 0, got -32",), id="negative-model-size"),
        pytest.param("model.config", {**TINY_BERT, "num_attention_heads": 0}, (".num_attention_heads: must be greater than 0, got 0",), id="zero-heads"),
        pytest.param("data.label_names", ["pos", "pos"], ("'pos' is named twice",), id="duplicate-label-names"),
        # Numbers that are no numbers: TOML spells nan and inf.
        pytest.param("training.learning_rate", float("nan"), ("must be a finite number, got nan",), id="nan-learning-rate"),
        pytest.param("training.learning_rate", float("inf"), ("must be a finite number, got inf",), id="inf-learning-rate"),
        pytest.param("training.weight_decay", float("-inf"), ("must be a finite number, got -inf",), id="minus-inf-weight-decay"),
        pytest.param(
            "model.config", {**TINY_BERT, "layer_norm_eps": float("nan")}, (".layer_norm_eps: must be a finite number, got nan",), id="nan-in-model-config"
        ),
        # Hostile values: a manifest runs no code but the plugins it names, and writes nowhere it should not.
        pytest.param("metrics.names", ["someone/metric"], ("'someone/metric'", "metric script from outside evaluate"), id="metric-script-from-the-hub"),
        pytest.param("metrics.names", ["./evil.py"], ("'./evil.py'", "metric script from outside evaluate"), id="metric-script-on-disk"),
        pytest.param("model.trust_remote_code", "yes", ("model.trust_remote_code", "boolean", "'yes'"), id="trust-remote-code-string"),
        pytest.param("data.train_file", "/etc/passwd", ("passwd", "unsupported file type"), id="system-file-as-data"),
        pytest.param("output_dir", 3, ("expected a string, got an integer",), id="output-dir-number"),
        pytest.param("resume", 3, ("expected true, false or a checkpoint path, got an integer",), id="resume-number"),
        # Processes to start.
        pytest.param("nproc", 0, ("expected a positive number of processes", "got 0"), id="nproc-zero"),
        pytest.param("nproc", "2", ("expected a positive number of processes", "got '2'"), id="nproc-string"),
        # The task.
        pytest.param("task", "nope", ("unknown task 'nope'", INSTALLED), id="unknown-task"),
        # Data files.
        pytest.param("data.train_file", "no-such.jsonl", ("data.train_file", "no-such.jsonl", "does not exist"), id="missing-train-file"),
        pytest.param("data.eval_file", "no-such.jsonl", ("data.eval_file", "no-such.jsonl", "does not exist"), id="missing-eval-file"),
        pytest.param("data.eval_file", MISSING, ("data.eval_file", "needed as well"), id="train-file-alone"),
        pytest.param("data.train_file", ".", ("data.train_file", "is a directory"), id="train-file-directory"),
        pytest.param("data.eval_file", "", ("data.eval_file", "at least 1 character, got ''"), id="empty-eval-file-name"),
        # Columns: the message lists the columns there are.
        pytest.param("data.text_column", "body", ("data.text_column", "'body'", "columns: text, label"), id="missing-text-column"),
        pytest.param("data.label_column", "sentiment", ("data.label_column", "'sentiment'", "columns: text, label"), id="missing-label-column"),
        pytest.param("data.text_pair_column", "hypothesis", ("data.text_pair_column", "'hypothesis'", "columns: text, label"), id="missing-pair-column"),
    ],
)
def test_bad_manifest_value(fails, tables, ftrun_manifest, key, value, words):
    manifest = ftrun_manifest(spoil(tables, key, value))
    run_and_check(fails, manifest, (f"run.toml: {key}", *words))


def test_causal_lm_blocks_beyond_the_model_s_positions(fails, ftrun_manifest, tmp_path):
    from ftrun.testing import TINY_GPT2

    rows = [{"text": f"A line of text number {i}."} for i in range(16)]
    tables = {
        "task": "causal-lm",
        "model": {"config": TINY_GPT2, "tokenizer_vocab_size": 300},  # n_positions = 128, GPT-2's name for max_position_embeddings
        "data": {"train_file": str(write_jsonl(tmp_path / "t.jsonl", rows)), "eval_file": str(write_jsonl(tmp_path / "e.jsonl", rows)), "block_size": 512},
        "training": dict(TINY_TRAINING),
    }
    run_and_check(fails, ftrun_manifest(tables), ("run.toml: data.block_size: blocks of 512 tokens are more than the model takes (128 positions)",))


def test_unsupported_data_file_type(fails, tables, ftrun_manifest, tmp_path):
    shutil.copy(tables["data"]["train_file"], tmp_path / "train.txt")
    shutil.copy(tables["data"]["eval_file"], tmp_path / "eval.txt")
    tables["data"].update(train_file="train.txt", eval_file="eval.txt")
    run_and_check(fails, ftrun_manifest(tables), ("run.toml: data.train_file:", "train.txt", "unsupported file type", ".csv"))


# -- the model ---------------------------------------------------------------------------------


def test_model_path_that_does_not_exist(fails, tables, ftrun_manifest):
    tables["model"] = {"name": "./no/such/model"}
    run_and_check(fails, ftrun_manifest(tables), ("run.toml: model.name:", "no/such/model", "does not exist"))


def test_model_directory_without_weights(fails, tables, ftrun_manifest, ftrun_tiny_bert, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for path in ftrun_tiny_bert.iterdir():
        if not path.name.endswith((".safetensors", ".bin")):  # config.json and the tokenizer's files
            shutil.copy(path, model / path.name)
    tables["model"] = {"name": "./model"}
    manifest = ftrun_manifest(tables)
    # A run gets as far as loading the weights, so the message is transformers' own.
    fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=("run.toml: model.name:", "model", "safetensors"))
    fails("check", "--manifest", manifest, words=("run.toml: model.name:", "model", "no model weights"))


# -- the data's content ------------------------------------------------------------------------


def rows(*labels, text="A film.") -> list[dict]:
    return [{"text": text, "label": label} for label in labels]


def write_csv(path: Path, records: list[dict]) -> Path:
    lines = [",".join(records[0])] + [",".join(str(v) for v in r.values()) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("suffix", "train", "evaluation", "key", "words"),
    [
        pytest.param(".jsonl", [], rows("neg", "pos"), "data.train_file", ("bad-train.jsonl is empty",), id="empty-train"),
        pytest.param(".jsonl", rows("neg", "pos"), [], "data.eval_file", ("bad-eval.jsonl is empty",), id="empty-eval"),
        pytest.param(
            ".jsonl", rows("neg", "pos"), rows("neg", "meh"), "data.label_column", ("eval labels missing from the train split: 'meh'",), id="unseen-eval-label"
        ),
        pytest.param(".jsonl", rows("neg", 1, "pos"), rows("neg", "pos"), "data.label_column", ("all strings or all integers",), id="mixed-labels-jsonl"),
        pytest.param(".csv", rows("neg", "pos", text=123), rows("neg", "pos", text=456), "data.text_column", ("'text'", "not text"), id="numeric-text-csv"),
        pytest.param(".jsonl", rows("neg", "pos", text=3), rows("neg", "pos", text=4), "data.text_column", ("'text'", "not text"), id="numeric-text-jsonl"),
        pytest.param(".jsonl", rows("neg", "neg"), rows("neg", "neg"), "data.label_column", ("only the label 'neg'",), id="single-label"),
        pytest.param(".jsonl", rows("pos"), rows("pos"), "data.label_column", ("only the label 'pos'",), id="one-row-train"),
        pytest.param(
            ".jsonl",
            [{"text": "A film.", "label": ["pos"]}] * 2,
            rows("neg", "pos"),
            "data.label_column",
            ("labels must be strings or integers", "'label' holds lists", "multi-label"),
            id="list-labels",
        ),
    ],
)
def test_bad_data(fails, tables, ftrun_manifest, tmp_path, suffix, train, evaluation, key, words):
    write = write_csv if suffix == ".csv" else write_jsonl
    tables["data"].update(
        train_file=str(write(tmp_path / f"bad-train{suffix}", train)),
        eval_file=str(write(tmp_path / f"bad-eval{suffix}", evaluation)),
    )
    run_and_check(fails, ftrun_manifest(tables), (f"run.toml: {key}:", *words))


# -- the catalogue: every way a data file can be wrong, for every task and format ---------------
#
# Each case writes the files of one run (the task's good train and eval files, which it may
# replace) and its [data] settings; the run and `ftrun check` must both refuse it with the same
# line. docs/reliability.md's "Bad data" section says which of these ftrun refuses and what it accepts.

GOOD_ROWS = TINY_ROWS
TC_ROWS, NER_ROWS, PAIRS, QA_ROWS = (TINY_ROWS[task] for task in ("text-classification", "ner", "translation", "question-answering"))
MODELS = {
    "text-classification": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
    "ner": {"config": TINY_BERT, "tokenizer_vocab_size": 100},
    "translation": {"config": TINY_T5, "tokenizer_vocab_size": 100},
    "question-answering": {"config": TINY_BERT, "tokenizer_vocab_size": 100},
}
TASK_DATA = {"translation": {"source_lang": "en", "target_lang": "de"}, "question-answering": {"max_length": 64, "doc_stride": 16}}


def jsonl(*rows: dict) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def parquet(columns: dict) -> Callable[[Path], None]:
    """Write a parquet file of ``columns`` (Arrow arrays or lists)."""

    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), path)

    return write


def not_utf8_texts(path: Path) -> None:
    """A parquet file whose second text holds a byte that is not UTF-8: written below pyarrow's checks, as some writers do."""
    import pyarrow as pa

    offsets = pa.py_buffer(b"".join(n.to_bytes(4, "little") for n in (0, 7, 12, 17, 22)))
    texts = pa.Array.from_buffers(pa.string(), 4, [None, offsets, pa.py_buffer(b"A film.caf\xe9 Dull.Good.")])
    parquet({"text": texts, "label": ["pos", "neg", "pos", "neg"]})(path)


def truncated(write: Callable[[Path], None]) -> Callable[[Path], None]:
    """A file ``write`` writes, cut in the middle, as a copy interrupted leaves it."""

    def cut(path: Path) -> None:
        write(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return cut


def saved(**splits: list[dict]) -> Callable[[Path], None]:
    """A folder written by ``DatasetDict.save_to_disk``."""

    def write(path: Path) -> None:
        from datasets import Dataset, DatasetDict

        DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()}).save_to_disk(path)

    return write


def corrupt_arrow(path: Path) -> None:
    saved(train=TC_ROWS, test=TC_ROWS)(path)
    for arrow in path.glob("train/*.arrow"):
        arrow.write_bytes(b"not arrow at all")


def sparse(path: Path) -> None:
    """A 1 GB file of no data, as a copy that never wrote its content leaves it: the check reads its start only."""
    path.touch()
    os.truncate(path, 1 << 30)


def folder(path: Path) -> None:
    path.mkdir()


def dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "moved-away.jsonl")


def case(id: str, task: str, files: dict, words: tuple[str, ...], **data):
    return pytest.param(task, files, data, words, id=f"{task}-{id}")


TC, NER, MT, QA = "text-classification", "ner", "translation", "question-answering"


def qa_row(**changes) -> dict:
    """A fifth question, with ``changes``."""
    return {"id": "q5", "question": "Who read it?", "context": "Bo read it.", "answers": {"text": ["Bo"], "answer_start": [0]}, **changes}


CSV_OK = b"text,label\nA film.,pos\nDull.,neg\n"
DATASET = {"train_file": None, "eval_file": None, "train_split": "train", "eval_split": "test"}

CATALOGUE = [
    # Encodings: the line, and what to do.
    case(
        "jsonl-not-utf8",
        TC,
        {"train.jsonl": jsonl(TC_ROWS[0]) + b'{"text": "caf\xe9", "label": "neg"}\n'},
        ("data.train_file: train.jsonl", "line 2: not UTF-8 (byte 0xe9 at column 14)", "save the file as UTF-8"),
    ),
    case(
        "csv-not-utf8",
        TC,
        {"train.csv": "text,label\ncaf\xe9 cr\xe8me,pos\nbad,neg\n".encode("latin-1")},
        ("train.csv", "line 2: not UTF-8 (byte 0xe9 at column 4)"),
        train_file="train.csv",
    ),
    case(
        "tsv-not-utf8", TC, {"train.tsv": "text\tlabel\nok\tpos\nna\xefve\tneg\n".encode("latin-1")}, ("train.tsv", "line 3: not UTF-8"), train_file="train.tsv"
    ),
    case("csv-utf16", TC, {"train.csv": CSV_OK.decode().encode("utf-16")}, ("train.csv", "line 1: not UTF-8 (byte 0xff at column 1)"), train_file="train.csv"),
    case(
        "gz-not-utf8",
        TC,
        {"train.jsonl.gz": gzip.compress(jsonl(TC_ROWS[0]) + b'{"text": "\xff", "label": "neg"}\n')},
        ("train.jsonl.gz", "line 2: not UTF-8"),
        train_file="train.jsonl.gz",
    ),
    case(
        "parquet-not-utf8",
        TC,
        {"train.parquet": not_utf8_texts},
        ("data.train_file: row 2 of train.parquet", "column 'text'", "not UTF-8"),
        train_file="train.parquet",
    ),
    case(
        "conll-not-utf8",
        NER,
        {"train.conll": b"EU B-ORG\nrejects O\n\nM\xfcller B-PER\n"},
        ("data.train_file: train.conll", "line 4: not UTF-8 (byte 0xfc at column 2)"),
        train_file="train.conll",
    ),
    # Malformed lines and documents.
    case(
        "jsonl-bad-line",
        TC,
        {"train.jsonl": jsonl(TC_ROWS[0]) + b'{"text": "Dull." "label": "neg"}\n' + jsonl(TC_ROWS[1])},
        ("train.jsonl", "line 2: not valid JSON", "column 18"),
    ),
    case("jsonl-truncated", TC, {"train.jsonl": b'{"text": "A film.", "label": "pos"}\n{"text": "Unfinished'}, ("train.jsonl", "line 2: not valid JSON")),
    case(
        "jsonl-line-not-an-object", TC, {"train.jsonl": jsonl(TC_ROWS[0]) + b'["Dull.", "neg"]\n'}, ("train.jsonl", "line 2: holds a list, not a JSON object")
    ),
    case(
        "json-document-broken",
        TC,
        {"train.json": json.dumps(TC_ROWS, indent=1).encode()[:-40]},
        ("train.json", "line 15: not valid JSON (Expecting property name"),
        train_file="train.json",
    ),
    case("csv-extra-field", TC, {"train.csv": CSV_OK + b"Long, and dull.,neg\n"}, ("train.csv", "Expected 2 fields in line 4, saw 3"), train_file="train.csv"),
    case(
        "csv-unclosed-quote",
        TC,
        {"train.csv": CSV_OK + b'"Long and dull.,neg\nGood.,pos\n'},
        ("train.csv", "EOF inside string starting at row 3"),
        train_file="train.csv",
    ),
    case(
        "conll-line-without-tag",
        NER,
        {"train.conll": b"EU B-ORG\nrejects\n"},
        ("train.conll", "line 2: expected a token and its tag"),
        train_file="train.conll",
    ),
    # Truncated or corrupt archives, and files that are not what their name says.
    case(
        "gz-truncated",
        TC,
        {"train.jsonl.gz": truncated(lambda path: path.write_bytes(gzip.compress(jsonl(*TC_ROWS))))},
        ("train.jsonl.gz", "the gzip file is truncated"),
        train_file="train.jsonl.gz",
    ),
    case("gz-corrupt", TC, {"train.jsonl.gz": b"\x1f\x8b\x08 this is not gzip"}, ("train.jsonl.gz", "not a valid gzip file"), train_file="train.jsonl.gz"),
    case(
        "gz-not-compressed",
        TC,
        {"train.jsonl.gz": jsonl(*TC_ROWS)},
        ("train.jsonl.gz", "not a valid gzip file", "Not a gzipped file"),
        train_file="train.jsonl.gz",
    ),
    case("jsonl-nul-bytes", TC, {"train.jsonl": b"\0" * 1000}, ("train.jsonl", "line 1: a NUL byte at column 1: not a text file")),
    case("jsonl-sparse", TC, {"train.jsonl": sparse}, ("train.jsonl", "line 1: a NUL byte at column 1: not a text file")),
    case("csv-nul-byte", TC, {"train.csv": CSV_OK + b"Od\0d.,pos\n"}, ("train.csv", "line 4: a NUL byte at column 3"), train_file="train.csv"),
    case("parquet-corrupt", TC, {"train.parquet": b"PAR1 not really parquet PAR1"}, ("train.parquet", "cannot load data"), train_file="train.parquet"),
    case(
        "parquet-truncated",
        TC,
        {"train.parquet": truncated(parquet({"text": ["A film."] * 50, "label": ["pos", "neg"] * 25}))},
        ("train.parquet", "cannot load data", "magic bytes"),
        train_file="train.parquet",
    ),
    case("saved-dataset-corrupt", TC, {"saved": corrupt_arrow}, ("data.dataset", "cannot load data"), dataset="saved", **DATASET),
    # Paths that are not data files.
    case("path-is-a-directory", TC, {"train.jsonl": folder}, ("data.train_file", "is a directory, not a data file")),
    case("dangling-symlink", TC, {"train.jsonl": dangling_link}, ("data.train_file", "train.jsonl does not exist")),
    case("dataset-is-a-file", TC, {}, ("data.dataset", "train.jsonl is a file: name it with train_file and eval_file"), dataset="train.jsonl", **DATASET),
    case(
        "dataset-folder-without-data", TC, {"empty": folder}, ("data.dataset", "cannot load data", "doesn't contain any data files"), dataset="empty", **DATASET
    ),
    case("hub-dataset-offline", TC, {}, ("data.dataset", "cannot load data", "someone/not-cached"), dataset="someone/not-cached", **DATASET),
    # Empty files and splits.
    case("jsonl-blank-lines-only", TC, {"train.jsonl": b"\n  \n\n"}, ("train.jsonl", "no rows, only blank lines")),
    case("csv-header-only", TC, {"train.csv": b"text,label\n"}, ("train.csv", "no rows under its header"), train_file="train.csv"),
    case("json-empty-list", TC, {"train.json": b"[]\n"}, ("train.json", "no rows (an empty JSON list)"), train_file="train.json"),
    case("conll-no-sentences", NER, {"train.conll": b"-DOCSTART- -X- -X- O\n\n\n"}, ("train.conll", "no sentences"), train_file="train.conll"),
    case("saved-empty-split", TC, {"saved": saved(train=TC_ROWS, test=[])}, ("data.dataset", "saved/test was saved with no rows"), dataset="saved", **DATASET),
    case(
        "saved-split-missing",
        TC,
        {"saved": saved(train=TC_ROWS, validation=TC_ROWS)},
        ("data.eval_split", "split 'test' not in", "saved (splits: train, validation)"),
        dataset="saved",
        **DATASET,
    ),
    # Missing (null) cells and wrong types: the row, the column, what is wrong.
    case(
        "null-text",
        TC,
        {"train.jsonl": jsonl(*TC_ROWS, {"text": None, "label": "pos"})},
        ("data.text_column: row 5 of train.jsonl has no 'text' (null or missing)",),
    ),
    case("missing-text-key", TC, {"train.jsonl": jsonl(*TC_ROWS[:3], {"label": "pos"})}, ("data.text_column: row 4 of train.jsonl has no 'text'",)),
    case(
        "null-text-in-eval",
        TC,
        {"eval.jsonl": jsonl({"text": "A film.", "label": "pos"}, {"text": None, "label": "neg"})},
        ("data.text_column: row 2 of eval.jsonl has no 'text'",),
    ),
    case(
        "parquet-null-text",
        TC,
        {"train.parquet": parquet({"text": ["A film.", None, "Good."], "label": ["pos", "neg", "pos"]})},
        ("data.text_column: row 2 of train.parquet has no 'text'",),
        train_file="train.parquet",
    ),
    case(
        "text-of-several-types",
        TC,
        {"train.jsonl": jsonl(*TC_ROWS[:3], {"text": 42, "label": "neg"})},
        ("data.text_column: row 4 of train.jsonl holds the number 42 in 'text', not a text",),
    ),
    case(
        "text-lists",
        TC,
        {"train.jsonl": jsonl(*({"text": [row["text"]], "label": row["label"]} for row in TC_ROWS))},
        ("data.text_column", "column 'text' holds lists of string, not text"),
    ),
    case(
        "json-of-columns",
        TC,
        {"train.json": json.dumps({"text": ["A film.", "Dull."], "label": ["pos", "neg"]}).encode()},
        ("data.text_column", "column 'text' holds lists of string, not text"),
        train_file="train.json",
    ),
    case(
        "null-text-pair",
        TC,
        {
            "train.jsonl": jsonl(*({**row, "hypothesis": "It is."} for row in TC_ROWS), {"text": "Odd.", "label": "neg", "hypothesis": None}),
            "eval.jsonl": jsonl(*({**row, "hypothesis": "It is."} for row in TC_ROWS)),
        },
        ("data.text_pair_column: row 5 of train.jsonl has no 'hypothesis'",),
        text_pair_column="hypothesis",
    ),
    case("null-label", TC, {"train.jsonl": jsonl(*TC_ROWS, {"text": "Odd.", "label": None})}, ("data.label_column: row 5 of train.jsonl has no label",)),
    case(
        "csv-empty-label",
        TC,
        {"train.csv": CSV_OK + b"Odd.,\n"},
        ("data.label_column: row 3 of train.csv has no label (empty, null or missing)",),
        train_file="train.csv",
    ),
    case(
        "negative-label",
        TC,
        {
            "train.jsonl": jsonl({"text": "A film.", "label": 1}, {"text": "Dull.", "label": 0}, {"text": "?", "label": -1}),
            "eval.jsonl": jsonl({"text": "A film.", "label": 1}, {"text": "Dull.", "label": 0}),
        },
        ("data.label_column: row 3 of train.jsonl has the label -1", "marks a row without one"),
    ),
    case(
        "boolean-labels",
        TC,
        {"train.jsonl": jsonl({"text": "A film.", "label": True}, {"text": "Dull.", "label": False})},
        ("data.label_column", "all strings or all integers", "bool"),
    ),
    case(
        "fractional-labels",
        TC,
        {"train.jsonl": jsonl({"text": "A film.", "label": 0.9}, {"text": "Dull.", "label": 0.1})},
        ("data.label_column", "all strings or all integers", "float"),
    ),
    case(
        "sentence-without-words",
        NER,
        {"train.jsonl": jsonl(*NER_ROWS, {"tokens": None, "ner_tags": ["O"]})},
        ("data.tokens_column: sentence 5 of train.jsonl has no words",),
    ),
    case(
        "sentence-without-tags",
        NER,
        {"train.jsonl": jsonl(*NER_ROWS, {"tokens": ["Rome"], "ner_tags": None})},
        ("data.tags_column: sentence 5 of train.jsonl ('Rome') has no tags",),
    ),
    case(
        "null-word",
        NER,
        {"train.jsonl": jsonl(*NER_ROWS, {"tokens": ["in", None], "ner_tags": ["O", "B-LOC"]})},
        ("data.tokens_column: sentence 5 of train.jsonl has no word 2 (null)",),
    ),
    case(
        "null-tag",
        NER,
        {"train.jsonl": jsonl(*NER_ROWS, {"tokens": ["in", "Rome"], "ner_tags": ["O", None]})},
        ("data.tags_column: sentence 5 of train.jsonl ('in Rome') has no tag for word 2 ('Rome')",),
    ),
    case(
        "tags-nested",
        NER,
        {"train.jsonl": jsonl({"tokens": ["EU"], "ner_tags": [["B-ORG"]]})},
        ("data.tags_column", "holds lists of lists of string, not lists of tags"),
    ),
    case(
        "tags-fractional",
        NER,
        {"train.jsonl": jsonl({"tokens": ["EU", "says"], "ner_tags": [0.5, 1.0]})},
        ("data.tags_column", "holds lists of float64, not lists of tags"),
    ),
    case(
        "words-of-several-types",
        NER,
        {"train.jsonl": jsonl(*NER_ROWS, {"tokens": "Rome", "ner_tags": ["B-LOC"]})},
        ("data.tokens_column", "holds values of several types, not a list of words"),
    ),
    case(
        "words-numbers",
        NER,
        {"train.jsonl": jsonl({"tokens": [1, 2], "ner_tags": ["O", "O"]})},
        ("data.tokens_column", "holds lists of int64, not lists of words"),
    ),
    case(
        "null-source-text",
        MT,
        {"train.jsonl": jsonl(*PAIRS, {"translation": {"en": None, "de": "Ein Haus."}})},
        ("data.source_lang: row 5 of train.jsonl has no 'en' text",),
    ),
    case(
        "missing-target-text",
        MT,
        {"train.jsonl": jsonl(*PAIRS, {"translation": {"en": "A house."}})},
        ("data.target_lang: row 5 of train.jsonl has no 'de' text",),
    ),
    case("null-pair", MT, {"train.jsonl": jsonl(*PAIRS, {"translation": None})}, ("data.translation_column: row 5 of train.jsonl has no 'translation'",)),
    case(
        "text-a-number",
        MT,
        {"train.jsonl": jsonl(*PAIRS, {"translation": {"en": 5, "de": "Fünf."}})},
        ("data.source_lang: row 5 of train.jsonl holds the number 5 as its 'en' text",),
    ),
    case(
        "pairs-are-texts",
        MT,
        {"train.jsonl": jsonl({"translation": "A dog. Ein Hund."})},
        ("data.translation_column: row 1 of train.jsonl holds a text in 'translation', not {language: text} pairs",),
    ),
    case(
        "flat-null-target",
        MT,
        {"train.jsonl": jsonl({"en": "A dog.", "de": "Ein Hund."}, {"en": "A cat.", "de": None}), "eval.jsonl": jsonl({"en": "A dog.", "de": "Ein Hund."})},
        ("data.target_column: row 2 of train.jsonl has no 'de'",),
        source_column="en",
        target_column="de",
    ),
    case(
        "null-question",
        QA,
        {"train.jsonl": jsonl(*QA_ROWS, qa_row(question=None))},
        ("data.question_column: row 5 of train.jsonl (id 'q5') has no question text",),
    ),
    case("question-a-number", QA, {"train.jsonl": jsonl(*QA_ROWS, qa_row(question=7))}, ("data.question_column", "row 5 of train.jsonl", "but 7")),
    case(
        "null-context", QA, {"train.jsonl": jsonl(*QA_ROWS, qa_row(context=None))}, ("data.context_column: row 5 of train.jsonl (id 'q5') has no context text",)
    ),
    case(
        "empty-context",
        QA,
        {"eval.jsonl": jsonl(*QA_ROWS[:2], qa_row(context=""))},
        ("data.context_column: row 3 of eval.jsonl (id 'q5') has no context text",),
    ),
    case(
        "null-answers", QA, {"train.jsonl": jsonl(*QA_ROWS, qa_row(answers=None))}, ("data.answers_column: row 5 of train.jsonl (id 'q5')", "answers must be")
    ),
    case("answers-a-list", QA, {"train.jsonl": jsonl(*QA_ROWS, qa_row(answers=["Bo"]))}, ("data.answers_column: row 5 of train.jsonl", "answers must be")),
    case(
        "no-answer",
        QA,
        {"train.jsonl": jsonl(*QA_ROWS, qa_row(answers={"text": [], "answer_start": []}))},
        ("row 5 of train.jsonl", "has no answer", "not supported"),
    ),
    case(
        "answer-elsewhere",
        QA,
        {"train.jsonl": jsonl(*QA_ROWS, qa_row(answers={"text": ["Bo"], "answer_start": [3]}))},
        ("data.answers_column: row 5 of train.jsonl (id 'q5'): answer 'Bo' is not at answer_start 3",),
    ),
    case(
        "negative-answer-start",
        QA,
        {"train.jsonl": jsonl(*QA_ROWS, qa_row(answers={"text": ["Bo"], "answer_start": [-1]}))},
        ("row 5 of train.jsonl", "got 'Bo' at -1"),
    ),
    case("duplicate-id", QA, {"train.jsonl": jsonl(*QA_ROWS, qa_row(id="q2"))}, ("data.id_column: train.jsonl has the id 'q2' twice (rows 2 and 5)",)),
    case(
        "context-not-utf8",
        QA,
        {"train.jsonl": jsonl(*QA_ROWS) + json.dumps(qa_row()).encode().replace(b"Bo read", b"B\xf6 read")},
        ("data.train_file: train.jsonl", "line 5: not UTF-8"),
    ),
    case(
        "csv-numbers-as-texts",
        MT,
        {"train.csv": b"en,de\n1,2\n3,4\n", "eval.csv": b"en,de\n1,2\n"},
        ("data.source_column", "column 'en' holds int64, not text"),
        source_column="en",
        target_column="de",
        train_file="train.csv",
        eval_file="eval.csv",
    ),
]


def case_tables(tmp_path: Path, task: str, files: dict, data: dict) -> dict:
    """Write a case's files (over the task's good train.jsonl and eval.jsonl); the tables of its manifest."""
    good = jsonl(*GOOD_ROWS[task])
    for name, content in {"train.jsonl": good, "eval.jsonl": good, **files}.items():
        content(tmp_path / name) if callable(content) else (tmp_path / name).write_bytes(content)
    settings = {"train_file": "train.jsonl", "eval_file": "eval.jsonl", **TASK_DATA.get(task, {}), **data}
    return {
        "task": task,
        "model": MODELS[task],
        "data": {key: value for key, value in settings.items() if value is not None},
        "training": dict(TINY_TRAINING),
    }


@pytest.mark.parametrize(("task", "files", "data", "words"), CATALOGUE)
def test_bad_data_file(fails, ftrun_manifest, tmp_path, task, files, data, words):
    run_and_check(fails, ftrun_manifest(case_tables(tmp_path, task, files, data)), ("run.toml: ", *words))


@pytest.fixture
def library_errors():
    """The records the libraries' own loggers (datasets) write at ERROR or above: ftrun's one line says it all."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger("datasets")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("files", "words"),
    [
        pytest.param({"train.jsonl": jsonl(*TC_ROWS).decode().encode("utf-16")}, ("train.jsonl", "line 1: not UTF-8"), id="jsonl-utf16"),
        pytest.param({"train.csv": "text,label\ncaf\xe9,pos\n".encode("latin-1")}, ("train.csv", "line 2: not UTF-8"), id="csv-latin1"),
        pytest.param(
            {"train.parquet": truncated(parquet({"text": ["A film."] * 50, "label": ["pos", "neg"] * 25}))},
            ("train.parquet", "magic bytes"),
            id="parquet-truncated",
        ),
    ],
)
def test_a_reader_s_failure_is_ftrun_s_line_alone(fails, ftrun_manifest, tmp_path, library_errors, files, words):
    data = {"train_file": next(iter(files))}
    run_and_check(fails, ftrun_manifest(case_tables(tmp_path, TC, files, data)), ("run.toml: data.train_file: ", *words))
    assert [record.getMessage() for record in library_errors] == []


#: What looks wrong and is not: each is data a run takes (docs/reliability.md's "Bad data" says why).
ACCEPTED = [
    pytest.param(
        TC,
        {"train.csv": CSV_OK + b",neg\nNA,pos\nnull,neg\n"},
        {"train_file": "train.csv"},
        ["A film.", "Dull.", "", "NA", "null"],
        id="csv-empty-cell-and-na-are-texts",
    ),
    pytest.param(TC, {"train.jsonl": jsonl({"text": "", "label": "pos"}, *TC_ROWS)}, {}, None, id="empty-text"),
    pytest.param(
        TC, {"train.jsonl": b"\xef\xbb\xbf" + jsonl(*TC_ROWS), "eval.csv": b"\xef\xbb\xbf" + CSV_OK}, {"eval_file": "eval.csv"}, None, id="byte-order-marks"
    ),
    pytest.param(
        NER,
        {"train.jsonl": jsonl(*NER_ROWS, {"tokens": [], "ner_tags": []}, {"tokens": ["", "Rome"], "ner_tags": ["O", "B-LOC"]})},
        {},
        None,
        id="ner-empty-sentence-and-word",
    ),
    pytest.param(
        MT,
        {"train.csv": b"en,de\nA dog.,Ein Hund.\nA cat.,\n", "eval.csv": b"en,de\nA dog.,Ein Hund.\n"},
        {"train_file": "train.csv", "eval_file": "eval.csv", "source_column": "en", "target_column": "de"},
        None,
        id="translation-empty-target",
    ),
]


@pytest.mark.parametrize(("task", "files", "data", "texts"), ACCEPTED)
def test_data_that_is_accepted(ftrun_cli, ftrun_manifest, ftrun_config, tmp_path, task, files, data, texts):
    tables = case_tables(tmp_path, task, files, data)
    checked = ftrun_cli("check", "--manifest", ftrun_manifest(tables))
    assert checked.code == 0 and "error" not in checked.err, checked
    if texts is not None:
        from ftrun.stages.data import load_splits

        assert load_splits(ftrun_config(tables)).train["text"] == texts


def test_the_catalogue_covers_every_task_and_format():
    """The issue's bar: at least 40 cases, across every built-in task and every format."""
    assert len(CATALOGUE) >= 40
    cases = [(param.values[0], name) for param in CATALOGUE for name in {**param.values[1], **param.values[2]}]
    assert {task for task, _ in cases} == set(GOOD_ROWS)
    suffixes = {Path(str(name)).name.partition(".")[2] for _, name in cases}
    assert {"csv", "tsv", "json", "jsonl", "jsonl.gz", "parquet", "conll"} <= suffixes


def test_tokenizer_that_does_not_match_the_model(fails, tables, ftrun_manifest, ftrun_tiny_bert, tmp_path):
    from ftrun.stages.tokenizer import train_tokenizer

    texts = [f"word{i} another{i} text{i}" for i in range(3000)]
    train_tokenizer(texts, model_type="bert", vocab_size=2000, model_max_length=128).save_pretrained(tmp_path / "big-tokenizer")
    tables["model"] = {"name": str(ftrun_tiny_bert), "tokenizer": "./big-tokenizer"}
    run_and_check(fails, ftrun_manifest(tables), ("run.toml: model.tokenizer:", "tokens, more than the", "does not belong to the model"))


def test_plugin_named_by_the_manifest_that_is_missing_or_broken(fails, tables, ftrun_manifest, ftrun_plugin_module):
    tables["plugins"] = ["no_such_ftrun_plugin"]
    run_and_check(fails, ftrun_manifest(tables), ("no_such_ftrun_plugin", "failed to import"))
    tables["plugins"] = [ftrun_plugin_module("ftrun_broken_plugin", "def oops(:\n")]
    run_and_check(fails, ftrun_manifest(tables), ("ftrun_broken_plugin", "failed to import", "SyntaxError"))


#: A plugin module registering table NAME; with LOSS, it also supplies the training loss when its table is there.
TABLE_PLUGIN = """
import torch.nn.functional as F
from ftrun import Section, hookimpl


class Table(Section):
    on: bool = True


@hookimpl
def ftrun_register_tables(register):
    register("{name}", Table)


@hookimpl
def ftrun_training_loss(task, config, data):
    if {loss} and "{name}" in config.tables:
        return lambda logits, labels: F.cross_entropy(logits, labels, reduction="none")
"""


def test_plugins_that_clash_over_a_table_or_over_the_loss(fails, tables, ftrun_manifest, ftrun_plugin_module):
    for name in ("greeter_one", "greeter_two"):
        ftrun_plugin_module(name, TABLE_PLUGIN.format(name="greeting", loss=False))
    run_and_check(
        fails,
        ftrun_manifest({**tables, "plugins": ["greeter_one", "greeter_two"], "greeting": {}}),
        ("run.toml: greeting: table 'greeting' is registered by both plugin greeter_one and plugin greeter_two",),
    )
    ftrun_plugin_module("smooth_loss", TABLE_PLUGIN.format(name="smooth", loss=True))
    run_and_check(
        fails,
        ftrun_manifest({**tables, "plugins": ["smooth_loss"], "smooth": {}, "class_weights": {"weights": "balanced"}}),
        ("plugin class-weights (ftrun 0.1.0) and plugin smooth_loss each supply the training loss",),
    )


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_output_dir_that_is_a_file(fails, tiny_manifest, tmp_path, where):
    (tmp_path / "results").write_text("not a folder", encoding="utf-8")
    target = tmp_path / "results" if where == "file" else tmp_path / "results" / "run"
    fails("--manifest", tiny_manifest, "--output-dir", target, words=("--output-dir:", "results is a file, not a directory"))


def test_output_dir_that_cannot_be_written(fails, tiny_manifest, tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # as a read-only folder would answer
    fails("--manifest", tiny_manifest, "--output-dir", tmp_path / "run", words=("--output-dir:", f"cannot write to {tmp_path}", "permission denied"))


# -- flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [(), ("check",)], ids=["run", "check"])
def test_unknown_task_flag(fails, command):
    fails(*command, "--task", "nope", words=("--task nope:", "unknown task 'nope'", INSTALLED))


@pytest.mark.parametrize(
    ("override", "words"),
    [
        pytest.param("training.num_train_epochs", ("--set training.num_train_epochs:", "expected section.key=value"), id="no-equals"),
        pytest.param("=1", ("--set =1:", "expected section.key=value"), id="no-key"),
        pytest.param("training.num_train_epochs=three", ("training.num_train_epochs", "expected float, got a string 'three'"), id="bad-value"),
        pytest.param("data.max_train_samples=-5", ("data.max_train_samples", "greater than 0"), id="negative-value"),
        pytest.param("training.num_epochs=1", ("training.num_epochs", "did you mean num_train_epochs?"), id="unknown-key"),
        pytest.param("data.max_length.x=1", ("--set data.max_length.x=1:", "max_length is not a table"), id="into-a-value"),
        pytest.param('"data".max_length=100000', ("--set data.max_length:", "more than the model takes"), id="quoted-key"),
    ],
)
def test_bad_set(fails, tiny_manifest, tmp_path, override, words):
    fails("--manifest", tiny_manifest, "--output-dir", tmp_path / "out", "--set", override, words=words)
    fails("check", "--manifest", tiny_manifest, "--set", override, words=words)


@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_nproc_flag(fails, tiny_manifest, tmp_path, value):
    fails("--manifest", tiny_manifest, "--output-dir", tmp_path / "out", "--nproc", value, words=(f"--nproc {value}:", "positive number of processes"))


def test_nproc_other_than_the_launcher_started(fails, tiny_manifest, tmp_path, monkeypatch):
    # What torchrun sets in the first of the 2 processes it starts on a machine.
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    fails("--manifest", tiny_manifest, "--output-dir", tmp_path / "out", "--nproc", "3", words=("--nproc 3:", "3 processes asked for", "started 2"))


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="DeepSpeed is installed")
def test_deepspeed_that_is_not_installed(fails, ftrun_cli, tables, ftrun_manifest, tmp_path):
    tables["training"]["deepspeed"] = {"zero_optimization": {"stage": 2}}
    manifest = ftrun_manifest(tables)
    fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=("run.toml: training.deepspeed:", "DeepSpeed is not installed"))
    # `ftrun check` checks the manifest and the data, not the engines of the machine it runs on.
    assert ftrun_cli("check", "--manifest", manifest).code == 0


def test_eval_bad_inputs_and_a_file_named_from_the_current_folder(fails, ftrun_cli, tiny_manifest, tmp_path):
    model = tmp_path / "model"
    assert ftrun_cli("--manifest", tiny_manifest, "--output-dir", model).code == 0
    (tmp_path / "results").write_text("not a folder", encoding="utf-8")
    fails("eval", "--model", model, "--output-dir", tmp_path / "results", words=("--output-dir:", "results is a file, not a directory"))
    fails("eval", "--model", model, "--set", "data.eval_file=nope.jsonl", words=("--set data.eval_file:", f"{tmp_path / 'nope.jsonl'} does not exist"))
    fails("eval", "--model", model, "--set", 'data.eval_file=""', words=("--set data.eval_file:", "at least 1 character"))
    # The README's example: a file of the current folder (the fails fixture's, tmp_path), not of the model's.
    shutil.copy(tmp_path / "eval.jsonl", tmp_path / "my_test.jsonl")
    result = ftrun_cli("eval", "--model", model, "--set", "data.eval_file=my_test.jsonl", "--output-dir", tmp_path / "my-eval")
    assert result.code == 0, result
    assert f"on the eval split of {tmp_path / 'my_test.jsonl'}" in result.out


def test_predict_model_directory_that_does_not_exist(fails, tmp_path):
    fails("predict", "--model", tmp_path / "no-model", "a text", words=("--model:", "no-model", "not a directory"))


def test_predict_directory_without_a_run(fails, tmp_path):
    (tmp_path / "model").mkdir()
    fails("predict", "--model", tmp_path / "model", "a text", words=("--model:", "ftrun.toml", "--task"))


def test_predict_unknown_task(fails, tmp_path):
    (tmp_path / "model").mkdir()
    fails("predict", "--model", tmp_path / "model", "--task", "nope", "a text", words=("--task nope:", "unknown task 'nope'", INSTALLED))
    (tmp_path / "model" / "ftrun.toml").write_text('task = "nope"\n', encoding="utf-8")
    fails("predict", "--model", tmp_path / "model", "a text", words=("ftrun.toml: task:", "unknown task 'nope'", INSTALLED))


def test_predict_without_input(fails, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "ftrun.toml").write_text('task = "text-classification"\n', encoding="utf-8")
    fails("predict", "--model", tmp_path / "model", words=("predict", "no input", "stdin"), stdin="\n  \n")


# -- model folders: data, never code; damaged or mismatched, refused before anything loads -----------


def add_to_manifest(folder: Path, line: str, table: str | None = None) -> None:
    """A line in the run's ftrun.toml: at its top, or at the top of ``[table]``."""
    manifest = folder / "ftrun.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace(f"[{table}]\n", f"[{table}]\n{line}\n", 1) if table else f"{line}\n{text}", encoding="utf-8")


def add_auto_map(folder: Path) -> None:
    """config.json pointing at a module of the folder's own, which leaves a mark wherever it runs."""
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "ran.Config", "AutoModelForSequenceClassification": "ran.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "ran.py").write_text("from pathlib import Path\nPath('RAN').write_text('code from the model folder ran')\n")


def cut_short(folder: Path, name: str = "model.safetensors") -> None:
    with open(folder / name, "r+b") as handle:
        handle.truncate(handle.seek(0, 2) - 100)


def resealed(spoil: Callable[[Path], None]) -> Callable[[Path], None]:
    """A folder as whoever wrote it wants it, its marker made to match: a seal proves a folder whole, not harmless."""
    from ftrun.stages.training import seal

    def apply(folder: Path) -> None:
        spoil(folder)
        run = json.loads((folder / "ftrun-run.json").read_text())["run"]
        seal(folder, "ftrun-run.json", [p for p in folder.rglob("*") if not p.relative_to(folder).parts[0].startswith("checkpoint-")], run=run)

    return apply


def unsealed(spoil: Callable[[Path], None]) -> Callable[[Path], None]:
    """A plain model directory (no marker: downloaded, or saved by other code), spoilt."""

    def apply(folder: Path) -> None:
        (folder / "ftrun-run.json").unlink()
        spoil(folder)

    return apply


def stopped_while_publishing(folder: Path) -> None:
    """What a run killed while moving its outputs into place leaves: the staged marker, the folder's gone."""
    (folder / ".ftrun-staging").mkdir()
    os.replace(folder / "ftrun-run.json", folder / ".ftrun-staging" / "ftrun-run.json")


MODEL_FOLDERS = [
    # What a folder asks to run: nothing runs; one line says what it asked for and how to allow it.
    pytest.param(resealed(lambda f: add_to_manifest(f, 'plugins = ["this"]')), ("ftrun.toml: plugins: its run loaded this", "--plugin this"), id="plugins"),
    pytest.param(
        resealed(lambda f: add_to_manifest(f, "trust_remote_code = true", "model")),
        ("ftrun.toml: model.trust_remote_code = true", "--trust-remote-code"),
        id="trust-remote-code",
    ),
    pytest.param(resealed(add_auto_map), ("config.json: auto_map", "ran.Model", "--trust-remote-code"), id="auto-map"),
    pytest.param(unsealed(add_auto_map), ("config.json: auto_map", "--trust-remote-code"), id="auto-map-unsealed"),
    # Damaged: named by the seal before anything loads, or as it loads where there is no seal.
    pytest.param(cut_short, ("--model:", "model.safetensors has", "bytes, not the", "written with"), id="weights-cut-short"),
    pytest.param(lambda f: (f / "tokenizer.json").unlink(), ("--model:", "tokenizer.json is missing"), id="tokenizer-missing"),
    pytest.param(lambda f: (f / "ftrun-run.json").write_text("{"), ("--model:", "ftrun-run.json is damaged"), id="marker-damaged"),
    pytest.param(stopped_while_publishing, ("--model:", "stopped while moving its outputs", "--resume"), id="stopped-while-publishing"),
    pytest.param(unsealed(cut_short), ("model.safetensors: cannot read the weights", "incomplete metadata"), id="weights-cut-short-unsealed"),
    pytest.param(
        unsealed(lambda f: [(f / name).unlink() for name in ("tokenizer.json", "tokenizer_config.json")]),
        ("--model:", "its tokenizer has no vocabulary", "files are missing"),
        id="tokenizer-missing-unsealed",
    ),
]


@pytest.mark.parametrize(("spoil", "words"), MODEL_FOLDERS)
@pytest.mark.parametrize("command", ["predict", "eval"])
def test_model_folder_that_is_refused(fails, finished_run, tmp_path, command, spoil, words):
    model = tmp_path / "model"
    shutil.copytree(finished_run, model)
    spoil(model)
    fails(command, "--model", model, *(["a fine film"] if command == "predict" else ["--output-dir", tmp_path / "out"]), words=words)
    assert not (tmp_path / "RAN").exists()


@pytest.mark.parametrize("task", ["question-answering", "ner"])
def test_predict_with_another_task_than_the_models(fails, finished_run, tmp_path, task):
    fails("predict", "--model", finished_run, "--task", task, "a fine film", words=(f"--task {task}:", "is a text-classification model", "leave --task out"))


def test_eval_with_a_manifest_of_another_task(fails, finished_run, tmp_path):
    (tmp_path / "ner.toml").write_text('task = "ner"\n', encoding="utf-8")
    fails("eval", "--model", finished_run, "--manifest", tmp_path / "ner.toml", words=("ner.toml: task: 'ner'", "is a text-classification model"))


def test_remote_code_the_user_allows_is_a_warning(ftrun_cli, finished_run, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(finished_run, model)
    add_to_manifest(model, "trust_remote_code = true", "model")
    (model / "ftrun-run.json").unlink()
    result = ftrun_cli("predict", "--model", model, "--trust-remote-code", "a fine film")
    assert result.code == 0, result
    assert result.err.splitlines() == [f"ftrun: warning: --set model.trust_remote_code is true: code from {model}'s repository may run on this machine"]


# -- --traceback ------------------------------------------------------------------------------


def test_traceback_flag_raises_instead(ftrun_cli, tables, ftrun_manifest, tmp_path):
    manifest = ftrun_manifest(spoil(tables, "training.num_epochs", 1))
    with pytest.raises(FtrunError, match=r"run\.toml: training\.num_epochs: unknown key"):
        ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out", "--traceback")
    with pytest.raises(FtrunError, match="unknown task 'nope'"):
        ftrun_cli("check", "--task", "nope", "--traceback")
    assert not (tmp_path / "out").exists()
