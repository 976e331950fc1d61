"""Two plugins' test suites, each with fixtures of its own, use ftrun.testing side by side.

What the prefix is for: a plugin's tests may well have their own ``cli``, ``manifest`` and
``config`` fixtures, and any number of plugins' suites may run in one pytest session (a
monorepo, or ``pytest`` over several checkouts). Here two small third-party plugins, a task
plugin and a stage plugin, each give those three names a meaning of its own, ask for
ftrun's fixtures next to them, and run in one session. Nothing trains: what the suites do
is what a plugin's unit tests do (validate a config, call the task's code with it, check a
manifest, list plugins).
"""

from __future__ import annotations

import textwrap

#: A task plugin: how many words a text has, a regression of its own (no built-in task's data or labels).
WORDCOUNT_PLUGIN = '''
"""Counts words: a task of its own, and a command line of its own."""

from pydantic import Field
from transformers import AutoModelForSequenceClassification

from ftrun import TextDataConfig, Metrics, Task, hookimpl


class WordCountData(TextDataConfig):
    text_column: str = Field("text", description="Column holding the text.")


class WordCountTask(Task):
    name = "word-count"
    description = "how many words a text has"
    auto_model = AutoModelForSequenceClassification
    data_config = WordCountData

    def check_data(self, splits, config):
        return None  # a regression: no label names

    def text_of(self, split, config):
        return split[config.data.text_column]

    def encode(self, batch, data, config, split):
        texts = batch[config.data.text_column]
        encoded = data.tokenizer(texts, truncation=True, max_length=config.data.max_length)
        encoded["labels"] = [float(len(text.split())) for text in texts]
        return encoded

    def build_metrics(self, config, data):
        def compute(prediction):
            return {"mse": float(((prediction.predictions.reshape(-1) - prediction.label_ids) ** 2).mean())}

        return Metrics(compute=compute, best="mse", greater_is_better=False)


@hookimpl
def ftrun_register_tasks(register):
    register(WordCountTask())


def main(argv):
    """The plugin's own command line: ``wordcount TEXT...`` prints how many words there are."""
    print(len(" ".join(argv).split()))
    return 0
'''

WORDCOUNT_CONFTEST = '''
import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="wordcount-test-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin, as if installed

import ftrun_wordcount


@pytest.fixture
def cli(capsys):
    """The plugin's own command line (not ftrun's): cli(*args) -> what it printed."""

    def call(*args):
        assert ftrun_wordcount.main(list(args)) == 0
        return capsys.readouterr().out.strip()

    return call


@pytest.fixture
def manifest(tmp_path):
    """The tables of a word-count run, as a dict."""
    (tmp_path / "train.jsonl").write_text('{"body": "one two three"}\\n{"body": "four"}\\n')
    (tmp_path / "eval.jsonl").write_text('{"body": "five six"}\\n')
    return {
        "task": "word-count",
        "plugins": ["ftrun_wordcount"],
        "data": {"train_file": "train.jsonl", "eval_file": "eval.jsonl", "text_column": "body", "max_length": 16},
    }


@pytest.fixture
def config(manifest, ftrun_config):
    """The RunConfig a run of ``manifest`` gets."""
    return ftrun_config(manifest)
'''

WORDCOUNT_TESTS = """
import pytest
from transformers import AutoTokenizer

from ftrun import FtrunError, TaskData


def test_own_cli_and_ftrun_cli(cli, ftrun_cli):
    assert cli("a", "b c") == "3"
    listed = ftrun_cli("tasks", "--plugin", "ftrun_wordcount")
    assert listed.code == 0, listed
    assert "word-count" in listed.out and "plugin ftrun_wordcount" in listed.out


def test_own_config_is_validated_by_ftrun(config, manifest, tmp_path):
    assert config.task == "word-count" and config.data.text_column == "body"
    assert config.data.train_file == str(tmp_path / "train.jsonl")
    assert manifest["data"]["train_file"] == "train.jsonl"  # the plugin's own dict is left as it was


def test_bad_tables_name_the_key(manifest, ftrun_config):
    manifest["data"]["text_colum"] = "body"
    with pytest.raises(FtrunError, match="run.toml: data.text_colum: .*did you mean text_column"):
        ftrun_config(manifest)


def test_encode_with_the_config_of_a_run(config, ftrun_plugin_manager, ftrun_tiny_bert):
    task = ftrun_plugin_manager("ftrun_wordcount").task("word-count")
    data = TaskData(train=None, eval=None, tokenizer=AutoTokenizer.from_pretrained(ftrun_tiny_bert))
    encoded = task.encode({"body": ["Hello there, world!", "Hi"]}, data, config, "train")
    assert encoded["labels"] == [3.0, 1.0] and len(encoded["input_ids"]) == 2


def test_check_a_manifest_file(manifest, ftrun_manifest, ftrun_cli, ftrun_tiny_bert):
    path = ftrun_manifest({**manifest, "model": {"name": str(ftrun_tiny_bert)}})
    checked = ftrun_cli("check", "--manifest", path)
    assert checked.code == 0, checked
"""

#: A stage plugin: adds a metric to text-classification, and changes nothing else.
CONFIDENT_PLUGIN = '''
"""Adds ``confident``, the share of predictions whose top class wins by a margin, to text-classification."""

import numpy as np

from ftrun import Metrics, hookimpl

MARGIN = 1.0


@hookimpl
def ftrun_build_metrics(task, config, data):
    if task.name != "text-classification":
        return None
    own = task.build_metrics(config, data)

    def compute(prediction):
        top = np.sort(prediction.predictions, axis=-1)
        return {**own.compute(prediction), "confident": float(np.mean(top[:, -1] - top[:, -2] >= MARGIN))}

    return Metrics(compute=compute, best=own.best, greater_is_better=own.greater_is_better)
'''

CONFIDENT_CONFTEST = '''
import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="confident-test-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def cli():
    """The arguments every ftrun command of these tests takes (this suite's meaning of ``cli``)."""
    return ["--plugin", "ftrun_confident"]


@pytest.fixture
def config():
    """The plugin's own settings (not a RunConfig)."""
    import ftrun_confident

    return {"margin": ftrun_confident.MARGIN}


@pytest.fixture
def manifest(ftrun_manifest, tmp_path):
    """A text-classification manifest file, on rows of this suite's own."""
    rows = [f'{{"text": "item {i}", "label": "{label}"}}' for i, label in enumerate(["red", "green", "blue"] * 4)]
    (tmp_path / "colours.jsonl").write_text("\\n".join(rows) + "\\n")
    return ftrun_manifest(
        {
            "task": "text-classification",
            "plugins": ["ftrun_confident"],
            "data": {"train_file": "colours.jsonl", "eval_file": "colours.jsonl"},
            "metrics": {"names": ["accuracy"]},
        },
        name="colours.toml",
    )
'''

CONFIDENT_TESTS = """
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import numpy as np
from transformers import EvalPrediction

from ftrun import TaskData
from ftrun.testing import make_config


def test_the_plugin_is_listed(cli, ftrun_cli):
    listed = ftrun_cli("plugins", *cli)
    assert listed.code == 0, listed
    assert "ftrun_confident" in listed.out and "ftrun_build_metrics" in listed.out


def test_the_metric_joins_the_task_s_own(config, manifest, ftrun_config, ftrun_plugin_manager):
    run_config = ftrun_config(tomllib.loads(manifest.read_text()))
    manager = ftrun_plugin_manager("ftrun_confident")
    task = manager.task("text-classification")
    data = TaskData(train=None, eval=None, tokenizer=None, labels=["blue", "green", "red"])
    metrics = manager.get_plugin("ftrun_confident").ftrun_build_metrics(task=task, config=run_config, data=data)
    logits = np.array([[3.0, 0.0, 0.0], [0.2, 0.1, 0.0]])
    computed = metrics.compute(EvalPrediction(predictions=logits, label_ids=np.array([0, 1])))
    assert computed == {"accuracy": 0.5, "confident": 0.5} and config["margin"] == 1.0


def test_other_tasks_keep_their_metrics(ftrun_plugin_manager):
    from types import SimpleNamespace

    manager = ftrun_plugin_manager("ftrun_confident")
    assert manager.get_plugin("ftrun_confident").ftrun_build_metrics(task=SimpleNamespace(name="other"), config=None, data=None) is None


def test_make_config_outside_a_fixture(manifest):
    config = make_config(tomllib.loads(manifest.read_text()), base_dir=manifest.parent, source=manifest.name)
    assert config.source == "colours.toml" and config.data.train_file == str(manifest.parent / "colours.jsonl")
"""


def test_two_plugins_suites_with_their_own_cli_manifest_and_config_fixtures_run_in_one_session(pytester):
    for folder, plugin, module, conftest, tests in (
        ("wordcount", "ftrun_wordcount", WORDCOUNT_PLUGIN, WORDCOUNT_CONFTEST, WORDCOUNT_TESTS),
        ("confident", "ftrun_confident", CONFIDENT_PLUGIN, CONFIDENT_CONFTEST, CONFIDENT_TESTS),
    ):
        pytester.makepyfile(
            **{
                f"{folder}/{plugin}": textwrap.dedent(module),
                f"{folder}/tests/conftest": textwrap.dedent(conftest),
                f"{folder}/tests/test_{folder}": textwrap.dedent(tests),
            }
        )
    # In a process of its own, as a user runs them: an inline run (runpytest_inprocess) would
    # leave this process with two copies of the modules it imported first (pytester drops them
    # when it ends), which a later test's pickling trips over. -p: ftrun.testing as its
    # pytest11 entry point loads it, also where entry points are not loaded.
    result = pytester.runpytest_subprocess("wordcount/tests", "confident/tests", "-p", "ftrun.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9)
