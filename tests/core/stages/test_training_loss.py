"""A plugin's training loss (ftrun_training_loss), as a third-party plugin supplies it: the Trainer's contract is ftrun's."""

from __future__ import annotations

import pytest

from ftrun.testing import TINY_BERT, TINY_CORPUS, TINY_GPT2, TINY_TRAINING, write_jsonl

#: A third-party plugin, written from docs/plugins.md: plain cross-entropy, so that a run with it equals a run without.
PLAIN = """
import torch.nn.functional as F
from ftrun import Section, hookimpl

calls = []


class PlainTable(Section):
    scale: float = 1.0


@hookimpl
def ftrun_register_tables(register):
    register("plain_loss", PlainTable)


@hookimpl
def ftrun_training_loss(task, config, data):
    settings = config.tables.get("plain_loss")
    if settings is None:
        return None

    def loss(logits, labels):
        calls.append((logits.dtype, tuple(logits.shape), tuple(labels.shape), bool((labels == -100).any())))
        return settings.scale * F.cross_entropy(logits, labels, reduction="none")

    return loss
"""

#: A focal loss (Lin et al., 2017), as a loss plugin would ship it.
FOCAL = """
import torch
import torch.nn.functional as F
from ftrun import Section, hookimpl


class FocalTable(Section):
    gamma: float = 2.0


@hookimpl
def ftrun_register_tables(register):
    register("focal", FocalTable)


@hookimpl
def ftrun_training_loss(task, config, data):
    settings = config.tables.get("focal")
    if settings is None:
        return None

    def loss(logits, labels):
        ce = F.cross_entropy(logits, labels, reduction="none")
        return (1 - torch.exp(-ce)) ** settings.gamma * ce

    return loss
"""


def losses(result) -> tuple[float, float]:
    """A run's mean training loss and its final eval loss."""
    return result.run.train_metrics["train_loss"], result.run.eval_metrics["eval_loss"]


#: No dropout, and batches in the file's order: two runs that see the same examples per step train alike.
SAME_STEPS = {"train_sampling_strategy": "sequential"}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def test_a_plain_cross_entropy_plugin_trains_as_the_models_own_loss_whatever_the_accumulation(
    ftrun_cli, ftrun_plugin_module, ftrun_manifest, reviews, tmp_path
):
    # One step of 8 examples by the model's own loss, and the same step as 2 accumulated batches of 4 by the plugin's:
    # the normalisation over the accumulated labels (num_items_in_batch) and the eval loss are ftrun's to get right.
    plugin = __import__(ftrun_plugin_module("plain_loss_plugin", PLAIN))
    train, evaluation = reviews
    tables = {
        "task": "text-classification",
        "model": {"config": {**TINY_BERT, **NO_DROPOUT}, "tokenizer_vocab_size": 500},
        "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
        "training": {**TINY_TRAINING, **SAME_STEPS},
    }
    own = ftrun_cli("--manifest", ftrun_manifest(tables), "--output-dir", tmp_path / "own")
    steps = {"training": {**tables["training"], "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}}
    given = ftrun_cli("--manifest", ftrun_manifest({**tables, **steps, "plain_loss": {}}), "--plugin", "plain_loss_plugin", "--output-dir", tmp_path / "plugin")
    assert own.code == 0 and given.code == 0, (own, given)
    assert plugin.calls, "the plugin's loss was never called"
    dtype, logits, labels, ignored = plugin.calls[0]
    assert str(dtype) == "torch.float32" and logits == (labels[0], 2) and not ignored  # [N, labels] scores, N label ids, no -100
    assert losses(given) == pytest.approx(losses(own), rel=1e-3)  # the training loss, and the eval loss, which goes through it too


def test_a_causal_lm_plugin_loss_sees_the_labels_shifted(ftrun_cli, ftrun_plugin_module, ftrun_manifest, tmp_path):
    ftrun_plugin_module("plain_loss_plugin", PLAIN)
    rows = [{"text": text} for text in TINY_CORPUS[:24]]
    tables = {
        "task": "causal-lm",
        "model": {"config": {**TINY_GPT2, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}, "tokenizer_vocab_size": 300},
        "data": {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[4:])), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:4]))},
        "training": {**TINY_TRAINING, **SAME_STEPS},
    }
    own = ftrun_cli("--manifest", ftrun_manifest(tables), "--output-dir", tmp_path / "own")
    steps = {"training": {**tables["training"], "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}}
    given = ftrun_cli("--manifest", ftrun_manifest({**tables, **steps, "plain_loss": {}}), "--plugin", "plain_loss_plugin", "--output-dir", tmp_path / "plugin")
    assert own.code == 0 and given.code == 0, (own, given)
    assert losses(given) == pytest.approx(losses(own), rel=1e-3)


def test_a_focal_loss_plugin_changes_the_loss(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module("focal_loss", FOCAL)
    own = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "own")
    focal = ftrun_cli("--manifest", tiny_manifest, "--plugin", "focal_loss", "--set", "focal.gamma=2.0", "--output-dir", tmp_path / "focal")
    assert own.code == 0 and focal.code == 0, (own, focal)
    # Focal loss down-weighs confident predictions: below cross-entropy, always.
    assert losses(focal)[1] < losses(own)[1]


def test_two_loss_plugins_are_one_error_naming_both(fails, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module("focal_loss", FOCAL)
    args = ("--manifest", tiny_manifest, "--plugin", "focal_loss", "--set", "focal.gamma=2.0", "--set", 'class_weights.weights="balanced"')
    line = (
        "ftrun: error: plugin class-weights (ftrun 0.1.0) and plugin focal_loss each supply the training loss (ftrun_training_loss): "
        "a run has one; remove the tables of all but one"
    )
    assert fails(*args, "--output-dir", tmp_path / "out", words=()) == line
    assert fails("check", *args, words=()) == line


def test_a_loss_plugin_on_a_task_without_logits_over_labels_is_refused(fails, ftrun_plugin_module, ftrun_manifest, tmp_path):
    from ftrun.testing import TINY_ROWS

    ftrun_plugin_module("focal_loss", FOCAL)
    rows = write_jsonl(tmp_path / "squad.jsonl", TINY_ROWS["question-answering"])  # answers are spans: start and end logits, no labels
    manifest = ftrun_manifest(
        {
            "task": "question-answering",
            "plugins": ["focal_loss"],
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {"train_file": str(rows), "eval_file": str(rows), "max_length": 64, "doc_stride": 16},
            "training": TINY_TRAINING,
            "focal": {"gamma": 2.0},
        }
    )
    line = (
        "ftrun: error: plugin focal_loss supplies the training loss, but the head of task question-answering gives no logits over labels "
        "(Task.logits_over_labels is false): a loss over labels cannot apply to it"
    )
    assert fails("check", "--manifest", manifest, words=()) == line


def test_which_tasks_give_logits_over_labels():
    from ftrun import load_run

    given = {}
    for name in ("causal-lm", "ner", "question-answering", "summarization", "text-classification", "translation"):
        manager, config = load_run(task=name, demo=True)
        given[name] = manager.task(name).logits_over_labels(config)
    assert given == {
        "causal-lm": True,
        "ner": True,
        "question-answering": False,
        "summarization": True,
        "text-classification": True,
        "translation": True,
    }
