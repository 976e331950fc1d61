"""The length of an example is the task's (``example_lengths``): what grouped batches, sorted evaluation and the pre-flight use.

Tested from the outside, as a task plugin defines it: a length the task computes is the one the
Trainer's samplers and ``ftrun check`` use, and a task whose inputs have one size gets random
batches, said in the report rather than silently grouped by nothing.
"""

from __future__ import annotations

import json

import datasets
import pytest
from torch.utils.data import RandomSampler

import ftrun
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

PLUGIN = """
from ftrun import hookimpl, lengths_of
from ftrun.plugins.text_classification.task import TextClassificationTask

#: The size of each split the task measured: the stages that call it, seen from the test.
MEASURED = []


class ShortestFirst(TextClassificationTask):
    name = "shortest-first"

    def example_lengths(self, features, config):
        MEASURED.append(len(features))
        return [1000 - n for n in lengths_of(features, "input_ids")]


class OneSize(TextClassificationTask):
    name = "one-size"

    def example_lengths(self, features, config):
        return None


@hookimpl
def ftrun_register_tasks(register):
    register(ShortestFirst())
    register(OneSize())
"""


def test_lengths_of_reads_each_sequence_and_the_longest_of_several():
    features = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3], [4]], "choices": [[[1, 2], [1, 2, 3, 4], [5]], [[6]]], "label": [0, 1]})
    assert ftrun.lengths_of(features, "input_ids") == [3, 1]
    assert ftrun.lengths_of(features, "choices") == [4, 1]  # (choices, tokens): the longest choice
    assert ftrun.lengths_of(features, "label") is None  # one value per example: no length
    assert ftrun.lengths_of(features, "pixel_values") is None


def test_the_trainer_groups_by_the_task_length_and_draws_inputs_of_one_size_at_random(tmp_path, ftrun_tiny_bert):
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    features = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in range(1, 9)], "labels": [0, 1] * 4})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, train_sampling_strategy="group_by_length", report_to=[])
    trainer = ftrun.Trainer(model=AutoModelForSequenceClassification.from_pretrained(ftrun_tiny_bert, num_labels=2), args=args, train_dataset=features)
    trainer.example_lengths = lambda dataset: [10 - n for n in ftrun.lengths_of(dataset, "input_ids")]
    assert trainer._get_train_sampler().lengths == [9, 8, 7, 6, 5, 4, 3, 2]
    assert trainer._get_eval_sampler(features).order == list(range(8))  # the task's longest first
    trainer.example_lengths = lambda dataset: None
    assert isinstance(trainer._get_train_sampler(), RandomSampler)


@pytest.fixture
def run_of(ftrun_manifest, ftrun_plugin_module, tmp_path):
    """run_of(task, **training) -> a manifest of a tiny run of one of this file's tasks."""
    module = ftrun_plugin_module("ftrun_test_example_lengths", PLUGIN)
    texts = ["a b c d e f g h i j"[: 2 * (1 + i % 5)] for i in range(24)]
    rows = [{"text": text, "label": "ab"[i % 2]} for i, text in enumerate(texts)]

    def make(task: str, **training):
        return ftrun_manifest(
            {
                "task": task,
                "plugins": [module],
                "model": {"config": TINY_BERT, "tokenizer_vocab_size": 100},
                "data": {
                    "train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[:16])),
                    "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[16:])),
                },
                "training": {**TINY_TRAINING, **training},
            }
        )

    return make


def test_a_run_and_ftrun_check_measure_with_the_task_length(run_of, ftrun_cli, tmp_path):
    import sys

    manifest = run_of("shortest-first", max_steps=2)
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    measured = sys.modules["ftrun_test_example_lengths"].MEASURED
    assert {16, 8} <= set(measured)  # the train split (grouped batches, pre-flight) and the eval split (sorted)
    report = json.loads(ftrun_cli("check", "--manifest", manifest, "--json").out)
    assert report["schedule"]["grouped"] is True
    assert report["schedule"]["real_tokens"] > 16 * 900  # the task's lengths, not the tokens


def test_inputs_of_one_size_are_drawn_at_random_and_ftrun_check_says_so(run_of, ftrun_cli, tmp_path):
    report = json.loads(ftrun_cli("check", "--manifest", run_of("one-size"), "--json").out)
    assert (report["schedule"]["grouped"], report["schedule"]["real_tokens"]) == (False, None)
    assert not [finding for finding in report["warnings"] if finding["key"] == "training.train_sampling_strategy"]  # the default's grouping: no finding
    shown = ftrun_cli("check", "--manifest", run_of("one-size"))
    shown = " ".join((shown.out + shown.err).split())
    assert "│ training batches │ random order: one-size's inputs have no length to" in shown  # the schedule table's row
    asked = json.loads(ftrun_cli("check", "--manifest", run_of("one-size", train_sampling_strategy="group_by_length"), "--json").out)
    [line] = [finding["line"] for finding in asked["warnings"] if finding["key"] == "training.train_sampling_strategy"]
    assert "group_by_length has no effect: task one-size's inputs have no length to group by" in line
