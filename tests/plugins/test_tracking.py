"""report_to: TensorBoard's event files and MLflow's run read back with their own libraries; a missing package is one line."""

import json

import pytest


def test_tensorboard_logs_the_loss_and_the_eval_metrics_at_their_steps(ftrun_cli, tiny_manifest, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--set", 'training.report_to=["tensorboard"]', "--set", "training.num_train_epochs=2")
    assert result.code == 0, result
    assert f"logs to TensorBoard in {out / 'runs'}" in result.out.splitlines()[0]
    (folder,) = (out / "runs").iterdir()  # the run's folder: an event file from training, one from the final evaluation
    logs = EventAccumulator(str(folder))
    logs.Reload()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = {entry["step"]: entry["loss"] for entry in history if "loss" in entry}
    assert {event.step: event.value for event in logs.Scalars("train/loss")} == pytest.approx(losses, rel=1e-6)
    evaluations = [entry for entry in history if "eval_accuracy" in entry]  # each epoch's, and the final one
    scalars = logs.Scalars("eval/accuracy")
    assert [event.step for event in scalars] == [entry["step"] for entry in evaluations]
    assert [event.value for event in scalars] == pytest.approx([entry["eval_accuracy"] for entry in evaluations], rel=1e-6)


def test_mlflow_records_the_metrics_the_manifest_and_the_versions(ftrun_cli, tiny_manifest, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from ftrun import __version__

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # where MLflow puts the artifacts of a database store: ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "ftrun-test")
    mlflow.set_tracking_uri(store)
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--set", 'training.report_to=["mlflow"]')
    assert result.code == 0, result
    assert f"logs to MLflow at {store}" in result.out.splitlines()[0]
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("ftrun-test").experiment_id])
    final = json.loads((out / "eval_results.json").read_text())
    assert run.data.metrics["eval_accuracy"] == pytest.approx(final["eval_accuracy"])
    assert run.data.params["ftrun.version"] == __version__
    assert run.data.params["ftrun.plugin.text-classification"] == f"ftrun {__version__}"
    manifest = client.download_artifacts(run.info.run_id, "ftrun.toml", str(tmp_path))
    assert open(manifest).read() == (out / "ftrun.toml").read_text()


def test_a_service_whose_package_is_missing_is_one_line_at_check(fails, tiny_manifest, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "mlflow" else real(name, *args))
    line = fails("check", "--manifest", tiny_manifest, "--set", 'training.report_to=["mlflow"]', words=())
    assert line == 'ftrun: error: --set training.report_to: "mlflow" needs the mlflow package: pip install "ftrun[mlflow]"'
