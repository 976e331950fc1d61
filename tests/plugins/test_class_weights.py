"""The class-weights plugin: the weighted loss, balanced weights, the runs it serves and the ones it refuses."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ftrun.plugins.class_weights import WeightedCrossEntropy, balanced_weights
from ftrun.testing import TINY_BERT, TINY_T5, TINY_TRAINING, write_jsonl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
MULTILABEL = ROOT / "examples" / "plugins" / "ftrun-multilabel"
REVIEWS = ROOT / "plugins" / "text_classification" / "data"

# -- the loss -------------------------------------------------------------------------------------


def test_the_loss_is_each_labels_cross_entropy_times_its_weight():
    logits, labels = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]]), torch.tensor([0, 1, 1])
    loss = WeightedCrossEntropy([0.56, 5.0], ["neg", "pos"], "balanced")
    expected = F.cross_entropy(logits, labels, reduction="none") * torch.tensor([0.56, 5.0, 5.0])
    assert torch.allclose(loss(logits, labels), expected)  # one loss per label: ftrun sums them and divides by their count
    assert loss.describe() == "class weights (balanced): neg 0.56, pos 5.00"
    smoothed = WeightedCrossEntropy([0.56, 5.0], ["neg", "pos"], "balanced", label_smoothing=0.1)  # training.label_smoothing_factor
    assert torch.allclose(smoothed(logits, labels), F.cross_entropy(logits, labels, weight=torch.tensor([0.56, 5.0]), label_smoothing=0.1, reduction="none"))


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    ids = np.array([0] * 9 + [1])
    assert balanced_weights(ids, 2) == pytest.approx([10 / (2 * 9), 10 / (2 * 1)])
    assert balanced_weights(ids, 2) == pytest.approx(compute_class_weight("balanced", classes=np.array([0, 1]), y=ids))
    # A label train lacks is never a target: it weighs 1.0, and the others are balanced among themselves.
    assert balanced_weights(np.array([0, 0, 0, 2]), 3) == pytest.approx([4 / (2 * 3), 1.0, 4 / (2 * 1)])


# -- runs -----------------------------------------------------------------------------------------

PEOPLE = [("Angela", "Merkel"), ("Peter", "Blackburn"), ("John", "Smith"), ("Mary", "Jones")]
PLACES = ["Paris", "Berlin", "London", "Madrid"]


def sentences(count: int) -> list[dict]:
    """Six words a sentence, three of them outside any entity: O is half the tags."""
    return [
        {"tokens": [*PEOPLE[i % 4], "visited", PLACES[i // 4 % 4], "today", "."], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC", "O", "O"]} for i in range(count)
    ]


def test_an_ner_run_weighs_each_tag(ftrun_cli, ftrun_manifest, tmp_path):
    manifest = ftrun_manifest(
        {
            "task": "ner",
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 100, "tokenizer_lowercase": False},
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", sentences(32))),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", sentences(8))),
            },
            "training": TINY_TRAINING,
            "class_weights": {"weights": "balanced"},
        }
    )
    assert ftrun_cli("check", "--manifest", manifest).code == 0  # on a sample of the features, encoded for the check
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    # Only a word's first sub-token is scored (the rest are -100): 6 labels a sentence, 4 tags, O 3 of them.
    assert "class weights (balanced): B-LOC 1.50, B-PER 1.50, I-PER 1.50, O 0.50" in result.out
    assert tomllib.loads((result.output_dir / "ftrun.toml").read_text())["class_weights"] == {"weights": "balanced"}


def test_given_weights_leave_the_other_labels_at_one(ftrun_cli, tiny_manifest, tmp_path):
    result = ftrun_cli("--manifest", tiny_manifest, "--set", "class_weights.weights.pos=5", "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "class weights (given): neg 1.00, pos 5.00" in result.out


#: The eval predictions' macro F1 (the task's f1 is the positive label's), which also picks the best checkpoint.
MACRO_F1 = """
import numpy as np

from ftrun import Metrics, hookimpl


@hookimpl
def ftrun_build_metrics(task, config, data):
    from sklearn.metrics import f1_score

    own = task.build_metrics(config, data)

    def compute(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {**own.compute(prediction), "macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro"))}

    return Metrics(compute=compute, best="macro_f1")
"""


def imbalanced_reviews(name: str, negative: int, positive: int) -> list[dict]:
    """The first reviews of each label in text-classification's embedded IMDB sample, each cut to its last 500 characters (where the verdict is)."""
    with gzip.open(REVIEWS / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    chosen = [row for row in rows if row["label"] == 0][:negative] + [row for row in rows if row["label"] == 1][:positive]
    return [{"text": row["text"][-500:], "label": ["neg", "pos"][row["label"]]} for row in chosen]


def test_balanced_weights_raise_macro_f1_on_an_imbalanced_sample(ftrun_cli, ftrun_manifest, ftrun_plugin_module, tmp_path, record_property):
    # 496 negative reviews and 55 positive ones (90% / 10%); evaluated on 90 and 30 others. Without weights the
    # tiny model settles on the majority, neg for every review; with them it learns to find some positives.
    ftrun_plugin_module("macro_f1", MACRO_F1)
    tables = {
        "task": "text-classification",
        "model": {"config": {**TINY_BERT, "hidden_dropout_prob": 0.3, "attention_probs_dropout_prob": 0.3}, "tokenizer_vocab_size": 2000},
        "data": {
            "train_file": str(write_jsonl(tmp_path / "train.jsonl", imbalanced_reviews("imdb-train", 496, 55))),
            "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", imbalanced_reviews("imdb-eval", 90, 30))),
            "max_length": 128,
        },
        "training": {
            **TINY_TRAINING,
            "num_train_epochs": 15,
            "per_device_train_batch_size": 32,
            "per_device_eval_batch_size": 64,
            "weight_decay": 0.05,
            "logging_steps": 10,
        },
    }
    scores = {}
    for weights in (None, "balanced"):
        manifest = ftrun_manifest({**tables, "class_weights": {"weights": weights}} if weights else tables, name=f"{weights}.toml")
        result = ftrun_cli("--manifest", manifest, "--plugin", "macro_f1", "--output-dir", tmp_path / f"{weights}")
        assert result.code == 0, result
        scores[weights] = result.run.eval_metrics["eval_macro_f1"]  # of the best checkpoint, by macro F1
    record_property("figure", f"class weights, IMDB 90% neg / 10% pos: eval macro F1 {scores[None]:.3f} unweighted, {scores['balanced']:.3f} balanced")
    assert scores["balanced"] > scores[None] + 0.05, scores


# -- what it refuses: one line, before anything is written ----------------------------------------


@pytest.mark.parametrize(
    ("weights", "line"),
    [
        ("balance", "run.toml: class_weights.weights: expected \"balanced\" or a table of weights by label name, got 'balance'"),
        ({"poss": 2.0}, "run.toml: class_weights.weights.poss: the data has no label 'poss' (did you mean pos?); its labels: neg, pos"),
        ({"neg": 1.0, "pos": 0}, "run.toml: class_weights.weights.pos: a weight must be greater than 0, got 0"),
        ({"pos": -2.5}, "run.toml: class_weights.weights.pos: a weight must be greater than 0, got -2.5"),
    ],
    ids=["misspelt", "unknown-label", "zero", "negative"],
)
def test_bad_weights_are_one_line(fails, ftrun_manifest, tiny_manifest, tmp_path, weights, line):
    manifest = ftrun_manifest({**tomllib.loads(tiny_manifest.read_text()), "class_weights": {"weights": weights}})
    ran = fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=())
    assert ran == f"ftrun: error: {line}"
    assert fails("check", "--manifest", manifest, words=()) == ran


def test_a_task_without_labels_is_refused(fails, ftrun_manifest, tmp_path):
    pairs = [{"translation": {"en": f"a dog runs {i} times", "de": f"ein Hund läuft {i} mal"}} for i in range(8)]
    manifest = ftrun_manifest(
        {
            "task": "translation",
            "model": {"config": TINY_T5, "tokenizer_vocab_size": 200},
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", pairs)),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", pairs)),
                "source_lang": "en",
                "target_lang": "de",
            },
            "training": TINY_TRAINING,
            "class_weights": {"weights": "balanced"},
        }
    )
    line = (
        "ftrun: error: run.toml: class_weights.weights: task translation has no class labels to weigh: "
        "class weights are for tasks that pick one label per example or per token (text-classification, ner)"
    )
    assert fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=()) == line
    assert fails("check", "--manifest", manifest, words=()) == line


def test_labels_that_are_not_class_ids_are_refused(fails, ftrun_manifest, monkeypatch, tmp_path):
    # Multi-label classification learns a float per label for each text (examples/plugins/ftrun-multilabel).
    monkeypatch.syspath_prepend(str(MULTILABEL))
    data = MULTILABEL / "ftrun_multilabel" / "data"
    manifest = ftrun_manifest(
        {
            "task": "multilabel-classification",
            "plugins": ["ftrun_multilabel"],
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {"train_file": str(data / "train.jsonl"), "eval_file": str(data / "eval.jsonl")},
            "training": TINY_TRAINING,
            "class_weights": {"weights": {"billing": 2.0}},
        }
    )
    line = (
        "ftrun: error: run.toml: class_weights.weights: the train labels of task multilabel-classification are not class ids but numbers per label "
        "(several labels per example?): class weights are for tasks that pick one label per example or per token"
    )
    assert fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=()) == line
    assert fails("check", "--manifest", manifest, words=()) == line
