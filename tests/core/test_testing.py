"""ftrun.testing, the pytest plugin plugin authors test with: its fixtures work as documented."""

import re
import string
import sys
from pathlib import Path

import pytest

import ftrun.testing
from ftrun import FtrunError, Task, TextDataConfig, hookimpl
from ftrun.testing import TINY_BERT, TINY_CORPUS, make_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: Every fixture of ftrun.testing, each name prefixed so that none clashes with a project's own.
FIXTURES = {
    "ftrun_cli",
    "ftrun_fails",
    "ftrun_config",
    "ftrun_plugin_manager",
    "ftrun_plugin_module",
    "ftrun_no_installed_plugins",
    "ftrun_manifest",
    "ftrun_tiny_bert",
    "ftrun_tiny_t5",
    "ftrun_tiny_gpt2",
    "ftrun_tiny_vit",
}


class EchoData(TextDataConfig):
    text_column: str = "text"
    repeat: int = 1


class EchoTask(Task):
    name = "echo"
    description = "a task registered by a plugin object"
    data_config = EchoData
    defaults = {"data": {"repeat": 2}}

    def encode(self, batch, data, config, split):
        texts = batch[config.data.text_column]
        return {"text": [" ".join([text] * config.data.repeat) for text in texts], "split": [split] * len(texts)}


class ObjectPlugin:
    """A plugin that is an object, not a module: what ftrun_plugin_manager and ftrun_config also take."""

    @hookimpl
    def ftrun_register_tasks(self, register):
        register(EchoTask())


def test_every_fixture_is_prefixed_and_none_is_a_task_s(pytester):
    listing = pytester.runpytest_subprocess("--fixtures", "-p", "ftrun.testing").stdout.str()
    section = listing.split("fixtures defined from ftrun.testing", 1)[1].split("=====", 1)[0]
    assert set(re.findall(r"^(\w+)(?: \[\w+ scope\])? -- ", section, flags=re.MULTILINE)) == FIXTURES
    for name in ("cli", "make_plugin_manager", "plugin_module", "write_manifest", "tiny_bert", "tiny_t5", "reviews", "tiny_manifest", "sample_reviews"):
        assert not hasattr(ftrun.testing, name), name


def test_no_installed_plugins_blocks_the_plugins_of_other_distributions(pytester, monkeypatch):
    # A distribution with an ftrun entry point, installed before the session starts, as pip installs ftrun-mcc.
    info = pytester.path / "ftrun_shout-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ftrun-shout\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[ftrun]\nshout = shout_plugin\n", encoding="utf-8")
    (pytester.path / "shout_plugin.py").write_text("", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    pytester.makepyfile(
        test_shout="""
        from ftrun.api.plugin_manager import get_plugin_manager

        def test_a_plugin_s_own_tests_load_it():
            assert get_plugin_manager().has_plugin("shout")

        def test_ftrun_s_own_behaviour_runs_without_it(ftrun_no_installed_plugins, ftrun_cli):
            assert "shout" in ftrun_no_installed_plugins
            assert not get_plugin_manager().has_plugin("shout")
            assert "shout" not in ftrun_cli("plugins").out
        """
    )
    pytester.runpytest_subprocess("-p", "ftrun.testing").assert_outcomes(passed=2)


def test_every_fixture_is_in_the_guide_s_table():
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = guide.split("## Testing plugins: ftrun.testing", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)) == FIXTURES


def test_ftrun_plugin_manager_registers_plugin_objects_and_blocks_names(ftrun_plugin_manager):
    manager = ftrun_plugin_manager(ObjectPlugin(), blocked=["text-classification"])
    tasks = manager.tasks()
    assert tasks["echo"][0].description == "a task registered by a plugin object"
    assert "text-classification" not in tasks
    assert ftrun_plugin_manager().tasks().keys() >= {"text-classification"}  # a fresh manager each time


def test_ftrun_config_validates_the_tables_as_a_run_does(ftrun_config, ftrun_plugin_manager, tmp_path):
    tables = {"task": "echo", "data": {"train_file": "train.jsonl", "text_column": "body"}, "training": {"learning_rate": 1e-3}}
    config = ftrun_config(tables, ObjectPlugin(), overrides=["data.repeat=3"])
    assert config.task == "echo" and config.source == "run.toml"
    assert config.data.text_column == "body" and config.data.repeat == 3  # the override over the task's default
    assert config.data.train_file == str(tmp_path / "train.jsonl")  # relative to where ftrun_manifest writes
    assert config.training["learning_rate"] == 1e-3
    assert config.where("data.repeat") == "--set data.repeat" and config.where("data.text_column") == "run.toml: data.text_column"
    # What a plugin's unit test does with it: call the task's own code with the config a run gives it.
    task = ftrun_plugin_manager(ObjectPlugin()).task("echo")
    assert task.encode({"body": ["hi"]}, None, config, "eval") == {"text": ["hi hi hi"], "split": ["eval"]}
    assert ftrun_config(tables, ObjectPlugin()).data.repeat == 1  # the default dataset's [data] (repeat = 2) is not for the manifest's own file
    assert tables == {"task": "echo", "data": {"train_file": "train.jsonl", "text_column": "body"}, "training": {"learning_rate": 1e-3}}


@pytest.mark.parametrize(
    ("tables", "words"),
    [
        pytest.param(
            {"task": "echo", "training": {"num_epochs": 1}}, ("run.toml: training.num_epochs: unknown key (did you mean num_train_epochs?)",), id="training-key"
        ),
        pytest.param({"task": "echo", "data": {"repeat": "twice"}}, ("run.toml: data.repeat:",), id="wrong-type"),
        pytest.param({"task": "echo", "epochs": 3}, ("run.toml: epochs: unknown key",), id="top-level-key"),
        pytest.param({"task": "ecko"}, ("run.toml: task: unknown task 'ecko'", "did you mean echo?"), id="unknown-task"),
        pytest.param({"data": {}}, ("run.toml: task:", "echo", "text-classification"), id="no-task"),
        pytest.param({"task": "echo", "plugins": ["ftrun_no_such_plugin"]}, ("ftrun_no_such_plugin",), id="manifest-plugin"),
    ],
)
def test_ftrun_config_raises_ftrun_error_on_bad_tables(ftrun_config, tables, words):
    with pytest.raises(FtrunError) as raised:
        ftrun_config(tables, ObjectPlugin())
    for word in words:
        assert word in str(raised.value)


def test_ftrun_config_loads_the_manifest_s_plugins_and_blocks_names(ftrun_config, ftrun_plugin_module):
    ftrun_plugin_module(
        "echo_plugin",
        """
        from ftrun import hookimpl
        from test_testing import EchoTask

        @hookimpl
        def ftrun_register_tasks(register):
            register(EchoTask())
        """,
    )
    assert ftrun_config({"task": "echo", "plugins": ["echo_plugin"]}).plugins == ["echo_plugin"]
    with pytest.raises(FtrunError, match="unknown task 'text-classification'"):
        ftrun_config({"task": "text-classification"}, blocked=["text-classification"])


def test_make_config_resolves_paths_against_base_dir(tmp_path):
    config = make_config({"task": "echo", "data": {"eval_file": "data/eval.jsonl"}}, ObjectPlugin(), base_dir=tmp_path, source="echo.toml")
    assert config.data.eval_file == str(tmp_path / "data" / "eval.jsonl") and config.source == "echo.toml"
    with pytest.raises(FtrunError, match=r"^echo\.toml: data\.text: unknown key"):
        make_config({"task": "echo", "data": {"text": "body"}}, ObjectPlugin(), source="echo.toml")


def test_ftrun_manifest_writes_the_tables_as_toml(ftrun_manifest):
    tables = {"task": "text-classification", "plugins": ["a"], "model": {"config": TINY_BERT}, "training": {"learning_rate": 1e-3}}
    assert tomllib.loads(ftrun_manifest(tables).read_text(encoding="utf-8")) == tables


def test_ftrun_cli_result_has_no_output_dir_when_nothing_ran(ftrun_cli):
    result = ftrun_cli("tasks")
    assert result.code == 0 and result.run is None and result.output_dir is None


def test_ftrun_fails_passes_on_one_error_line_and_fails_on_anything_else(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_a_refusal(ftrun_fails):
            assert ftrun_fails("check", "--task", "nope", words=("unknown task 'nope'",)).startswith("ftrun: error: --task nope: ")

        def test_a_success_is_no_refusal(ftrun_fails):
            ftrun_fails("tasks", words=())

        def test_a_word_missing_from_the_line(ftrun_fails):
            ftrun_fails("check", "--task", "nope", words=("not in the line",))

        def test_a_file_written(ftrun_fails, tmp_path, monkeypatch):
            from ftrun import FtrunError
            from ftrun.commands import tasks

            def writes(args):
                (tmp_path / "left-behind").mkdir()
                raise FtrunError("refused")

            monkeypatch.setattr(tasks, "main", writes, raising=True)
            ftrun_fails("tasks", words=("refused",))
        """
    )
    result = pytester.runpytest("-p", "ftrun.testing", "-q")
    result.assert_outcomes(passed=1, failed=3)
    assert "files or folders written or changed" in result.stdout.str()


@pytest.mark.parametrize("task", sorted(ftrun.testing.TINY_ROWS))
def test_tiny_rows_are_each_task_s_good_data(ftrun_cli, ftrun_manifest, tmp_path, task):
    from ftrun.testing import TINY_T5, TINY_TRAINING, write_jsonl

    rows = write_jsonl(tmp_path / "rows.jsonl", ftrun.testing.TINY_ROWS[task])
    settings = {"translation": {"source_lang": "en", "target_lang": "de"}, "question-answering": {"max_length": 64, "doc_stride": 16}}
    data = {"train_file": str(rows), "eval_file": str(rows), **settings.get(task, {})}
    model = {"config": TINY_T5 if task == "translation" else TINY_BERT, "tokenizer_vocab_size": 100}
    result = ftrun_cli("check", "--manifest", ftrun_manifest({"task": task, "model": model, "data": data, "training": TINY_TRAINING}))
    assert result.code == 0 and "error" not in result.err, result


def test_the_corpus_has_every_letter_digit_and_common_punctuation():
    text = "".join(TINY_CORPUS)
    assert 30 <= len(TINY_CORPUS) <= 60
    assert set(string.ascii_letters + string.digits + string.punctuation) <= set(text)


#: Text of no sentence of the corpus, and of no task's data.
UNSEEN = "Quokkas JUMPED over 1,024 fences @ dawn; wasn't that {weird} [really] <odd>?! #tags ~50% & more_than `x` | y \\ z"


def test_ftrun_tiny_t5_is_a_seq2seq_model_with_a_t5_tokenizer(ftrun_tiny_t5):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ftrun_tiny_t5)
    model = AutoModelForSeq2SeqLM.from_pretrained(ftrun_tiny_t5)
    encoded = tokenizer(["a short sentence"], return_tensors="pt")
    assert encoded["input_ids"][0, -1] == tokenizer.eos_token_id == model.config.eos_token_id
    assert tokenizer.pad_token_id == model.config.pad_token_id == model.config.decoder_start_token_id
    assert model.generate(**encoded, max_new_tokens=3).shape[0] == 1
    assert tokenizer.unk_token_id not in tokenizer(UNSEEN)["input_ids"]  # any English text, by sub-pieces


def test_ftrun_tiny_bert_is_an_encoder_with_a_wordpiece_tokenizer(ftrun_tiny_bert):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ftrun_tiny_bert)
    assert AutoConfig.from_pretrained(ftrun_tiny_bert).model_type == "bert"
    ids = tokenizer(UNSEEN)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and tokenizer.unk_token_id not in ids
    assert 400 <= len(tokenizer) <= 500
