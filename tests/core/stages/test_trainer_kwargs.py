"""A task's own Trainer subclass, tested from the outside as a plugin writes one.

It receives the run's model, data and config through ``Task.trainer_kwargs`` (nothing smuggled
through a collator), and a metric it logs under a name with a slash (as TRL logs
``rewards/accuracies``) works wherever metrics go: the summary, ``eval_results.json``, the plots
(as a flat file name), the model card's model-index and ``metrics.best``.
"""

from __future__ import annotations

import json

import pytest

from ftrun.stages.plots import file_name
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

PLUGIN = """
import transformers

import ftrun
from ftrun import hookimpl
from ftrun.plugins.text_classification.task import TextClassificationTask

#: What each Trainer was built with: the test sees what the trainer stage passed.
BUILT = []


class TallyingTrainer(ftrun.TrainerMixin, transformers.Trainer):
    def __init__(self, *args, train_examples, label_names, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_examples = train_examples
        BUILT.append({"train_examples": train_examples, "label_names": label_names, "collator": type(self.data_collator).__name__})

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        # Grows with each step: the last checkpoint is the best.
        output.metrics[f"{metric_key_prefix}_votes/share"] = self.train_examples / 100 + self.state.global_step
        return output


class TallyingTask(TextClassificationTask):
    name = "tallying"
    trainer_class = TallyingTrainer

    def trainer_kwargs(self, model, data, config):
        return {"train_examples": len(data.train), "label_names": data.labels}

    def build_metrics(self, config, data):
        metrics = super().build_metrics(config, data)
        metrics.best = "votes/share"
        return metrics


@hookimpl
def ftrun_register_tasks(register):
    register(TallyingTask())
"""


@pytest.fixture
def tallying(ftrun_plugin_module, ftrun_manifest, tmp_path):
    module = ftrun_plugin_module("ftrun_test_trainer_kwargs", PLUGIN)
    rows = [{"text": f"{'good' if i % 2 else 'bad'} film {i}", "label": "neg pos".split()[i % 2]} for i in range(24)]
    manifest = ftrun_manifest(
        {
            "task": "tallying",
            "plugins": [module],
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 100},
            "data": {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[:16])), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[16:]))},
            "training": {**TINY_TRAINING, "max_steps": 4, "eval_strategy": "steps", "eval_steps": 2, "save_strategy": "steps", "save_steps": 2},
        }
    )
    return module, manifest


def test_a_task_trainer_receives_the_run_s_data_and_its_slashed_metric_goes_everywhere(tallying, ftrun_cli, tmp_path):
    import sys

    module, manifest = tallying
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert sys.modules[module].BUILT == [{"train_examples": 16, "label_names": ["neg", "pos"], "collator": "DataCollatorWithPadding"}]
    expected = 16 / 100 + 4  # the best checkpoint, the last one, its metric again in the final evaluation
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_votes/share"] == pytest.approx(expected)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_metric"] == pytest.approx(expected) and state["best_model_checkpoint"] == "checkpoint-4"
    assert "votes/share" in result.out  # the summary table
    assert (out / "plots" / "eval_votes_share.png").is_file()
    card = (out / "README.md").read_text()
    assert "![eval_votes_share](plots/eval_votes_share.png)" in card
    assert "type: votes/share" in card and f"value: {expected}" in card  # the model-index
    assert f"| votes/share | {expected:.4f} |" in card


def test_a_metric_name_becomes_a_flat_file_name():
    assert file_name("eval_rewards/accuracies") == "eval_rewards_accuracies"
    assert file_name("eval_f1") == "eval_f1"
    assert file_name("a b\\c:d") == "a_b_c_d"
