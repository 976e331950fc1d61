"""``ftrun tune``: the [search] table, a study's results, pruning, resume after a stop or a kill, and two workers on one study."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import sample_reviews
from transformers import TrainerControl, TrainerState, TrainingArguments

from ftrun.commands.tune import ReportToTrial
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

SPACE = {"training.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "training.per_device_train_batch_size": {"choices": [4, 8]}}


@pytest.fixture
def tune_manifest(ftrun_manifest, tmp_path):
    """tune_manifest(**search): a tiny text-classification manifest with a [search] table."""
    rows = sample_reviews("imdb-train", 48)
    data = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[:40])), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[40:]))}

    def write(training: dict | None = None, **search):
        return ftrun_manifest(
            {
                "task": "text-classification",
                "model": {"config": TINY_BERT, "tokenizer_vocab_size": 300},
                "data": {**data, "max_length": 64},
                "training": {**TINY_TRAINING, **(training or {})},
                "search": {"trials": 3, "space": SPACE, **search},
            }
        )

    return write


def test_a_study_leaves_the_best_model_its_manifest_the_trials_and_plots(ftrun_cli, tune_manifest, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("tune", "--manifest", tune_manifest(), "--output-dir", out)
    assert result.code == 0, result
    assert "0 of 3 trials finished; maximize accuracy over training.learning_rate, training.per_device_train_batch_size" in result.out
    with open(out / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert [row["state"] for row in trials] == ["COMPLETE"] * 3
    best = max(trials, key=lambda row: float(row["value"]))  # the first of equals is Optuna's best, as max's
    # After each trial, the study's standing; the last one names the best trial.
    standings = [line for line in result.out.splitlines() if line.startswith("study: ")]
    assert [line.split(" (")[0] for line in standings] == [f"study: {n} of 3 trials finished" for n in (1, 2, 3)]
    assert f"(0 pruned, 0 running); best so far: trial {best['number']}, accuracy {float(best['value']):.4f} (training.learning_rate=" in standings[-1]
    assert json.loads((out / "eval_results.json").read_text())["eval_accuracy"] == pytest.approx(float(best["value"]))
    assert (out / "model.safetensors").read_bytes() == (out / "trials" / best["user_attrs_folder"] / "model.safetensors").read_bytes()
    assert f"learning_rate = {float(best['params_training.learning_rate'])}" in (out / "best.toml").read_text()
    assert ftrun_cli("check", "--manifest", out / "best.toml").code == 0  # runnable as it is
    assert "## Hyperparameter search" in (out / "README.md").read_text() and (out / "README.md").read_text().count("| complete |") == 3
    assert (out / "plots" / "search-history.png").stat().st_size > 0
    assert ftrun_cli("predict", "--model", out, "a fine film").code == 0
    again = ftrun_cli("tune", "--manifest", tune_manifest(), "--output-dir", out)  # finished: nothing is run again
    assert again.code == 0 and "3 of 3 trials finished" in again.out and "trial 3" not in again.out


@pytest.mark.parametrize(
    ("search", "words"),
    [
        ({"space": {"training.learning_rate": {"low": 1e-2, "high": 1e-4}}}, ("search.space.training.learning_rate", "low (0.01) must be below high (0.0001)")),
        ({"space": {"training.learning_rate": {"low": 0.0, "high": 1e-4, "log": True}}}, ("a log scale needs low > 0",)),
        ({"space": {"training.seed": {"low": 1, "high": 4, "choices": [1]}}}, ("give a range (low, high) or choices, not both",)),
        ({"space": {"training.learnin_rate": {"low": 1e-4, "high": 1e-3}}}, ("search.space", "training.learnin_rate", "did you mean learning_rate?")),
        ({"trials": 0}, ("search.trials", "greater than 0")),
        ({"metric": "f1"}, ("search.direction: needed for metric 'f1'", "'accuracy', the task's best metric")),
        ({"samplr": "tpe"}, ("search.samplr: unknown key (did you mean sampler?)",)),
    ],
)
def test_a_bad_search_table_is_one_line(ftrun_cli, tune_manifest, tmp_path, search, words):
    result = ftrun_cli("tune", "--manifest", tune_manifest(**search), "--output-dir", tmp_path / "out")
    assert result.code == 2, result
    line = result.err.strip()
    assert len(line.splitlines()) == 1 and all(word in line for word in words), line
    assert not (tmp_path / "out").exists()


def test_without_optuna_tune_says_what_to_install(ftrun_cli, tune_manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed: importing it raises ImportError
    result = ftrun_cli("tune", "--manifest", tune_manifest(), "--output-dir", tmp_path / "out")
    assert result.code == 2 and result.err.strip() == 'ftrun: error: ftrun tune needs Optuna: pip install "ftrun[tune]"'
    assert not (tmp_path / "out").exists()


def test_tune_needs_a_search_table(ftrun_cli, tmp_path):
    result = ftrun_cli("tune", "--task", "text-classification", "--demo", "--output-dir", tmp_path / "out")
    assert result.code == 2 and "no [search] table: say what to search over" in result.err


def test_a_plain_run_of_a_manifest_with_a_search_table_trains_once(ftrun_cli, tune_manifest, tmp_path):
    result = ftrun_cli("--manifest", tune_manifest(), "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "search: read by ftrun tune; this run trains once, with the manifest's own values" in result.out
    assert (tmp_path / "out" / "model.safetensors").exists() and not (tmp_path / "out" / "trials").exists()


def test_an_unpromising_trial_is_stopped_by_the_pruner():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    good = study.ask()
    for step in (1, 2, 3):
        good.report(0.9, step)
    study.tell(good, 0.9)
    args, state = TrainingArguments(output_dir="unused", report_to="none"), TrainerState()
    state.global_step = 2
    promising, promising_control = ReportToTrial(study.ask(), "accuracy"), TrainerControl()
    promising.on_evaluate(args, state, promising_control, metrics={"eval_accuracy": 0.95})
    assert not promising_control.should_training_stop and promising.pruned is None
    unpromising, control = ReportToTrial(study.ask(), "accuracy"), TrainerControl()
    unpromising.on_evaluate(args, state, control, metrics={"eval_accuracy": 0.2})
    assert control.should_training_stop and unpromising.pruned == 2


def tune_process(manifest: Path, out: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ftrun", "tune", "--manifest", str(manifest), "--output-dir", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def wait_for_a_checkpoint(folder: Path) -> None:
    """Until a run in ``folder`` has written a complete checkpoint (five minutes at the most)."""
    deadline = time.monotonic() + 300
    while not list(folder.glob("checkpoint-*/ftrun-checkpoint.json")) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_stopped_study_goes_on_and_retries_the_stopped_trial_from_its_checkpoint(ftrun_cli, tune_manifest, tmp_path):
    manifest = tune_manifest(
        training={"num_train_epochs": 40, "per_device_train_batch_size": 4}, trials=2, space={"training.learning_rate": {"low": 1e-4, "high": 1e-3}}
    )
    out = tmp_path / "out"
    process = tune_process(manifest, out)
    wait_for_a_checkpoint(out / "trials" / "trial-0")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    result = ftrun_cli("tune", "--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert "0 of 2 trials finished" in result.out
    assert "(trial-0; 0 of 2 finished)" in result.out and "resuming from" in result.out  # the stopped trial, in its folder, from its checkpoint
    with open(out / "trials.csv", newline="") as handle:
        states = [(row["number"], row["state"], row["user_attrs_folder"]) for row in csv.DictReader(handle)]
    assert states[0] == ("0", "FAIL", "trial-0") and [state for _, state, _ in states].count("COMPLETE") == 2


def test_a_trial_whose_process_was_killed_is_retried_once_its_heartbeat_is_stale(ftrun_cli, tune_manifest, tmp_path, monkeypatch):
    manifest = tune_manifest(
        training={"num_train_epochs": 12, "per_device_train_batch_size": 4}, trials=1, space={"training.learning_rate": {"low": 1e-4, "high": 1e-3}}
    )
    out = tmp_path / "out"
    process = tune_process(manifest, out)
    wait_for_a_checkpoint(out / "trials" / "trial-0")
    process.kill()  # SIGKILL: no handler runs, the trial stays RUNNING in the study
    process.communicate(timeout=60)
    monkeypatch.setattr("ftrun.commands.tune.GRACE_PERIOD", 1)  # instead of waiting 30 seconds
    time.sleep(2)
    result = ftrun_cli("tune", "--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert "(trial-0; 0 of 1 finished)" in result.out and "resuming from" in result.out  # the killed trial, in its folder, from its checkpoint
    with open(out / "trials.csv", newline="") as handle:
        states = [(row["number"], row["state"], row["user_attrs_folder"]) for row in csv.DictReader(handle)]
    assert states == [("0", "FAIL", "trial-0"), ("1", "COMPLETE", "trial-0")]


def test_two_processes_share_one_study(tune_manifest, tmp_path):
    manifest = tune_manifest(training={"num_train_epochs": 4}, trials=4)
    out = tmp_path / "out"
    processes = [tune_process(manifest, out) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    with open(out / "trials.csv", newline="") as handle:
        trials = [row for row in csv.DictReader(handle) if row["state"] == "COMPLETE"]
    assert len(trials) >= 4  # each worker stops once the study has 4; one may have started its last trial a moment before
    assert len({row["user_attrs_worker"] for row in trials}) == 2  # both took trials of the one study
    assert len({row["user_attrs_folder"] for row in trials}) == len(trials)
