"""``ftrun check``'s pre-flight report, and the warnings every run prints first.

Each check has a test that fails without it: the figures of each split (``--json``), each
warning and error with the manifest key it names, the default warmup sized to a short run,
exit codes and ``--strict``, the report in the terminal, a run's first lines and model card,
and a task's own checks through the task API.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from ftrun.testing import TINY_BERT, TINY_T5, TINY_TRAINING, save_tiny_pretrained, write_jsonl

WORDS = "the quick brown fox jumps over a lazy dog while seven happy zebras sing in the rain".split()
#: TINY_TRAINING without its warmup: the task's default warmup applies.
DEFAULT_WARMUP = {"warmup_steps": None}


def sentence(i: int, words: int = 3) -> str:
    """A text unlike any other of another ``i``."""
    return f"item {i} " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words))


def rows(count: int, offset: int = 0, words: int = 3, labels: str = "ab") -> list[dict]:
    return [{"text": sentence(offset + i, words), "label": labels[i % len(labels)]} for i in range(count)]


@pytest.fixture
def classification(ftrun_manifest, tmp_path):
    """classification(train, evaluation, data=..., training=..., **tables): a text-classification manifest of these rows.

    A ``data`` or ``training`` key set to ``None`` is left out, for the task's default.
    """

    def write(train: list[dict] | None = None, evaluation: list[dict] | None = None, data: dict | None = None, training: dict | None = None, **tables):
        files = {
            "train_file": str(write_jsonl(tmp_path / "train.jsonl", rows(40) if train is None else train)),
            "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows(20, offset=100) if evaluation is None else evaluation)),
        }
        return ftrun_manifest(
            {
                "task": "text-classification",
                "model": {"config": TINY_BERT, "tokenizer_vocab_size": 300},
                "data": {key: value for key, value in {**files, "max_length": 32, **(data or {})}.items() if value is not None},
                "training": {key: value for key, value in {**TINY_TRAINING, **(training or {})}.items() if value is not None},
                "predict": {"examples": ["item 1 the quick brown"]},
                **tables,
            }
        )

    return write


@pytest.fixture
def check(ftrun_cli):
    """check(manifest, *args) -> (result, report): ``ftrun check --json`` and the report it printed."""

    def run(manifest, *args):
        result = ftrun_cli("check", "--manifest", manifest, "--json", *args)
        assert result.code in (0, 2), result
        return result, json.loads(result.out)

    return run


def keys(report: dict, kind: str = "warnings") -> list[str]:
    return [finding["key"] for finding in report[kind]]


def line(report: dict, key: str, kind: str = "warnings", having: str = "") -> str:
    """The one finding about ``key`` (whose line has ``having``)."""
    [found] = [finding["line"] for finding in report[kind] if finding["key"] == key and having in finding["line"]]
    return found


# -- the figures of each split ------------------------------------------------------------------


def test_report_counts_labels_lengths_empty_inputs_duplicates_and_overlap(check, classification):
    train = rows(30, labels="a") + rows(10, offset=30, labels="b")
    for row in train[::3]:
        row["text"] = sentence(int(row["text"].split()[1]), words=60)  # every third one longer than max_length
    train[5] = {"text": "  ", "label": "a"}
    train[7] = dict(train[6])  # a duplicate
    evaluation = rows(10, offset=100)
    evaluation[0] = {"text": "  " + train[1]["text"].upper(), "label": "a"}  # in train, spelt otherwise
    evaluation[1] = dict(train[4])
    result, report = check(classification(train, evaluation))
    split, other = report["splits"]["train"], report["splits"]["eval"]
    assert (split["examples"], other["examples"]) == (40, 10)
    assert split["labels"] == {"a": 30, "b": 10} and split["imbalance"] == 3.0
    assert other["labels"] == {"a": 6, "b": 4}
    assert split["empty"] == 1 and split["first_empty"] == "row 6 of train.jsonl" and other["empty"] == 0
    assert split["duplicates"] == 1 and other["duplicates"] == 0
    assert other["in_train"] == 2 and split["in_train"] is None
    lengths = split["lengths"]["inputs"]
    assert lengths["key"] == "data.max_length" and lengths["limit"] == 32
    assert lengths["truncated"] == pytest.approx(15 / 40)  # the 14 long texts and the copy of one
    assert lengths["percentiles"]["max"] > 60 and lengths["percentiles"]["p50"] < 32
    assert other["lengths"]["inputs"]["truncated"] == 0
    # Tokenized and encoded here on every example, which is few; features from the rows the data stage encoded.
    assert split["tokenized"] == 40 and split["features"] == 40 and split["features_estimated"]
    assert split["unknown"] == 0


def test_unknown_tokens_of_a_trained_tokenizer(check, classification):
    evaluation = [{"text": f"{sentence(i)} 東京 ☃ ∮", "label": "ab"[i % 2]} for i in range(20)]  # characters train never has
    _, report = check(classification(evaluation=evaluation))
    assert report["splits"]["train"]["unknown"] == 0
    assert report["splits"]["eval"]["unknown"] > 0.1


def test_a_large_split_is_tokenized_in_a_sample_and_the_report_says_so(ftrun_cli, classification, monkeypatch):
    monkeypatch.setattr("ftrun.stages.preflight.SAMPLE", 10)
    manifest = classification()
    result = ftrun_cli("check", "--manifest", manifest, "--json")
    report = json.loads(result.out)["splits"]["train"]
    assert (report["examples"], report["tokenized"], report["duplicates"]) == (40, 10, 0)  # counts read every example
    shown = ftrun_cli("check", "--manifest", manifest)
    assert "token figures from a random sample of 10 of the 40 train examples and 10 of the 20 eval examples, to be quick" in " ".join(shown.out.split())


def test_schedule_counts_steps_as_the_trainer_does(check, classification, ftrun_cli, tmp_path):
    training = {
        "num_train_epochs": 2,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_strategy": "no",
        "load_best_model_at_end": False,
        "warmup_steps": 1,
    }
    texts = [{"text": sentence(i, words=2 + 3 * (i % 7)), "label": "ab"[i % 2]} for i in range(40)]  # of 2 to 20 words and more
    _, report = check(classification(texts, training=training, nproc=2))
    schedule = report["schedule"]
    # Each of 2 processes takes 20 examples: 5 batches of 4, accumulated 2 by 2 into 3 steps an epoch.
    assert (schedule["processes"], schedule["steps_per_epoch"], schedule["steps"]) == (2, 3, 6)
    assert (schedule["evaluations_per_epoch"], schedule["checkpoints_per_epoch"]) == (1.5, 0)
    assert schedule["warmup"] == 1
    # The tokens the model reads; random batches of texts this unequal pad more than length-grouped ones.
    assert 40 * 5 < schedule["real_tokens"] < 40 * 32
    _, shuffled = check(classification(texts, training={**training, "train_sampling_strategy": "random"}, nproc=2))
    assert shuffled["schedule"]["real_tokens"] == schedule["real_tokens"]
    assert shuffled["schedule"]["pad_tokens"] > 2 * schedule["pad_tokens"]
    # The count is the Trainer's: in one process, 10 batches an epoch accumulated into 5 steps.
    one = classification(texts, training={**training, "eval_strategy": "no"})
    _, alone = check(one)
    assert alone["schedule"]["steps"] == 10
    result = ftrun_cli("--manifest", one, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"] == 10


# -- warnings and errors -------------------------------------------------------------------------


def test_warmup_longer_than_the_run(check, classification):
    _, report = check(classification(training={"warmup_steps": 100}))
    assert line(report, "training.warmup_steps") == (
        "run.toml: training.warmup_steps: 100 warmup steps are 2000% of the run's 5: the learning rate never reaches its peak (0.001); "
        "about 10% of the steps (1) is usual"
    )
    assert report["sized"] is None  # the user's own value is never changed
    _, fine = check(classification(training={"warmup_steps": 1}))
    assert "training.warmup_steps" not in keys(fine)


def test_a_default_warmup_longer_than_the_run_is_sized_to_it(check, classification, ftrun_cli, tmp_path):
    manifest = classification(training=DEFAULT_WARMUP)  # text-classification's default: 500 warmup steps
    _, report = check(manifest)
    assert report["sized"].startswith("warmup 1 steps (10% of the run's 5, not the default's 500")
    assert report["schedule"]["warmup"] == 1 and "training.warmup_steps" not in keys(report)
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    first = result.out.splitlines()[0]
    assert first.startswith("ftrun ") and first.endswith("; " + report["sized"])
    assert torch.load(tmp_path / "out" / "training_args.bin", weights_only=False).warmup_steps == 0.1
    # The manifest the run wrote runs the same schedule again: the share is its own setting now.
    assert "warmup_steps = 0.1" in (tmp_path / "out" / "ftrun.toml").read_text()
    # A run long enough for the default keeps it.
    _, long = check(classification(training={**DEFAULT_WARMUP, "max_steps": 6000}))
    assert long["sized"] is None and long["schedule"]["warmup"] == 500


def test_most_inputs_truncated(check, classification):
    _, report = check(classification(train=rows(40, words=60)))
    assert line(report, "data.max_length").startswith(
        "run.toml: data.max_length: 100% of the train split's inputs are longer than 32 tokens and are cut (median "
    )
    _, fine = check(classification())
    assert "data.max_length" not in keys(fine)


def test_a_truncated_pair_names_the_text_cut(check, classification):
    # Longest-first truncation cuts the longer text of a pair: here the context, which comes first, and not the
    # question at the pair's end.
    train = [{**row, "question": f"which {i}?"} for i, row in enumerate(rows(40, words=60))]
    _, report = check(classification(train, [{**row, "question": "which?"} for row in rows(20, offset=100)], data={"text_pair_column": "question"}))
    assert report["splits"]["train"]["lengths"]["inputs"]["cut"] == {"first": 1.0}
    assert line(report, "data.max_length").endswith(
        "truncation cuts the longer text of a pair, not the pair's end: the model never reads the end of the first text in 100% of them"
    )


def test_a_limit_beyond_the_model_positions_is_an_error(ftrun_cli, classification, ftrun_tiny_bert, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ftrun_tiny_bert)  # its maximum: 128 tokens
    short = save_tiny_pretrained(tmp_path / "short", {**TINY_BERT, "max_position_embeddings": 64}, tokenizer, AutoModel)
    manifest = classification(model={"name": str(short)}, data={"max_length": None}, training={"learning_rate": 5e-5})  # the tokenizer's maximum
    expected = (
        "ftrun: error: run.toml: data.max_length: inputs are cut at 128 tokens, more than the model takes (64 positions): set data.max_length to 64 or less"
    )
    for args in (("check",), ("--output-dir", tmp_path / "out")):
        result = ftrun_cli(*args, "--manifest", manifest)
        assert result.code == 2, result
        assert result.err.strip() == expected
    assert not (tmp_path / "out").exists()


def test_a_best_metric_the_eval_split_cannot_compute(check, classification):
    manifest = classification(evaluation=rows(20, offset=100, labels="a"), metrics={"names": ["accuracy", "f1"], "best": "f1"})
    _, report = check(manifest)
    assert line(report, "metrics.best") == (
        "run.toml: metrics.best: f1 cannot be computed on the eval split: it has no examples of the positive label 'b' (the second), "
        "so it is 0 at every evaluation and picks no best checkpoint"
    )
    _, macro = check(classification(train=rows(42, labels="abc"), evaluation=rows(20, offset=100, labels="ab"), metrics={"names": ["f1"], "best": "f1"}))
    assert "no examples of 'c'" in line(macro, "metrics.best")
    _, fine = check(classification(evaluation=rows(20, offset=100, labels="a"), metrics={"names": ["accuracy", "f1"], "best": "accuracy"}))
    assert "metrics.best" not in keys(fine)


def test_ner_counts_entities_and_checks_its_best_metric(check, ftrun_manifest, tmp_path):
    def sentences(count: int, kinds: str) -> list[dict]:
        out = []
        for i in range(count):
            kind = kinds[i % len(kinds)]
            out.append({"tokens": ["item", str(i), "saw", "Ann", "Lee", "in", "Oslo"], "ner_tags": ["O", "O", "O", f"B-{kind}", f"I-{kind}", "O", "B-LOC"]})
        return out

    manifest = ftrun_manifest(
        {
            "task": "ner",
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", sentences(12, ["PER", "PER", "ORG"]))),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", sentences(6, ["ORG"]))),
                "max_length": 32,
            },
            "training": TINY_TRAINING,
            "metrics": {"best": "PER_f1"},
        }
    )
    _, report = check(manifest)
    assert report["splits"]["train"]["labels"] == {"LOC": 12, "PER": 8, "ORG": 4}
    assert report["splits"]["eval"]["labels"] == {"ORG": 6, "LOC": 6}
    assert line(report, "metrics.best") == (
        "run.toml: metrics.best: PER_f1 cannot be computed on the eval split: it has no PER entities, "
        "so it is 0.0 at every evaluation and picks no best checkpoint"
    )
    _, fine = check(manifest, "--set", "metrics.best='ORG_f1'")
    assert "metrics.best" not in keys(fine)


def test_eval_examples_that_also_appear_in_train(check, classification):
    train = rows(40)
    evaluation = rows(18, offset=100) + [dict(train[0]), {"text": train[1]["text"].title() + " ", "label": "b"}]
    _, report = check(classification(train, evaluation))
    assert line(report, "data.eval_file", having="also appear") == (
        "run.toml: data.eval_file: 2 of the eval split's 20 examples (10.0%) also appear in the train split: "
        "the eval score overstates how the model does on new data"
    )
    _, fine = check(classification())
    assert report["splits"]["eval"]["in_train"] == 2 and fine["splits"]["eval"]["in_train"] == 0
    assert not [finding for finding in fine["warnings"] if "also appear" in finding["line"]]


def test_empty_inputs(check, classification):
    train = rows(40)
    train[3]["text"] = " \t "
    _, report = check(classification(train))
    assert line(report, "data.train_file") == (
        "run.toml: data.train_file: 1 of the train split's 40 examples have an empty or whitespace-only input (the first: row 4 of train.jsonl)"
    )
    _, fine = check(classification())
    assert "data.train_file" not in keys(fine)


def test_an_eval_split_too_small_to_tell_runs_apart(check, classification):
    _, report = check(classification(data={"max_eval_samples": 16}, evaluation=rows(30, offset=100)))
    assert line(report, "data.max_eval_samples") == (
        "run.toml: data.max_eval_samples: 16 eval examples measure accuracy to about ±12.5% of its range (the standard error of a share "
        "of them, at one half): differences between epochs or runs under 25% are noise; evaluate on more examples"
    )
    _, large = check(classification(evaluation=rows(420, offset=100)))
    assert not [key for key in keys(large) if key.startswith("data.")]


def test_a_learning_rate_far_outside_the_usual_range(check, classification, ftrun_tiny_bert):
    _, scratch = check(classification(training={"learning_rate": 1e-6}))
    assert line(scratch, "training.learning_rate") == (
        "run.toml: training.learning_rate: 1e-06 is far below the usual 0.0003 to 0.01 for a bert trained from random weights (a model built from a config)"
    )
    _, pretrained = check(classification(model={"name": str(ftrun_tiny_bert)}, training={"learning_rate": 0.1}))
    assert line(pretrained, "training.learning_rate") == (
        "run.toml: training.learning_rate: 0.1 is far above the usual 1e-05 to 0.0003 for fine-tuning a small pretrained bert (hidden size 32)"
    )
    _, fine = check(classification())
    assert "training.learning_rate" not in keys(fine)


def test_translation_reports_sources_and_truncated_targets(check, ftrun_manifest, tmp_path):
    pairs = [{"translation": {"en": sentence(i), "de": sentence(i, words=12)}} for i in range(24)]
    manifest = ftrun_manifest(
        {
            "task": "translation",
            "model": {"config": TINY_T5, "tokenizer_vocab_size": 200},
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", pairs[:16])),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", pairs[16:])),
                "source_lang": "en",
                "target_lang": "de",
                "max_source_length": 64,
                "max_target_length": 6,
            },
            "training": TINY_TRAINING,
        }
    )
    _, report = check(manifest)
    lengths = report["splits"]["train"]["lengths"]
    assert set(lengths) == {"sources", "targets"}
    assert lengths["sources"]["truncated"] == 0 and lengths["targets"]["truncated"] == 1
    assert line(report, "data.max_target_length").startswith(
        "run.toml: data.max_target_length: 100% of the train split's targets are longer than 6 tokens and are cut"
    )
    assert "data.max_source_length" not in keys(report)


def test_question_answering_reports_questions_asked_in_both_splits(check, ftrun_manifest, tmp_path):
    def questions(items: range) -> list[dict]:
        out = []
        for i in items:
            context = f"Item {i} was made by Ann in Oslo."
            answers = {"text": ["Ann"], "answer_start": [context.index("Ann")]}
            out.append({"id": f"q{i}", "question": f"Who made item {i}?", "context": context, "answers": answers})
        return out

    manifest = ftrun_manifest(
        {
            "task": "question-answering",
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", questions(range(12)))),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", questions(range(10, 16)))),  # items 10 and 11 in both
                "max_length": 64,
                "doc_stride": 16,
            },
            "training": TINY_TRAINING,
        }
    )
    _, report = check(manifest)
    assert report["splits"]["eval"]["in_train"] == 2 and report["splits"]["train"]["duplicates"] == 0
    assert "also appear in the train split" in line(report, "data.eval_file", having="also appear")
    assert report["splits"]["train"]["lengths"] == {}  # a long context becomes windows, not a truncated input


# -- exit codes, the terminal, a run ------------------------------------------------------------


def test_exit_codes_json_and_strict(ftrun_cli, classification):
    manifest = classification()  # 20 eval examples: a warning
    result = ftrun_cli("check", "--manifest", manifest, "--json")
    report = json.loads(result.out)
    assert result.code == 0 and report["ok"] and report["warnings"] and not report["errors"] and result.err == ""
    strict = ftrun_cli("check", "--manifest", manifest, "--json", "--strict")
    assert strict.code == 2 and json.loads(strict.out)["ok"] is False
    assert strict.err.splitlines() == [f"ftrun: error: {finding['line']}" for finding in report["warnings"]]


def test_the_report_in_the_terminal(ftrun_cli, classification):
    train = rows(40)
    train[3]["text"] = ""
    result = ftrun_cli("check", "--manifest", classification(train))
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0] == "run.toml: ok: task text-classification, train 40 / eval 20 examples, 2 labels (a, b), model built from a config; 2 warnings"
    for row in ("examples", "labels", "inputs: tokens p50/90/99/max", "inputs: cut", "empty inputs", "inputs also in train", "optimizer steps", "warmup"):
        assert any(text.startswith(("│ " + row, "┃ " + row)) for text in lines), row
    assert lines[-2].startswith("warning: run.toml: data.train_file: 1 of the train split's 40 examples have an empty")
    assert lines[-1].startswith("warning: run.toml: data.eval_file: 20 eval examples measure accuracy")
    strict = ftrun_cli("check", "--manifest", classification(train), "--strict")
    assert strict.code == 2 and strict.out.splitlines()[0].startswith("run.toml: failed: task text-classification")
    assert "warning:" not in strict.out and len(strict.err.splitlines()) == 2


def test_check_of_the_embedded_demo(ftrun_cli):
    result = ftrun_cli("check", "--task", "text-classification", "--demo")
    assert result.code == 0, result
    assert result.out.splitlines()[0].startswith(
        "--task text-classification: ok: task text-classification, train 1000 / eval 200 examples, 2 labels (neg, pos), model built from a config"
    )


def test_a_run_prints_its_warnings_first_and_writes_them_into_the_model_card(ftrun_cli, classification, tmp_path):
    train = rows(40)
    manifest = classification(train, rows(19, offset=100) + [dict(train[0])], training={"warmup_steps": 100})
    report = json.loads(ftrun_cli("check", "--manifest", manifest, "--json").out)
    warnings = [finding["line"] for finding in report["warnings"]]
    assert len(warnings) == 3  # warmup, overlap, eval size
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith("ftrun ") and lines[1:4] == [f"warning: {text}" for text in warnings]
    assert lines[4].startswith("train: 40 examples")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Pre-flight warnings\n" in card and all(f"- {text}\n" in card for text in warnings)


# -- a task's own checks -------------------------------------------------------------------------

PLUGIN = '''
from transformers import AutoModelForSequenceClassification

from ftrun import Metrics, Task, hookimpl


class TagsTask(Task):
    """Any number of tags per text; a 'rare' tag needs two train examples."""

    name = "tags"
    auto_model = AutoModelForSequenceClassification

    def check_data(self, splits, config):
        return None

    def text_of(self, split, config):
        return split["text"]

    def encode(self, batch, data, config, split):
        return data.tokenizer(batch["text"], truncation=True, max_length=16)

    def build_metrics(self, config, data):
        return Metrics(compute=lambda prediction: {}, best="loss")

    def inputs_of(self, split, config):
        return [(text,) for text in split["text"]]

    def labels_of(self, split, config):
        return split["tags"]

    def preflight(self, config, data):
        report = super().preflight(config, data)
        if report.splits["train"].labels.get("rare", 0) < 2:
            report.fail("data.train_file", "fewer than 2 train examples tagged 'rare'")
        return report


@hookimpl
def ftrun_register_tasks(register):
    register(TagsTask())
'''


def test_a_task_contributes_inputs_labels_and_checks_through_the_task_api(check, ftrun_manifest, ftrun_plugin_module, tmp_path):
    ftrun_plugin_module("ftrun_tags", PLUGIN)
    train = [{"text": sentence(i), "tags": ["x", "rare"] if i == 0 else ["x"] if i % 2 else []} for i in range(20)]
    evaluation = [{"text": sentence(i, words=30), "tags": ["x", "new"]} for i in range(100, 108)]
    manifest = ftrun_manifest(
        {
            "task": "tags",
            "plugins": ["ftrun_tags"],
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {"train_file": str(write_jsonl(tmp_path / "train.jsonl", train)), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", evaluation))},
            "training": TINY_TRAINING,
        }
    )
    result, report = check(manifest)
    assert result.code == 2
    assert report["splits"]["train"]["labels"] == {"x": 11, "rare": 1}
    assert report["splits"]["eval"]["unseen"] == ["new"]
    assert line(report, "data.train_file") == (
        "run.toml: data.train_file: the eval split has labels that no train example has, which the model never learns: 'new'"
    )
    # The default sequences: the texts of inputs_of, cut at the tokenizer's maximum (max_position_embeddings).
    assert report["splits"]["eval"]["lengths"]["inputs"]["limit"] == TINY_BERT["max_position_embeddings"]
    assert result.err.strip() == "ftrun: error: run.toml: data.train_file: fewer than 2 train examples tagged 'rare'"
    assert math.isclose(report["splits"]["eval"]["lengths"]["inputs"]["truncated"], 0)
