"""A run's plots/: its curves with the best checkpoint marked, and each task's own figure, shown in the model card."""

import json

import pytest
from matplotlib.image import imread

from ftrun.stages.plots import training_curves


def test_a_run_plots_its_curves_and_the_confusion_matrix(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--set", "training.num_train_epochs=2")
    assert result.code == 0, result
    names = sorted(path.name for path in (out / "plots").iterdir())
    assert names == ["confusion_matrix.png", "eval_accuracy.png", "eval_f1.png", "loss.png"]
    assert all(imread(out / "plots" / name).shape[0] > 200 for name in names)  # real images, not empty files
    card = (out / "README.md").read_text()
    assert "![loss](plots/loss.png)" in card and "![confusion_matrix](plots/confusion_matrix.png)" in card


def test_the_curves_have_titles_labels_and_the_best_checkpoint_ringed():
    history = [
        {"step": 2, "loss": 0.9},
        {"step": 4, "loss": 0.7},
        {"step": 4, "eval_loss": 0.8, "eval_accuracy": 0.6, "eval_runtime": 0.1},
        {"step": 8, "loss": 0.5},
        {"step": 8, "eval_loss": 0.75, "eval_accuracy": 0.7, "eval_runtime": 0.1},
        {"step": 8, "train_runtime": 3.0, "train_loss": 0.7},
        {"step": 8, "eval_loss": 0.75, "eval_accuracy": 0.7},  # the final evaluation, of the best checkpoint: no point of the curve
    ]
    figures = training_curves(history, best_step=8)
    assert sorted(figures) == ["eval_accuracy", "loss"]  # the Trainer's bookkeeping (runtime) is no metric
    (axes,) = figures["eval_accuracy"].axes
    assert (axes.get_title(), axes.get_xlabel(), axes.get_ylabel()) == ("Eval accuracy", "step", "accuracy")
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["eval accuracy", "best checkpoint (step 8)"]
    (loss,) = figures["loss"].axes
    assert [line.get_label() for line in loss.get_lines()] == ["training loss", "eval loss"]
    assert list(loss.get_lines()[0].get_xdata()) == [2, 4, 8] and list(loss.get_lines()[1].get_xdata()) == [4, 8]


@pytest.mark.parametrize(("task", "figure"), [("ner", "f1_per_entity_type.png"), ("translation", "lengths.png")])
def test_each_task_adds_its_figure(ftrun_cli, ftrun_manifest, tmp_path, task, figure):
    from conftest import EMBEDDED, embedded_data

    from ftrun.testing import TINY_BERT, TINY_T5, TINY_TRAINING

    model = {"config": TINY_T5 if task == "translation" else TINY_BERT, "tokenizer_vocab_size": 300}
    training = {**TINY_TRAINING, **EMBEDDED[task].get("training", {})}
    manifest = ftrun_manifest(
        {"task": task, "model": model, "data": {**embedded_data(task), "max_train_samples": 32, "max_eval_samples": 16}, "training": training}
    )
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert (out / "plots" / figure).stat().st_size > 0
    assert json.loads((out / "eval_results.json").read_text())


def test_a_metric_per_part_is_a_line_of_the_metric_s_figure():
    """NER's per-type F1 (``LOC_f1``) is drawn with the overall ``f1``, not as a figure of its own."""
    history = [
        {"step": 4, "eval_loss": 0.8, "eval_f1": 0.4, "eval_LOC_f1": 0.6, "eval_PER_f1": 0.2, "eval_precision": 0.5},
        {"step": 8, "eval_loss": 0.7, "eval_f1": 0.5, "eval_LOC_f1": 0.7, "eval_PER_f1": 0.3, "eval_precision": 0.6},
    ]
    figures = training_curves(history, best_step=8)
    assert sorted(figures) == ["eval_f1", "eval_precision", "loss"]
    (axes,) = figures["eval_f1"].axes
    lines = {line.get_label(): list(line.get_ydata()) for line in axes.get_lines()}
    assert lines == {"LOC": [0.6, 0.7], "PER": [0.2, 0.3], "eval f1 (all)": [0.4, 0.5]}
