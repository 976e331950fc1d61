"""ftrun.testing, the pytest plugin plugin authors test with: its fixtures work as documented."""

import sys

from ftrun import Task, hookimpl
from ftrun.testing import TINY_BERT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class EchoTask(Task):
    name = "echo"
    description = "a task registered by a plugin object"


class ObjectPlugin:
    """A plugin that is an object, not a module: what make_plugin_manager also takes."""

    @hookimpl
    def ftrun_register_tasks(self, register):
        register(EchoTask())


def test_make_plugin_manager_registers_plugin_objects_and_blocks_names(make_plugin_manager):
    manager = make_plugin_manager(ObjectPlugin(), blocked=["text-classification"])
    tasks = manager.tasks()
    assert tasks["echo"][0].description == "a task registered by a plugin object"
    assert "text-classification" not in tasks
    assert make_plugin_manager().tasks().keys() >= {"text-classification"}  # a fresh manager each time


def test_write_manifest_writes_the_tables_as_toml(write_manifest):
    tables = {"task": "text-classification", "plugins": ["a"], "model": {"config": TINY_BERT}, "training": {"learning_rate": 1e-3}}
    assert tomllib.loads(write_manifest(tables).read_text(encoding="utf-8")) == tables


def test_cli_result_has_no_output_dir_when_nothing_ran(cli):
    result = cli("tasks")
    assert result.code == 0 and result.run is None and result.output_dir is None


def test_tiny_t5_is_a_seq2seq_model_with_a_t5_tokenizer(tiny_t5):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)
    encoded = tokenizer(["a short review"], return_tensors="pt")
    assert encoded["input_ids"][0, -1] == tokenizer.eos_token_id == model.config.eos_token_id
    assert tokenizer.pad_token_id == model.config.pad_token_id == model.config.decoder_start_token_id
    assert model.generate(**encoded, max_new_tokens=3).shape[0] == 1


def test_tiny_bert_is_an_encoder_with_a_wordpiece_tokenizer(tiny_bert):
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(tiny_bert).model_type == "bert"
    assert AutoTokenizer.from_pretrained(tiny_bert)("a review")["input_ids"][0] == AutoTokenizer.from_pretrained(tiny_bert).cls_token_id
