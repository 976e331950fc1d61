"""The command line as a user meets it first: help, version, python -m, listings."""

import subprocess
from pathlib import Path
import sys

import pytest

from ftrun import __version__
from ftrun.config import apply_overrides, build_config, parse_override
from ftrun.errors import FtrunError
from ftrun.plugin_manager import get_plugin_manager


def test_version_and_help(ftrun_cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ftrun_cli("--version")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ftrun {__version__}"
    with pytest.raises(SystemExit):
        ftrun_cli("--help")
    text = capsys.readouterr().out
    for word in ("--task", "--manifest", "--set", "--output-dir", "--demo", "tasks", "plugins", "check", "predict"):
        assert word in text


def test_python_dash_m_and_console_script_agree():
    module = subprocess.run([sys.executable, "-m", "ftrun", "--version"], capture_output=True, text=True, check=True)
    assert module.stdout.strip() == f"ftrun {__version__}"


def test_tasks_lists_the_task_and_its_plugin(ftrun_cli):
    result = ftrun_cli("tasks")
    assert result.code == 0
    rows = {line.split()[0]: line.split()[1:5] for line in result.out.splitlines()}
    manager = get_plugin_manager()  # other installed plugins' tasks (the tutorial's text-regression) are no built-ins
    builtins = [name for name, (_, plugin) in manager.tasks().items() if manager.info[plugin].dist == "ftrun"]
    assert {"text-classification", "ner", "translation", "question-answering"} <= set(builtins)
    for name in builtins:
        assert rows[name] == ["plugin", name, "(ftrun", f"{__version__})"]


def test_no_task_named_lists_the_installed_ones(ftrun_cli):
    result = ftrun_cli()
    assert result.code == 2
    installed = ", ".join(sorted(get_plugin_manager().tasks()))
    assert result.err.strip() == f"ftrun: error: name a task with --task or the manifest's task key (installed: {installed})"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("training.num_train_epochs=2", (["training", "num_train_epochs"], 2)),
        ("training.learning_rate=1e-4", (["training", "learning_rate"], 1e-4)),
        ("model.name=bert-base-uncased", (["model", "name"], "bert-base-uncased")),  # bare word: a string
        ("model.name='a=b'", (["model", "name"], "a=b")),
        ("metrics.names=['accuracy', 'f1']", (["metrics", "names"], ["accuracy", "f1"])),
        ("model.config.hidden_size=64", (["model", "config", "hidden_size"], 64)),
        ("training.fp16=false", (["training", "fp16"], False)),
    ],
)
def test_set_values_are_parsed_as_toml(text, expected):
    assert parse_override(text) == expected


def test_overrides_create_nested_tables():
    assert apply_overrides({"model": {"name": "x"}}, ["model.config.layers=2"]) == {"model": {"name": "x", "config": {"layers": 2}}}


def test_errors_about_overridden_keys_name_the_flag(tmp_path):
    task = get_plugin_manager().task("text-classification")
    with pytest.raises(FtrunError, match=r"^--set training.num_train_epochs: expected float, got a string 'three'$"):
        build_config(task, {}, source="run.toml", base_dir=tmp_path, overrides=["training.num_train_epochs='three'"])
    with pytest.raises(FtrunError, match=r"^run.toml: training.num_train_epochs: expected float"):
        build_config(task, {"training": {"num_train_epochs": "three"}}, source="run.toml", base_dir=tmp_path)


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path):
    task = get_plugin_manager().task("text-classification")
    (tmp_path / "model").mkdir()
    manifest = {"model": {"name": "model"}, "data": {"train_file": "d/train.csv", "eval_file": "d/eval.csv"}}
    config = build_config(task, manifest, source="run.toml", base_dir=tmp_path)
    assert config.data.train_file == str(tmp_path / "d" / "train.csv")
    assert config.model.name == str(tmp_path / "model")
    hub = build_config(task, {"model": {"name": "bert-base-cased"}}, source="run.toml", base_dir=tmp_path)
    assert hub.model.name == "bert-base-cased"  # not a local folder: a Hub id


def test_defaults_are_the_seed_recipe(tmp_path):
    task = get_plugin_manager().task("text-classification")
    config = build_config(task, {}, source="--task text-classification", base_dir=tmp_path)
    assert config.model.name == "bert-base-uncased"
    assert (config.data.dataset, config.data.train_split, config.data.eval_split) == ("imdb", "train", "test")
    assert (config.data.max_train_samples, config.data.max_eval_samples, config.data.shuffle_seed) == (1000, 200, 42)
    training = config.training
    assert training["num_train_epochs"] == 3 and training["per_device_train_batch_size"] == 8
    assert training["warmup_steps"] == 500 and training["weight_decay"] == 0.01 and training["logging_steps"] == 10
    assert training["eval_strategy"] == training["save_strategy"] == "epoch" and training["load_best_model_at_end"]
    assert training["train_sampling_strategy"] == "group_by_length"
    assert config.metrics.best == "accuracy" and len(config.predict.examples) == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.config.hidden_sise=64", "--set model.config.hidden_sise: unknown key for a bert config (did you mean hidden_size?)"),
        ("model.config.model_type='bertt'", "--set model.config.model_type: unknown model type 'bertt' (did you mean bert?)"),
    ],
)
def test_model_config_keys_are_the_model_family_s(ftrun_cli, override, message):
    offline = Path(__file__).resolve().parents[1] / "examples" / "offline.toml"
    result = ftrun_cli("check", "--manifest", offline, "--set", override)
    assert (result.code, result.err.strip()) == (2, f"ftrun: error: {message}")


def test_model_config_takes_aliases_properties_and_generation_settings(ftrun_cli):
    offline = Path(__file__).resolve().parents[1] / "examples" / "offline.toml"
    for override in ("model.config.num_labels=2", "model.config.layer_norm_eps=1e-6", "model.config.max_length=20"):
        result = ftrun_cli("check", "--manifest", offline, "--set", override)
        assert result.code == 0, (override, result)

