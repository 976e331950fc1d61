"""Every bad input a user can give: exit code 2, one line naming what and where, nothing written.

Each case fails before training, so the file runs in seconds. ``run`` and ``check`` must
agree: ``check`` exists to find exactly these problems without a run.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from ftrun import FtrunError
from ftrun.plugin_manager import get_plugin_manager
from ftrun.testing import TINY_BERT, TINY_TRAINING, files_under, write_jsonl

#: How an unknown-task error lists the installed tasks.
INSTALLED = "installed: " + ", ".join(sorted(get_plugin_manager().tasks()))

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


@pytest.fixture
def fails(ftrun_cli, tmp_path, monkeypatch):
    """fails(*args, words, stdin=None): run ftrun, expect one ``ftrun: error:`` line holding every word.

    The working directory is ``tmp_path``, so a default output directory would land there too.
    """
    monkeypatch.chdir(tmp_path)

    def call(*args, words: tuple[str, ...], stdin: str | None = None) -> str:
        before = files_under(tmp_path)
        result = ftrun_cli(*args, stdin=stdin)
        assert result.code == 2, result
        assert "Traceback" not in result.err and "Traceback" not in result.out, result
        lines = result.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ftrun: error: "), result
        for word in words:
            assert word in lines[0], (word, lines[0])
        assert files_under(tmp_path) == before, "files written or changed"
        assert not (tmp_path / "out").exists() and not (tmp_path / "ftrun-runs").exists()
        return lines[0]

    return call



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
        # Columns: the message lists the columns there are.
        pytest.param("data.text_column", "body", ("data.text_column", "'body'", "columns: text, label"), id="missing-text-column"),
        pytest.param("data.label_column", "sentiment", ("data.label_column", "'sentiment'", "columns: text, label"), id="missing-label-column"),
        pytest.param("data.text_pair_column", "hypothesis", ("data.text_pair_column", "'hypothesis'", "columns: text, label"), id="missing-pair-column"),
    ],
)
def test_bad_manifest_value(fails, tables, ftrun_manifest, key, value, words):
    manifest = ftrun_manifest(spoil(tables, key, value))
    run_and_check(fails, manifest, (f"run.toml: {key}", *words))


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
        pytest.param(".jsonl", rows("neg", "pos"), rows("neg", "meh"), "data.label_column", ("eval labels missing from the train split: meh",), id="unseen-eval-label"),
        pytest.param(".jsonl", rows("neg", 1, "pos"), rows("neg", "pos"), "data.label_column", ("all strings or all integers",), id="mixed-labels-jsonl"),
        pytest.param(".csv", rows("neg", "pos", text=123), rows("neg", "pos", text=456), "data.text_column", ("'text'", "not text"), id="numeric-text-csv"),
        pytest.param(".jsonl", rows("neg", "pos", text=3), rows("neg", "pos", text=4), "data.text_column", ("'text'", "not text"), id="numeric-text-jsonl"),
        pytest.param(".jsonl", rows("neg", "neg"), rows("neg", "neg"), "data.label_column", ("only the label 'neg'",), id="single-label"),
        pytest.param(".jsonl", rows("pos"), rows("pos"), "data.label_column", ("only the label 'pos'",), id="one-row-train"),
        pytest.param(".jsonl", [{"text": "A film.", "label": ["pos"]}] * 2, rows("neg", "pos"), "data.label_column", ("labels must be strings or integers", "'label' holds lists", "multi-label"), id="list-labels"),
    ],
)
def test_bad_data(fails, tables, ftrun_manifest, tmp_path, suffix, train, evaluation, key, words):
    write = write_csv if suffix == ".csv" else write_jsonl
    tables["data"].update(
        train_file=str(write(tmp_path / f"bad-train{suffix}", train)),
        eval_file=str(write(tmp_path / f"bad-eval{suffix}", evaluation)),
    )
    run_and_check(fails, ftrun_manifest(tables), (f"run.toml: {key}:", *words))


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        pytest.param("train.csv", "text,label\ncaf\xe9 cr\xe8me,pos\nbad,neg\n".encode("latin-1"), ("train.csv", "cannot load data", "utf-8"), id="data-not-utf8"),
        pytest.param("train.jsonl.gz", b"\x1f\x8b\x08 this is not gzip", ("train.jsonl.gz", "cannot load data"), id="corrupt-gzip"),
        pytest.param("train.parquet", b"PAR1 not really parquet PAR1", ("train.parquet", "cannot load data"), id="corrupt-parquet"),
        pytest.param("train.jsonl", b'{"text": "A film.", "label": "pos"}\n{"text": "Unfinished', ("train.jsonl", "cannot load data"), id="truncated-jsonl"),
    ],
)
def test_unreadable_data_file(fails, tables, ftrun_manifest, tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    tables["data"]["train_file"] = name
    run_and_check(fails, ftrun_manifest(tables), ("run.toml: data.train_file:", *words))


def test_tokenizer_that_does_not_match_the_model(fails, tables, ftrun_manifest, ftrun_tiny_bert, tmp_path):
    from ftrun.tokenizer import train_tokenizer

    texts = [f"word{i} another{i} text{i}" for i in range(3000)]
    train_tokenizer(texts, model_type="bert", vocab_size=2000, model_max_length=128).save_pretrained(tmp_path / "big-tokenizer")
    tables["model"] = {"name": str(ftrun_tiny_bert), "tokenizer": "./big-tokenizer"}
    run_and_check(fails, ftrun_manifest(tables), ("run.toml: model.tokenizer:", "tokens, more than the", "does not belong to the model"))


def test_plugin_named_by_the_manifest_that_is_missing_or_broken(fails, tables, ftrun_manifest, ftrun_plugin_module):
    tables["plugins"] = ["no_such_ftrun_plugin"]
    run_and_check(fails, ftrun_manifest(tables), ("no_such_ftrun_plugin", "failed to import"))
    tables["plugins"] = [ftrun_plugin_module("ftrun_broken_plugin", "def oops(:\n")]
    run_and_check(fails, ftrun_manifest(tables), ("ftrun_broken_plugin", "failed to import", "SyntaxError"))


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


# -- --traceback ------------------------------------------------------------------------------


def test_traceback_flag_raises_instead(ftrun_cli, tables, ftrun_manifest, tmp_path):
    manifest = ftrun_manifest(spoil(tables, "training.num_epochs", 1))
    with pytest.raises(FtrunError, match=r"run\.toml: training\.num_epochs: unknown key"):
        ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out", "--traceback")
    with pytest.raises(FtrunError, match="unknown task 'nope'"):
        ftrun_cli("check", "--task", "nope", "--traceback")
    assert not (tmp_path / "out").exists()
