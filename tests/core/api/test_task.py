"""The task API that hard tasks need, tested from the outside: a plugin module of its own.

The plugin's task turns each example into two features, encodes its eval split without labels,
post-processes features back into examples and checks what its metrics receive; these tests
fail when the core hands post-processing outputs out of order, drops the split, or needs
labels in the eval features.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from ftrun.stages.data import load_data
from ftrun.testing import TINY_BERT, TINY_TRAINING, files_under, write_jsonl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PLUGIN = '''
import numpy as np
from pydantic import Field
from transformers import AutoModelForSequenceClassification, EvalPrediction

from ftrun import TextDataConfig, FtrunError, Metrics, Task, hookimpl

#: What the task saw, for the tests: (split, examples in, features out), and each metrics call.
ENCODED = []
SCORED = []


class HalvesData(TextDataConfig):
    text_column: str = Field("text")


class HalvesTask(Task):
    """Predicts a number from a text, from both halves of its words: two features per example."""

    name = "halves"
    auto_model = AutoModelForSequenceClassification
    data_config = HalvesData
    required_training = {"prediction_loss_only": False}

    def check_data(self, splits, config):
        return None

    def text_of(self, split, config):
        return split[config.data.text_column]

    def encode(self, batch, data, config, split):
        texts = batch[config.data.text_column]
        if any(not text.strip() for text in texts):
            raise ValueError("an empty text")
        halves, owners, targets = [], [], []
        for index, text in enumerate(texts):
            words = text.split()
            middle = (len(words) + 1) // 2
            halves += [" ".join(words[:middle]), " ".join(words[middle:]) or words[0]]
            owners += [batch["id"][index] if "id" in batch else index] * 2
            targets += [float(batch["target"][index])] * 2 if split == "train" else []
        encoded = data.tokenizer(halves, truncation=True, max_length=64)
        encoded["example_id"] = owners
        if split == "train":  # eval and predict features carry no labels
            encoded["labels"] = targets
        ENCODED.append((split, len(texts), len(halves)))
        return encoded

    def head_kwargs(self, data, config):
        return {"num_labels": 1, "problem_type": "regression"}

    def postprocess(self, outputs, features, examples, data, config):
        assert outputs.label_ids is None
        scores = np.asarray(outputs.predictions).reshape(-1)
        owners = features["example_id"]
        ids = examples["id"] if "id" in examples.column_names else list(range(len(examples)))
        means = [float(np.mean([s for s, o in zip(scores, owners) if o == i])) for i in ids]
        references = examples["target"] if "target" in examples.column_names else None
        return EvalPrediction(predictions=means, label_ids=references)

    def build_metrics(self, config, data):
        def compute(prediction):
            SCORED.append((list(prediction.predictions), list(prediction.label_ids)))
            errors = np.asarray(prediction.predictions) - np.asarray(prediction.label_ids)
            return {"mse": float(np.mean(errors**2))}

        return Metrics(compute=compute, best="mse", greater_is_better=False)

    def read_input(self, value, where, config):
        if isinstance(value, str):
            return {"text": value}
        if not isinstance(value.get("text"), str):
            raise FtrunError(f"{where}: expected a table with a text")
        return {"text": value["text"]}

    def example_input(self, config):
        return {"text": "seven words make a short example here"}

    def format_prediction(self, prediction):
        return f"{prediction:.3f}"


@hookimpl
def ftrun_register_tasks(register):
    register(HalvesTask())
'''

WORDS = "the quick brown fox jumps over a lazy dog while seven happy zebras sing in the rain".split()


def rows(count: int, offset: int = 0) -> list[dict]:
    """Texts of very different lengths, so that evaluation sorted by length runs out of order."""
    return [{"id": offset + i, "text": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(2 + (i * 7) % 29)), "target": (i % 5) / 4} for i in range(count)]


@pytest.fixture
def halves(ftrun_plugin_module):
    name = ftrun_plugin_module("ftrun_halves", PLUGIN)
    module = __import__(name)
    module.ENCODED.clear()
    module.SCORED.clear()
    return module


@pytest.fixture
def manifest(ftrun_manifest, tmp_path, halves):
    def write(training: dict | None = None, **tables) -> object:
        train = write_jsonl(tmp_path / "train.jsonl", rows(24))
        evaluation = write_jsonl(tmp_path / "eval.jsonl", rows(12, offset=100))
        return ftrun_manifest(
            {
                "task": "halves",
                "plugins": ["ftrun_halves"],
                "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
                "data": {"train_file": str(train), "eval_file": str(evaluation)},
                # fp32: the per-feature outputs below are compared to what the metrics received.
                "training": {**TINY_TRAINING, "per_device_eval_batch_size": 4, "bf16": False, **(training or {})},
                **tables,
            }
        )

    return write


def test_post_processing_and_metrics_see_the_eval_split_in_its_own_order_without_labels(ftrun_cli, manifest, halves, tmp_path):
    result = ftrun_cli("--manifest", manifest(), "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    # Each example became two features, reported separately; eval had no labels, and was still scored.
    assert "train: 24 examples → 48 features, tokenized in" in result.out
    assert "eval: 12 examples → 24 features" in result.out
    assert ("train", 24, 48) in halves.ENCODED and ("eval", 12, 24) in halves.ENCODED
    assert "eval_mse" in json.loads((result.output_dir / "eval_results.json").read_text())
    predictions, references = halves.SCORED[-1]
    assert references == [row["target"] for row in rows(12, offset=100)]
    # What the final evaluation scored is, example by example in the split's order, what the saved
    # model predicts for that example's own features, one at a time.
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(result.output_dir).eval()
    features = result.run.data.eval
    expected = []
    for example in range(100, 112):
        scores = []
        for feature in features.filter(lambda row: row["example_id"] == example):
            with torch.no_grad():
                inputs = {key: torch.tensor([feature[key]]) for key in ("input_ids", "attention_mask", "token_type_ids")}
                scores.append(model(**inputs).logits.item())
        expected.append(np.mean(scores))
    assert np.argsort(expected).tolist() != list(range(12))  # the check below could not pass by chance
    np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-5)


def test_predict_encodes_the_predict_split_and_post_processes_structured_inputs(ftrun_cli, manifest, halves, tmp_path):
    trained = ftrun_cli(
        "--manifest", manifest(predict={"examples": [{"text": "the quick brown fox"}, "a lazy dog in the rain"]}), "--output-dir", tmp_path / "out"
    )
    assert trained.code == 0, trained
    assert len(trained.run.predictions) == 2 and all(isinstance(p, float) for p in trained.run.predictions)
    assert ("predict", 2, 4) in halves.ENCODED
    records = [json.loads(line) for line in (trained.output_dir / "predictions.jsonl").read_text().splitlines()]
    assert records[0]["input"] == {"text": "the quick brown fox"}
    # The "try it" line and the model card show the task's own example input, as JSON.
    try_it = "ftrun predict --model " + str(trained.output_dir) + ' --plugin ftrun_halves --json-input \'{"text": "seven words make a short example here"}\''
    assert try_it in trained.out
    card = (trained.output_dir / "README.md").read_text()
    assert '--json-input \'{"text": "seven words make a short example here"}\'' in card
    # No pipeline: no pipeline_tag in the card, and usage loads the task's head class.
    assert "pipeline_tag" not in card and "AutoModelForSequenceClassification.from_pretrained" in card

    by_json = ftrun_cli("predict", "--model", trained.output_dir, "--plugin", "ftrun_halves", "--json-input", '{"text": "the quick brown fox"}', "--json")
    assert by_json.code == 0, by_json
    record = json.loads(by_json.out)
    assert record["input"] == {"text": "the quick brown fox"}
    assert record["prediction"] == pytest.approx(trained.run.predictions[0], abs=1e-3)
    from_stdin = ftrun_cli("predict", "--model", trained.output_dir, "--plugin", "ftrun_halves", "--json-input", stdin='{"text": "a lazy dog in the rain"}\n')
    assert from_stdin.code == 0, from_stdin
    assert from_stdin.out.endswith('\t{"text": "a lazy dog in the rain"}\n')

    for given, message in (
        ("not json", "predict: argument 1: not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[1, 2]", "predict: argument 1: expected a JSON object, got list"),
        ('{"words": "x"}', "predict: argument 1: expected a table with a text"),
    ):
        bad = ftrun_cli("predict", "--model", trained.output_dir, "--plugin", "ftrun_halves", "--json-input", given)
        assert (bad.code, bad.err.strip()) == (2, f"ftrun: error: {message}")


def test_a_bad_predict_example_is_one_line_before_anything_runs(ftrun_cli, manifest, tmp_path):
    result = ftrun_cli("--manifest", manifest(predict={"examples": ["fine", {"words": "x"}]}), "--output-dir", tmp_path / "out")
    assert (result.code, result.err.strip()) == (2, "ftrun: error: run.toml: predict.examples[2]: expected a table with a text")
    assert not (tmp_path / "out").exists()


def test_check_runs_encode_on_a_batch_of_each_split(ftrun_cli, ftrun_manifest, halves, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", rows(8))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", [*rows(3), {"id": 9, "text": "  ", "target": 0.0}])
    path = ftrun_manifest(
        {
            "task": "halves",
            "plugins": ["ftrun_halves"],
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {"train_file": str(train), "eval_file": str(evaluation)},
        }
    )
    before = files_under(tmp_path)
    result = ftrun_cli("check", "--manifest", path)
    assert result.code == 2
    assert result.err.strip() == "ftrun: error: run.toml: data: task halves cannot encode the eval split: ValueError: an empty text"
    assert ("train", 8, 16) in halves.ENCODED
    assert files_under(tmp_path) == before


def test_required_training_settings_are_applied_and_a_conflicting_one_is_one_line(ftrun_config, ftrun_cli, manifest, halves, tmp_path):
    config = ftrun_config({"task": "halves", "model": {"config": TINY_BERT}, "data": {"dataset": "x/y"}}, "ftrun_halves")
    assert config.training["prediction_loss_only"] is False
    assert config.training["eval_do_concat_batches"] is True and config.training["batch_eval_metrics"] is False  # every task's
    for key, value, who in (("prediction_loss_only", True, "task halves"), ("batch_eval_metrics", True, "ftrun")):
        result = ftrun_cli("--manifest", manifest(training={key: value}), "--output-dir", tmp_path / "out")
        assert (result.code, result.err.strip()) == (2, f"ftrun: error: run.toml: training.{key}: {who} needs {key} = {str(not value).lower()}")


def test_the_cache_key_holds_the_task_code(ftrun_config, ftrun_plugin_module, halves, tmp_path):
    import sys

    tables = {
        "task": "halves",
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
        "data": {"dataset": str(write_jsonl(tmp_path / "train.jsonl", rows(8)).parent), "train_split": "train", "eval_split": "train"},
    }
    # A folder of data files is loaded through the datasets cache, where tokenized splits are cached too.
    from ftrun.api.plugin_manager import get_plugin_manager

    def load():
        manager = get_plugin_manager(plugins=["ftrun_halves"])
        task = manager.task("halves")
        return load_data(task, ftrun_config(tables, "ftrun_halves")).stats["train"].cached

    assert load() is False
    assert load() is True
    sys.modules.pop("ftrun_halves")
    ftrun_plugin_module("ftrun_halves", PLUGIN.replace("# eval and predict features carry no labels", "# changed"))
    assert load() is False  # the same data, but the plugin's code changed: tokenized again


# -- inputs: read with the run's config, from a file's own folder, resolved once at the run ----------

FILE_REVIEWS = '''
from pathlib import Path

from ftrun import FtrunError, hookimpl
from ftrun.plugins.text_classification.task import TextClassificationTask

#: What read_input and inputs_from received, for the tests.
READ = []
SOURCES = []


class FileReviews(TextClassificationTask):
    """Text classification of review files: an input is the path of a text file."""

    name = "file-reviews"

    def read_input(self, value, where, config=None):
        READ.append(config.task if config is not None else None)
        path = Path(value)
        if not path.is_file():  # relative to the current folder, as a user types it
            raise FtrunError(f"{where}: no file {value}")
        return str(path.resolve())

    def inputs_from(self, batch, config, source=None):
        SOURCES.append(source)
        return [str(Path(source).parent / name) for name in batch["file"]]  # the file's names are relative to it

    def predict(self, model, tokenizer, inputs, config):
        return super().predict(model, tokenizer, [Path(path).read_text() for path in inputs], config)


@hookimpl
def ftrun_register_tasks(register):
    register(FileReviews())
'''


def test_predict_inputs_are_read_with_the_config_from_the_files_folder_and_examples_resolved_once(
    ftrun_cli, ftrun_manifest, ftrun_plugin_module, reviews, tmp_path, monkeypatch
):
    plugin = __import__(ftrun_plugin_module("file_reviews", FILE_REVIEWS))
    train, evaluation = reviews
    run_folder, elsewhere, files = tmp_path / "run", tmp_path / "elsewhere", tmp_path / "files"
    for folder in (run_folder, elsewhere, files):
        folder.mkdir()
    (run_folder / "review.txt").write_text("A wonderful film.")
    (files / "one.txt").write_text("Dull and far too long.")
    (files / "rows.csv").write_text("file\none.txt\n")
    manifest = ftrun_manifest(
        {
            "task": "file-reviews",
            "plugins": ["file_reviews"],
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
            "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
            "training": TINY_TRAINING,
            "predict": {"examples": ["review.txt"]},
        }
    )
    monkeypatch.chdir(run_folder)
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert plugin.READ == ["file-reviews"]  # read once, with the run's config
    stored = tomllib.loads((tmp_path / "out" / "ftrun.toml").read_text())
    assert stored["predict"]["examples"] == [str(run_folder / "review.txt")]  # as read_input resolved it

    monkeypatch.chdir(elsewhere)  # where review.txt is not: the stored example is not read again
    predicted = ftrun_cli("predict", "--model", tmp_path / "out", "--plugin", "file_reviews", str(files / "one.txt"))
    assert predicted.code == 0, predicted
    assert plugin.READ == ["file-reviews", "file-reviews"]  # only the argument
    by_file = ftrun_cli("predict", "--model", tmp_path / "out", "--plugin", "file_reviews", "--input", files / "rows.csv", "--output", elsewhere / "out.jsonl")
    assert by_file.code == 0, by_file
    assert plugin.SOURCES == [files / "rows.csv"]
    assert len((elsewhere / "out.jsonl").read_text().splitlines()) == 1


def test_a_task_written_for_the_older_read_input_and_inputs_from_keeps_working():
    from ftrun import Task

    with pytest.warns(DeprecationWarning) as warned:

        class Older(Task):
            name = "older"

            def read_input(self, value, where):
                return super().read_input(value, where).upper()

            def inputs_from(self, batch, config):
                return list(batch["text"])

    assert [str(w.message).rpartition("Older.")[2] for w in warned] == [
        "read_input takes no 'config' argument, which ftrun now passes: add it",
        "inputs_from takes no 'source' argument, which ftrun now passes: add it",
    ]
    task = Older()
    assert task.read_input("a text", "here", None) == "A TEXT"
    assert task.inputs_from({"text": ["x"]}, None, "rows.csv") == ["x"]


PIXELS_PLUGIN = '''
from transformers import AutoModelForImageClassification

from ftrun import BaseTask, hookimpl


class PixelsTask(BaseTask):
    """A task on fixed-size images: no tokenizer, no texts."""

    name = "pixels"
    auto_model = AutoModelForImageClassification


@hookimpl
def ftrun_register_tasks(register):
    register(PixelsTask())
'''


def test_a_task_on_images_subclasses_no_text_machinery(ftrun_plugin_module, ftrun_plugin_manager, ftrun_cli):
    from ftrun import BaseTask, Task

    ftrun_plugin_module("ftrun_pixels", PIXELS_PLUGIN)
    task = ftrun_plugin_manager("ftrun_pixels").task("pixels")
    assert isinstance(task, BaseTask) and not isinstance(task, Task)
    for text_only in ("text_of", "check_tokenizer"):
        assert not hasattr(task, text_only), text_only
    assert task.sequences(None, None, None) == {}  # no token lengths to report
    assert task.read_input({"image": "digit.png"}, "where") == {"image": "digit.png"}  # any value, not only texts
    batch = task.data_collator(None, None, None)([{"pixel_values": torch.zeros(3, 4, 4), "labels": 1}] * 2)  # stacked, no tokenizer
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["labels"].tolist() == [1, 1]
    assert "AutoProcessor.from_pretrained" in task.usage("DIR", None) and "AutoTokenizer" not in task.usage("DIR", None)
    with pytest.raises(NotImplementedError):
        task.load_processor(None, None)
    listed = ftrun_cli("tasks", "--plugin", "ftrun_pixels")
    assert listed.code == 0 and "pixels" in listed.out


def test_a_text_task_keeps_what_text_tasks_share(ftrun_plugin_manager):
    from transformers import AutoModelForSequenceClassification

    from ftrun import FtrunError, Task

    class Texts(Task):
        name = "texts"
        auto_model = AutoModelForSequenceClassification

    task = Texts()
    assert task.read_input("a text", "where") == "a text"
    with pytest.raises(FtrunError, match="where: task texts predicts on texts"):
        task.read_input({"image": "digit.png"}, "where")
    assert "AutoTokenizer.from_pretrained" in task.usage("DIR", None) and "tokenizer = " in task.usage("DIR", None)
