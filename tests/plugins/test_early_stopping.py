"""The early-stopping plugin: its table, a run that stops, its summary, and the settings it refuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_stops_early_and_ends_on_its_best_checkpoint(ftrun_cli, tiny_manifest, tmp_path):
    # No accuracy improves on another by more than 1: the second evaluation is one without
    # improvement whatever the model learns, and patience 1 stops the run there, at epoch 2 of 6.
    out = tmp_path / "out"
    stopping = ("--set", "early_stopping.patience=1", "--set", "early_stopping.threshold=1.0")
    result = ftrun_cli("--manifest", tiny_manifest, "--set", "training.num_train_epochs=6", *stopping, "--output-dir", out)
    assert result.code == 0, result
    state = json.loads((out / "trainer_state.json").read_text())
    assert (state["global_step"], state["max_steps"]) == (12, 36)  # 6 steps an epoch
    best = out / Path(state["best_model_checkpoint"]).name
    assert (
        "early stopping: stopped at step 12 of 36 (epoch 2 of 6), after 1 evaluation without eval_accuracy improving by more than 1; "
        f"the model is the best checkpoint, {best.name} (eval_accuracy {state['best_metric']:.4g})"
    ) in result.out
    saved, kept = load_file(out / "model.safetensors"), load_file(best / "model.safetensors")
    assert saved.keys() == kept.keys() and all(torch.equal(saved[name], kept[name]) for name in saved)
    assert json.loads((out / "eval_results.json").read_text())["eval_accuracy"] == state["best_metric"]
    assert tomllib.loads((out / "ftrun.toml").read_text())["early_stopping"] == {"patience": 1, "threshold": 1.0}  # written whole


def test_a_run_too_short_to_stop_is_warned_and_says_it_never_triggered(ftrun_cli, tiny_manifest, tmp_path):
    warning = (
        "warning: run.toml: early_stopping.patience: the run evaluates 1 time, and stopping early takes 4 evaluations "
        "(a best one, then 3 without improvement): it cannot stop before its end; lower patience, or evaluate more often"
    )
    checked = ftrun_cli("check", "--manifest", tiny_manifest, "--set", "early_stopping.threshold=0.01")
    assert checked.code == 0, checked
    assert warning in checked.out
    result = ftrun_cli("--manifest", tiny_manifest, "--set", "early_stopping.threshold=0.01", "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert (
        "early stopping: never triggered (never 3 evaluations without eval_accuracy improving by more than 0.01), trained to step 6 of 6 (epoch 1 of 1)"
        in result.out
    )


@pytest.fixture
def early(tiny_manifest, ftrun_manifest):
    """early(training, table): tiny_manifest with these [training] settings and this [early_stopping] table, as early.toml."""

    def write(training: dict, table: dict) -> Path:
        tables = tomllib.loads(tiny_manifest.read_text())
        return ftrun_manifest({**tables, "training": {**tables["training"], **training}, "early_stopping": table}, name="early.toml")

    return write


@pytest.mark.parametrize(
    ("training", "line"),
    [
        pytest.param(
            {"eval_strategy": "no"},
            'early.toml: training.eval_strategy: early stopping compares evaluations, and this run has none: set eval_strategy = "epoch" or "steps"',
            id="no-evaluation",
        ),
        pytest.param(
            {"load_best_model_at_end": False},
            "early.toml: training.load_best_model_at_end: early stopping ends a run 2 evaluations after its best: "
            "set load_best_model_at_end = true to end it on the best checkpoint",
            id="best-not-loaded",
        ),
        pytest.param(
            {"save_strategy": "steps"},
            "early.toml: training.save_strategy: early stopping keeps the best checkpoint, so checkpoints are saved when the run evaluates: "
            'set save_strategy = "epoch" (as eval_strategy) or "best"',
            id="saved-on-other-steps",
        ),
        pytest.param(
            {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 4, "save_steps": 6},
            "early.toml: training.save_steps: early stopping keeps the best checkpoint, so checkpoints are saved when the run evaluates: "
            "save_steps = 6 is not a multiple of eval_steps = 4",
            id="saves-between-evaluations",
        ),
    ],
)
def test_training_settings_early_stopping_cannot_work_with_stop_before_anything_loads(fails, early, tmp_path, training, line):
    manifest = early(training, {"patience": 2})
    ran = fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=())
    assert ran == f"ftrun: error: {line}"
    assert fails("check", "--manifest", manifest, words=()) == ran


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ({"patiense": 2}, "early.toml: early_stopping.patiense: unknown key (did you mean patience?)"),
        ({"patience": 0}, "early.toml: early_stopping.patience: input should be greater than 0, got 0"),
        ({"threshold": -0.1}, "early.toml: early_stopping.threshold: input should be greater than or equal to 0, got -0.1"),
    ],
)
def test_the_table_is_validated_like_every_other(fails, early, table, line):
    assert fails("check", "--manifest", early({}, table), words=()) == f"ftrun: error: {line}"


def test_the_plugin_guide_shows_the_whole_plugin_as_it_is():
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    source = (ROOT / "plugins" / "early_stopping.py").read_text(encoding="utf-8")
    assert f"```python\n{source}```" in guide, "docs/plugins.md's tutorial of a plugin that is not a task no longer shows plugins/early_stopping.py"
