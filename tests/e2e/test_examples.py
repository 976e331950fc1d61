"""The manifests in examples/ stay valid, and the offline one runs end to end."""

import json
from pathlib import Path

import pytest

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.manifest.config import build_config, read_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFESTS = sorted(EXAMPLES.glob("*.toml"))
OFFLINE = EXAMPLES / "offline.toml"
IMDB = EXAMPLES / "imdb.toml"


def validate(path: Path):
    """Validate a manifest without loading a model or data: what works without the Hub."""
    manifest = read_manifest(path)
    task = get_plugin_manager(plugins=manifest.get("plugins", [])).task(manifest["task"])
    return build_config(task, manifest, source=path.name, base_dir=path.parent)


def test_the_examples_are_there():
    # Guards the parametrized test below against silently running on nothing.
    assert IMDB in MANIFESTS and OFFLINE in MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_example_manifest_validates(path):
    config = validate(path)
    assert config.task == read_manifest(path)["task"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_example_checks_for_a_user_with_only_the_repository(ftrun_cli, path):
    """Its data comes from the repository (and checks out) or from the Hub (unreachable here: one clear line)."""
    assert "shared" not in path.read_text(encoding="utf-8"), f"{path.name} reads data users do not have"
    result = ftrun_cli("check", "--manifest", path)
    manifest = read_manifest(path)
    if "dataset" in manifest.get("data", {}):
        dataset = manifest["data"]["dataset"]
        assert (result.code, result.err.strip()) == (
            2,
            f"ftrun: error: {path.name}: data.dataset: cannot load data: Couldn't reach '{dataset}' on the Hub (OfflineModeIsEnabled)",
        )
    else:
        assert result.code == 0, result
        assert f"{path.name}: ok: task {manifest['task']}" in result.out


def test_imdb_manifest_is_the_seed_recipe():
    config = validate(IMDB)
    assert config.model.name == "bert-base-uncased"
    assert (config.data.dataset, config.data.train_split, config.data.eval_split) == ("imdb", "train", "test")
    assert (config.data.max_train_samples, config.data.max_eval_samples, config.data.shuffle_seed) == (1000, 200, 42)
    assert config.training["num_train_epochs"] == 3
    assert config.training["per_device_train_batch_size"] == 8
    assert config.training["warmup_steps"] == 500
    assert config.training["weight_decay"] == 0.01
    assert config.training["logging_steps"] == 10
    assert config.training["eval_strategy"] == config.training["save_strategy"] == "epoch"
    assert config.training["load_best_model_at_end"] is True
    assert config.metrics.best == "accuracy"
    assert len(config.predict.examples) == 2


def test_offline_manifest_checks(ftrun_cli):
    result = ftrun_cli("check", "--manifest", OFFLINE)
    assert result.code == 0, result
    assert "train 400 / eval 100 examples" in result.out
    assert "2 labels (negative, positive)" in result.out


def test_offline_manifest_runs_end_to_end(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    # One epoch on a slice of the data: the whole pipeline in seconds.
    result = ftrun_cli(
        "--manifest",
        OFFLINE,
        "--set",
        "training.num_train_epochs=1",
        "--set",
        "data.max_train_samples=64",
        "--set",
        "data.max_eval_samples=32",
        "--output-dir",
        out,
    )
    assert result.code == 0, result
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 and {p["label"] for p in predictions} <= {"negative", "positive"}


def test_the_fsdp_example_is_what_the_trainer_takes(tmp_path):
    from transformers import TrainingArguments

    training = validate(EXAMPLES / "imdb-fsdp.toml").training
    # bf16 is for the GPUs the example runs on; this machine may have none.
    args = TrainingArguments(output_dir=str(tmp_path), **{**training, "bf16": False})
    assert args.fsdp is True and args.fsdp_plugin_args["fsdp_version"] == 2


def test_the_deepspeed_example_is_a_zero_config():
    deepspeed = validate(EXAMPLES / "imdb-deepspeed.toml").training["deepspeed"]
    assert deepspeed["zero_optimization"]["stage"] == 2
    assert deepspeed["train_micro_batch_size_per_gpu"] == "auto"  # filled in from [training] by transformers


TUTORIAL_PACKAGE = EXAMPLES / "plugins" / "ftrun-regression"


def test_the_tutorial_package_is_the_tutorial_s_code():
    """examples/plugins/ftrun-regression holds docs/plugins.md's first tutorial, word for word, so that CI installs and tests it."""
    import re

    guide = (EXAMPLES.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    tutorial = guide[guide.index("## Tutorial: a task plugin from zero") : guide.index("## Tutorial: a task whose examples")]
    blocks = dict(re.findall(r"```(?:python|toml)\n# (\S+)\n(.*?)```", tutorial, re.S))
    files = ["ftrun_regression.py", "pyproject.toml", "tests/conftest.py", "tests/test_regression.py"]
    for name in files:
        assert (TUTORIAL_PACKAGE / name).read_text(encoding="utf-8") == blocks[name], name
