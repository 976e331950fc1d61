"""`ftrun schema`: the JSON Schema of every installed task's manifest, and its committed copy."""

import importlib.metadata
import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from transformers.trainer_utils import IntervalStrategy

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.manifest.config import TOP_LEVEL_KEYS, toml_type

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "manifest.schema.json"


@pytest.fixture(scope="module")
def schema():
    from ftrun.api.plugin_manager import get_plugin_manager
    from ftrun.manifest.schema import manifest_schema
    from ftrun.testing import plugins_of_other_distributions

    # Built before the tests' own fixture blocks another distribution's plugins: blocked here as there.
    return manifest_schema(get_plugin_manager(blocked=plugins_of_other_distributions()))


def test_a_manifest_is_one_of_the_task_manifests(schema):
    tasks = sorted(get_plugin_manager().tasks())
    assert schema["required"] == ["task"] and schema["properties"]["task"]["enum"] == tasks
    assert schema["oneOf"] == [{"$ref": f"#/$defs/task:{name}"} for name in tasks]
    manifest = schema["$defs"]["task:text-classification"]
    assert set(manifest["properties"]) == set(TOP_LEVEL_KEYS) | set(get_plugin_manager().tables())  # the built-in plugins' tables too
    assert {"peft", "early_stopping", "class_weights"} <= set(manifest["properties"])
    assert manifest["properties"]["task"]["const"] == "text-classification"
    assert manifest["properties"]["data"] == {"$ref": "#/$defs/TextClassificationData"}
    assert manifest["additionalProperties"] is False


def test_the_task_tables_are_their_pydantic_schemas(schema):
    data = schema["$defs"]["TextClassificationData"]
    assert data["additionalProperties"] is False
    assert data["properties"]["text_column"]["default"] == "text"
    assert data["properties"]["max_train_samples"]["anyOf"][0] == {"exclusiveMinimum": 0, "type": "integer"}
    assert "tokenizer_vocab_size" in schema["$defs"]["TextModelConfig"]["properties"]


def test_training_is_read_from_the_training_arguments(schema):
    training = schema["$defs"]["TrainingArguments"]
    fields = training["properties"]
    assert training["additionalProperties"] is False and "output_dir" not in fields
    assert fields["num_train_epochs"]["type"] == "number" and fields["seed"]["type"] == "integer"
    assert fields["eval_strategy"]["enum"] == ["no", "steps", "epoch"]
    assert fields["eval_strategy"]["default"] == "epoch"  # ftrun's default, not the dataclass's
    assert fields["learning_rate"]["default"] == 5e-05 and "learning rate" in fields["learning_rate"]["description"]


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (bool, {"type": "boolean"}),
        (float | None, {"type": "number"}),
        (IntervalStrategy | str, {"type": "string", "enum": ["no", "steps", "epoch"]}),
        (str | list[str] | None, {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
        (dict | str | None, {"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "string"}]}),
        (Path | None, {}),  # what TOML cannot spell is left to TrainingArguments
    ],
)
def test_annotations_become_json_schema(annotation, expected):
    assert TypeAdapter(toml_type(annotation)).json_schema() == expected


def test_a_plugin_task_brings_its_own_keys(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module(
        "scored_task",
        """
        from pydantic import Field
        from ftrun import TextDataConfig, hookimpl
        from ftrun.plugins.text_classification import TextClassificationTask

        class ScoredData(TextDataConfig):
            score_column: str = Field("score", description="Column holding the score.")

        class ScoredTask(TextClassificationTask):
            name = "scored"
            data_config = ScoredData

        @hookimpl
        def ftrun_register_tasks(register):
            register(ScoredTask())
        """,
    )
    result = ftrun_cli("schema", "--plugin", "scored_task")
    assert result.code == 0, result
    schema = json.loads(result.out)
    assert schema["$defs"]["task:scored"]["properties"]["data"] == {"$ref": "#/$defs/ScoredData"}
    assert schema["$defs"]["ScoredData"]["properties"]["score_column"]["description"] == "Column holding the score."


def test_the_committed_schema_is_fresh(ftrun_cli):
    # Only ftrun's own tasks: plugins installed from elsewhere are left out with --no-plugin.
    others = sorted(entry.name for entry in importlib.metadata.entry_points(group="ftrun") if not entry.dist or entry.dist.metadata["Name"] != "ftrun")
    flags = [f"--no-plugin={name}" for name in others]
    result = ftrun_cli("schema", *flags)
    assert result.code == 0, result
    command = " ".join(["ftrun schema", *flags, "> docs/manifest.schema.json"])
    assert result.out == COMMITTED.read_text(encoding="utf-8"), f"docs/manifest.schema.json is stale: regenerate it with `{command}`"
