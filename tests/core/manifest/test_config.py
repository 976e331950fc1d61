"""ftrun.manifest.config: one pydantic model per task validates a manifest, and the schema is its JSON Schema."""

from pathlib import Path

import pytest
from pydantic import Field, ValidationError, field_validator
from transformers import TrainingArguments

from ftrun import FtrunError, hookimpl, load_run
from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.manifest.config import (
    TOP_LEVEL_KEYS,
    apply_overrides,
    build_config,
    manifest_model,
    parse_override,
    training_model,
)
from ftrun.manifest.schema import manifest_schema
from ftrun.plugins.text_classification import (
    TextClassificationData,
    TextClassificationTask,
)


class GlossaryData(TextClassificationData):
    glossary_file: str | None = Field(None, json_schema_extra={"path": "local"})
    glossary: str | None = Field(None, json_schema_extra={"path": "local-or-hub"})


class GlossaryTask(TextClassificationTask):
    name = "glossary"
    data_config = GlossaryData


class GlossaryPlugin:
    @hookimpl
    def ftrun_register_tasks(self, register):
        register(GlossaryTask())


@pytest.fixture(scope="module")
def text_classification():
    return get_plugin_manager().task("text-classification")


class OddData(TextClassificationData):
    odd: int = 1
    rate: float = 0.5

    @field_validator("odd")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, and {value} is not")
        return value


class OddTask(TextClassificationTask):
    name = "odd"
    data_config = OddData


class OddPlugin:
    @hookimpl
    def ftrun_register_tasks(self, register):
        register(OddTask())


def test_a_validator_s_message_is_shown_as_it_wrote_it_and_an_integer_is_a_float(ftrun_config):
    with pytest.raises(FtrunError, match=r"^run\.toml: data\.odd: must be odd, and 4 is not$"):  # docs/plugins.md: "your message"
        ftrun_config({"task": "odd", "data": {"odd": 4}}, OddPlugin())
    assert ftrun_config({"task": "odd", "data": {"rate": 1}}, OddPlugin()).data.rate == 1  # TOML's 1 for 1.0; no other coercion
    with pytest.raises(FtrunError, match=r"^run\.toml: data\.rate: must be a finite number, got nan$"):
        ftrun_config({"task": "odd", "data": {"rate": float("nan")}}, OddPlugin())


def test_a_task_s_own_path_fields_are_resolved(ftrun_config, tmp_path):
    config = ftrun_config({"task": "glossary", "data": {"glossary_file": "terms.txt", "glossary": "someone/terms"}}, GlossaryPlugin())
    assert config.data.glossary_file == str(tmp_path / "terms.txt")  # local: resolved, existing or not
    assert config.data.glossary == "someone/terms"  # local-or-hub: a Hub id stays one


def test_the_manifest_model_holds_the_task_s_tables(text_classification):
    model = manifest_model(text_classification)
    assert model is manifest_model(get_plugin_manager().task("text-classification"))  # one per task class
    assert tuple(model.model_fields) == TOP_LEVEL_KEYS
    assert model.model_fields["data"].annotation is TextClassificationData
    assert model.model_fields["training"].annotation is training_model(TrainingArguments)


def test_training_takes_an_int_for_a_float_and_no_bool_for_an_int():
    model = training_model(TrainingArguments)
    assert model.model_validate({"num_train_epochs": 2}).num_train_epochs == 2
    with pytest.raises(ValidationError):
        model.model_validate({"seed": True})
    with pytest.raises(ValidationError):
        model.model_validate({"learning_rate": True})


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"seed": True}, "run.toml: training.seed: expected int, got a boolean True"),
        ({"seed": -3, "max_steps": -1}, None),  # seeds may be negative; max_steps where its default is
        ({"warmup_steps": -1}, "run.toml: training.warmup_steps: must not be negative, got -1"),
        ({"save_steps": 0}, "run.toml: training.save_steps: must be greater than 0, got 0"),
        ({"fsdp": True}, None),  # typed str by transformers, turned on with true
        ({"output_dir": "out"}, "run.toml: training.output_dir: set the output directory with --output-dir or a top-level output_dir"),
    ],
)
def test_training_values_are_checked_with_ftrun_s_messages(text_classification, tmp_path, training, message):
    if message is None:
        config = build_config(text_classification, {"training": training}, source="run.toml", base_dir=tmp_path)
        assert config.training.items() >= training.items()
        return
    with pytest.raises(FtrunError) as caught:
        build_config(text_classification, {"training": training}, source="run.toml", base_dir=tmp_path)
    assert str(caught.value) == message


def test_the_schema_s_training_is_the_training_model_s(text_classification):
    schema = manifest_schema(get_plugin_manager())
    model = training_model(TrainingArguments)
    assert schema["$defs"]["TrainingArguments"] == model.model_json_schema()
    assert schema["$defs"]["TrainingArguments"]["properties"]["eval_strategy"]["default"] == model.model_fields["eval_strategy"].default == "epoch"
    assert schema["$defs"]["task:text-classification"]["properties"]["data"]["$ref"] == "#/$defs/TextClassificationData"


def test_load_run_builds_a_config_without_a_command_line():
    manager, config = load_run(task="text-classification", demo=True, overrides=["training.num_train_epochs=1"])
    assert (config.task, config.demo, config.source) == ("text-classification", True, "--task text-classification")
    assert config.training["num_train_epochs"] == 1 and "training.num_train_epochs" in config.overridden
    assert manager.task("text-classification").name == "text-classification"


def test_load_run_takes_a_manifest_s_tables(tmp_path):
    _, config = load_run(manifest={"task": "text-classification", "data": {"train_file": "t.jsonl", "eval_file": "e.jsonl"}}, base_dir=tmp_path)
    assert config.data.train_file == str(tmp_path / "t.jsonl") and config.source == "manifest"
    with pytest.raises(FtrunError, match=r"^--task ner: the manifest manifest is for task 'text-classification'$"):
        load_run(task="ner", manifest={"task": "text-classification"})


# -- --set, paths, defaults, [model] config (from the command line's point of view) -----------


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
        # The key is a TOML key: quoted parts, one of them holding dots or an equals sign.
        ('"data".max_length=64', (["data", "max_length"], 64)),
        (
            'search.space."training.learning_rate"={low=1e-4, high=3e-3, log=true}',
            (["search", "space", "training.learning_rate"], {"low": 1e-4, "high": 3e-3, "log": True}),
        ),
        ('data."a=b"=1', (["data", "a=b"], 1)),
    ],
)
def test_set_values_are_parsed_as_toml(text, expected):
    assert parse_override(text) == expected


def test_a_quoted_search_space_key_reaches_ftrun_tune_and_a_bad_value_in_it_is_one_line(tmp_path):
    manifest = {"task": "text-classification", "data": {"train_file": "t.jsonl", "eval_file": "e.jsonl"}}
    space = 'search.space."training.learning_rate"='
    _, config = load_run(manifest=manifest, overrides=[space + "{low=1e-4, high=3e-3, log=true}"], base_dir=tmp_path)
    assert config.tables["search"].space["training.learning_rate"].high == 3e-3
    # A dict-typed table (a key of search.space, model.config) names the bad key, not an internal error.
    with pytest.raises(FtrunError, match=r"^--set search.space.training.learning_rate.lowx: unknown key \(did you mean low\?\)$"):
        load_run(manifest=manifest, overrides=[space + "{lowx=1e-4, high=3e-3}"], base_dir=tmp_path)
    # A value of a union (low: int | float) is named by its key, not by the member pydantic tried (low.int).
    with pytest.raises(FtrunError, match=r"^--set search.space.training.learning_rate.low: input should be a valid integer, got 'a'$"):
        load_run(manifest=manifest, overrides=[space + '{low="a", high=3e-3}'], base_dir=tmp_path)


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
        # Values transformers would build a model from, and fail on once it runs, or fail on in its own code.
        ("model.config.hidden_size=-32", "--set model.config.hidden_size: must be greater than 0, got -32"),
        ("model.config.num_attention_heads=0", "--set model.config.num_attention_heads: must be greater than 0, got 0"),
        ("model.config.hidden_size=3.5", "--set model.config.hidden_size: expected int, got float (value: 3.5)"),
        ("model.config.layer_norm_eps=nan", "--set model.config.layer_norm_eps: must be a finite number, got nan"),
        ("model.config.id2label=3", "offline.toml: model.config: not a valid bert config: AttributeError: 'int' object has no attribute 'items'"),
    ],
)
def test_model_config_keys_are_the_model_family_s(ftrun_cli, override, message):
    offline = Path(__file__).resolve().parents[3] / "examples" / "offline.toml"
    result = ftrun_cli("check", "--manifest", offline, "--set", override)
    assert (result.code, result.err.strip()) == (2, f"ftrun: error: {message}")


def test_model_config_takes_aliases_properties_and_generation_settings(ftrun_cli):
    offline = Path(__file__).resolve().parents[3] / "examples" / "offline.toml"
    for override in ("model.config.num_labels=2", "model.config.layer_norm_eps=1e-6", "model.config.max_length=20"):
        result = ftrun_cli("check", "--manifest", offline, "--set", override)
        assert result.code == 0, (override, result)


#: A task whose default dataset has column names of its own (as SWAG's sent1, ending0, ... for multiple choice).
SENTENCES = """
from ftrun import hookimpl
from ftrun.plugins.text_classification.task import TextClassificationTask


class Sentences(TextClassificationTask):
    name = "sentences"
    defaults = {
        **TextClassificationTask.defaults,
        "data": {"dataset": "glue", "dataset_config": "sst2", "text_column": "sentence", "max_length": 66},
    }


@hookimpl
def ftrun_register_tasks(register):
    register(Sentences())
"""


def test_the_default_datasets_keys_apply_only_with_it_and_check_says_which_defaults_it_used(ftrun_cli, ftrun_manifest, ftrun_plugin_module, reviews, tmp_path):
    import json

    from ftrun.testing import TINY_BERT, TINY_TRAINING

    ftrun_plugin_module("sentences", SENTENCES)
    manager = get_plugin_manager(["sentences"])
    task = manager.task("sentences")
    default = build_config(task, {}, source="--task sentences", base_dir=tmp_path)
    assert (default.data.dataset, default.data.text_column, default.data.max_length, default.default_data) == ("glue", "sentence", 66, True)
    train, evaluation = reviews
    manifest = {
        "task": "sentences",
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
        "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
        "training": TINY_TRAINING,
    }
    own = build_config(task, manifest, source="run.toml", base_dir=tmp_path)
    # The user's own files: the task's generic [data] defaults, none of the default dataset's (its column name, its length).
    assert (own.data.dataset, own.data.dataset_config, own.data.text_column, own.default_data) == (None, None, "text", False)
    only_train = build_config(task, {"data": {"train_file": str(train)}}, source="run.toml", base_dir=tmp_path)
    assert (only_train.data.text_column, only_train.data.max_length) == ("text", None)
    checked = ftrun_cli("check", "--manifest", ftrun_manifest(manifest), "--plugin", "sentences")
    assert checked.code == 0, checked
    assert "data: the manifest's own, with task sentences's generic [data] defaults (none of its default dataset's settings)" in checked.out
    as_json = ftrun_cli("check", "--manifest", ftrun_manifest(manifest), "--plugin", "sentences", "--json")
    assert json.loads(as_json.out)["data_defaults"] == "generic"
