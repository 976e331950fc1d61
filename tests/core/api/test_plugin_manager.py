"""The plugin system: discovery, overriding one stage, and the errors plugin authors meet."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

import ftrun
from ftrun import FtrunError, __version__, hookimpl
from ftrun.api.hookspecs import hook_names
from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.cli import COMMANDS, build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """installed_plugin(dist, entry_name, module, source): a distribution with an ftrun entry point."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(dist: str, entry_name: str, module: str, source: str | None) -> None:
        info = tmp_path / f"{dist}-1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[ftrun]\n{entry_name} = {module}\n", encoding="utf-8")
        if source is not None:
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")

    return install


def test_builtin_task_comes_from_the_entry_point_group():
    manager = get_plugin_manager()
    task, plugin = manager.tasks()["text-classification"]
    assert plugin == "text-classification"
    assert manager.info[plugin].dist == "ftrun"
    assert task.pipeline_tag == "text-classification"


def test_a_plugin_overrides_one_stage_of_one_task(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "only_f1",
        """
        import numpy as np
        from ftrun import Metrics, hookimpl

        @hookimpl
        def ftrun_build_metrics(task, config, data):
            if task.name != "text-classification":
                return None
            def compute(p):
                return {"always_one": 1.0, "n": float(len(np.asarray(p.label_ids)))}
            return Metrics(compute=compute, best="always_one")
        """,
    )
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "only_f1", "--output-dir", out)
    assert result.code == 0, result
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["eval_always_one"] == 1.0 and metrics["eval_n"] == 16.0
    assert "eval_accuracy" not in metrics  # the built-in metric stage did not run
    assert (out / "model.safetensors").exists()  # every other stage did


def test_manifest_plugins_are_loaded(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "counting",
        """
        from ftrun import hookimpl
        from transformers import TrainerCallback

        class Count(TrainerCallback):
            steps = 0
            def on_step_end(self, args, state, control, **kwargs):
                Count.steps += 1

        @hookimpl
        def ftrun_trainer_callbacks(task, config):
            return [Count()]
        """,
    )
    text = tiny_manifest.read_text()
    tiny_manifest.write_text('plugins = ["counting"]\n' + text)
    assert ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out").code == 0
    import counting

    assert counting.Count.steps == 6  # 48 examples, batch 8, one epoch


def test_a_third_party_task_registers_and_runs(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "sentiment_plugin",
        """
        from ftrun import hookimpl
        from ftrun.plugins.text_classification import TextClassificationTask

        class Sentiment(TextClassificationTask):
            name = "sentiment"
            description = "movie review sentiment"

        @hookimpl
        def ftrun_register_tasks(register):
            register(Sentiment())
        """,
    )
    listing = ftrun_cli("tasks", "--plugin", "sentiment_plugin")
    assert listing.code == 0
    assert "sentiment" in listing.out and "plugin sentiment_plugin" in listing.out
    manifest = tiny_manifest.read_text().replace('task = "text-classification"', 'task = "sentiment"')
    tiny_manifest.write_text(manifest)
    tiny_manifest.write_text('plugins = ["sentiment_plugin"]\n' + manifest)
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert 'task = "sentiment"' in (tmp_path / "out" / "ftrun.toml").read_text()
    # The run's plugins are the user's to load again: a model folder names them, and loads none.
    refused = ftrun_cli("predict", "--model", tmp_path / "out", "a fine film")
    assert refused.code == 2 and "plugins: its run loaded sentiment_plugin" in refused.err and "pass --plugin sentiment_plugin" in refused.err, refused
    predicted = ftrun_cli("predict", "--model", tmp_path / "out", "--plugin", "sentiment_plugin", "a fine film")
    assert predicted.code == 0, predicted
    assert predicted.out.strip().endswith("\ta fine film")


def test_duplicate_task_name_names_both_plugins(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module(
        "copycat",
        """
        from ftrun import hookimpl
        from ftrun.plugins.text_classification import TextClassificationTask

        @hookimpl
        def ftrun_register_tasks(register):
            register(TextClassificationTask())
        """,
    )
    result = ftrun_cli("tasks", "--plugin", "copycat")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "ftrun: error: task 'text-classification' is registered by both plugin text-classification (ftrun 0.1.0) and plugin copycat"
    ]


def test_misspelt_hook_name_is_reported(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module(
        "typo",
        """
        from ftrun import hookimpl

        @hookimpl
        def ftrun_build_metric(task, config, data):
            return None
        """,
    )
    result = ftrun_cli("tasks", "--plugin", "typo")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("ftrun: error: plugin typo:") and "ftrun_build_metric" in line and "misspelt" in line


def test_hook_with_an_unknown_argument_is_reported(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module(
        "badargs",
        """
        from ftrun import hookimpl

        @hookimpl
        def ftrun_build_head(task, config, data, gpu):
            return None
        """,
    )
    result = ftrun_cli("tasks", "--plugin", "badargs")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("ftrun: error: plugin badargs:") and "gpu" in line


def test_plugin_module_that_fails_to_import(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module("broken", "import no_such_dependency\n")
    result = ftrun_cli("tasks", "--plugin", "broken")
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip() == ("ftrun: error: plugin broken failed to import: ModuleNotFoundError: No module named 'no_such_dependency'")
    assert ftrun_cli("tasks", "--plugin", "no_such_module").code == 2


def test_entry_point_that_fails_to_import_names_its_distribution(ftrun_cli, installed_plugin):
    installed_plugin("ftrun-broken", "broken-task", "broken_task_module", "raise RuntimeError('boom')\n")
    result = ftrun_cli("tasks")
    assert result.code == 2
    assert result.err.strip() == "ftrun: error: plugin broken-task (ftrun-broken 1.2) failed to import: RuntimeError: boom"


def test_an_entry_point_can_be_blocked(ftrun_cli, installed_plugin, monkeypatch):
    installed_plugin("ftrun-broken", "broken-task", "broken_task_module", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("FTRUN_NO_PLUGINS", "broken-task")
    assert ftrun_cli("tasks").code == 0


def test_the_environment_blocks_plugins_in_every_manager(monkeypatch):
    # Not only the command line's: a test's or a library's manager agrees with the command's.
    monkeypatch.setenv("FTRUN_NO_PLUGINS", " ner,text-classification ")
    assert not {"ner", "text-classification"} & set(get_plugin_manager().tasks())


def test_register_must_receive_a_task(ftrun_plugin_module):
    ftrun_plugin_module(
        "notatask",
        """
        from ftrun import hookimpl

        @hookimpl
        def ftrun_register_tasks(register):
            register("text-classification")
        """,
    )
    with pytest.raises(FtrunError, match="plugin notatask: registered 'text-classification', which is not an ftrun.Task"):
        get_plugin_manager(plugins=["notatask"]).tasks()


def test_an_installed_plugin_named_again_with_plugin_is_loaded_once(ftrun_cli):
    result = ftrun_cli("tasks", "--plugin", "ftrun.plugins.ner")
    assert result.code == 0, result
    assert [line.split()[0] for line in result.out.splitlines()].count("ner") == 1


def test_plugins_command_lists_hooks_and_origin(ftrun_cli):
    result = ftrun_cli("plugins")
    assert result.code == 0
    assert "text-classification (ftrun 0.1.0): ftrun_register_tasks" in result.out
    assert "ftrun.api.default_stages" in result.out and "ftrun_build_trainer" in result.out


def test_every_hook_spec_is_documented():
    import ftrun.api.hookspecs as specs

    for name in hook_names():
        doc = getattr(specs, name).__doc__ or ""
        assert "Called" in doc and ("Returns" in doc or "return" in doc.lower()), name


# -- the API a plugin is written against ------------------------------------------------


def test_everything_a_plugin_needs_is_importable_from_ftrun():
    for name in ftrun.__all__:
        assert getattr(ftrun, name) is not None, name
    with pytest.raises(AttributeError):
        ftrun.no_such_name  # noqa: B018


def test_importing_ftrun_imports_no_heavy_library():
    """The public names load on first use, so `ftrun --help` stays fast (and ftrun.testing stays cheap)."""
    code = "import sys, ftrun, ftrun.testing; print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_a_plugin_declares_the_ftrun_versions_it_supports(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module("future_plugin", 'ftrun_requires = ">=99"\n')
    result = ftrun_cli("tasks", "--plugin", "future_plugin")
    assert result.code == 2
    assert result.err.strip() == f"ftrun: error: plugin future_plugin requires ftrun >=99, but this is ftrun {__version__}"
    ftrun_plugin_module("current_plugin", f'ftrun_requires = "=={__version__}"\n')
    assert ftrun_cli("tasks", "--plugin", "current_plugin").code == 0
    ftrun_plugin_module("vague_plugin", 'ftrun_requires = "the latest"\n')
    result = ftrun_cli("tasks", "--plugin", "vague_plugin")
    assert result.err.strip() == "ftrun: error: plugin vague_plugin: ftrun_requires = 'the latest' is not a version specifier (such as \">=0.1,<0.2\")"


def test_an_installed_plugin_for_another_ftrun_names_its_distribution_and_can_be_blocked(ftrun_cli, installed_plugin):
    installed_plugin("ftrun-future", "future", "future_module", 'ftrun_requires = ">=99"\n')
    result = ftrun_cli("tasks")
    assert result.err.strip() == f"ftrun: error: plugin future (ftrun-future 1.2) requires ftrun >=99, but this is ftrun {__version__}"
    assert ftrun_cli("tasks", "--no-plugin", "future").code == 0


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_takes_no_plugin(command):
    assert "--no-plugin NAME" in build_parser(command).format_help()


def test_no_plugin_and_the_environment_block_plugins(ftrun_cli, ftrun_plugin_module, monkeypatch, tiny_manifest, tmp_path):
    listing = ftrun_cli("tasks", "--no-plugin", "text-classification")
    assert listing.code == 0 and "text-classification" not in listing.out
    result = ftrun_cli("--task", "text-classification", "--no-plugin", "text-classification")
    assert result.code == 2 and "unknown task 'text-classification'" in result.err
    # As pytest refuses to block its essential plugins: refused before anything runs, not mid-run.
    for command in (["--manifest", tiny_manifest, "--output-dir", tmp_path / "out"], ["tasks"], ["check", "--manifest", tiny_manifest]):
        result = ftrun_cli(*command, "--no-plugin", "ftrun.api.default_stages")
        assert result.code == 2 and result.err.strip() == (
            "ftrun: error: ftrun.api.default_stages cannot be blocked: it runs every task's stages (a plugin that implements a stage hook replaces that stage)"
        )
    assert not (tmp_path / "out").exists()
    ftrun_plugin_module("counted", "from ftrun import hookimpl\n\n@hookimpl\ndef ftrun_trainer_callbacks():\n    return []\n")
    monkeypatch.setenv("FTRUN_NO_PLUGINS", "text-classification, counted")
    listing = ftrun_cli("plugins", "--plugin", "counted")
    assert "text-classification" not in listing.out and "counted" not in listing.out


def test_a_task_s_own_keys_are_validated_and_errors_name_the_key(ftrun_plugin_manager, ftrun_plugin_module, tmp_path):
    from ftrun.manifest.config import build_config

    ftrun_plugin_module(
        "ranged_task",
        """
        from pydantic import Field, model_validator
        from ftrun import TextDataConfig, hookimpl
        from ftrun.plugins.text_classification import TextClassificationTask

        class RangedData(TextDataConfig):
            low: float = Field(0.0, ge=0)
            high: float = 1.0

            @model_validator(mode="after")
            def ordered(self):
                if self.low >= self.high:
                    raise ValueError(f"low ({self.low}) must be below high ({self.high})")
                return self

        class RangedTask(TextClassificationTask):
            name = "ranged"
            data_config = RangedData

        @hookimpl
        def ftrun_register_tasks(register):
            register(RangedTask())
        """,
    )
    task = ftrun_plugin_manager("ranged_task").task("ranged")
    cases = {
        "lo": "run.toml: data.lo: unknown key (did you mean low?)",
        "low": "run.toml: data.low: input should be greater than or equal to 0, got -1",
    }
    for key, message in cases.items():
        with pytest.raises(FtrunError) as raised:
            build_config(task, {"data": {key: -1}}, source="run.toml", base_dir=tmp_path)
        assert str(raised.value) == message
    with pytest.raises(FtrunError) as raised:
        build_config(task, {"data": {"low": 2.0}}, source="run.toml", base_dir=tmp_path)
    assert str(raised.value) == "run.toml: data: low (2.0) must be below high (1.0)"  # the task's own words


# -- what a stage hook returns ----------------------------------------------------------

WRONG_ANSWERS = {
    "ftrun_load_data": ("def ftrun_load_data(task, config):\n    return {'train': []}", "dict, expected ftrun.TaskData"),
    "ftrun_build_head": (
        "def ftrun_build_head(task, config, data):\n    return 'bert'",
        "str, expected transformers.PreTrainedModel, or a module whose get_base_model() is one (a peft.PeftModel)",
    ),
    "ftrun_build_metrics": ("def ftrun_build_metrics(task, config, data):\n    return {'f1': 1.0}", "dict, expected ftrun.Metrics"),
    "ftrun_trainer_callbacks": ("def ftrun_trainer_callbacks(task, config):\n    return 'print'", "str, expected a list of transformers.TrainerCallback"),
    "ftrun_build_trainer": (
        "def ftrun_build_trainer(task, config, data, model, metrics, callbacks, output_dir):\n    return model",
        "BertForSequenceClassification, expected transformers.Trainer",
    ),
}


@pytest.mark.parametrize("hook", list(WRONG_ANSWERS))
def test_a_hook_answer_of_the_wrong_type_names_the_plugin(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path, hook):
    source, words = WRONG_ANSWERS[hook]
    ftrun_plugin_module("wrong_answer", f"from ftrun import hookimpl\n\n@hookimpl\n{source}\n")
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "wrong_answer", "--output-dir", tmp_path / "out")
    assert result.code == 2, result
    assert result.err.strip().splitlines() == [f"ftrun: error: plugin wrong_answer: {hook} returned {words}"]
    assert not (tmp_path / "out").exists()


def test_a_task_method_of_the_wrong_type_names_the_task_and_its_plugin(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "sloppy_task",
        """
        from ftrun import hookimpl
        from ftrun.plugins.text_classification import TextClassificationTask

        class SloppyTask(TextClassificationTask):
            name = "sloppy"

            def build_metrics(self, config, data):
                return {"accuracy": 1.0}

        @hookimpl
        def ftrun_register_tasks(register):
            register(SloppyTask())
        """,
    )
    tiny_manifest.write_text(tiny_manifest.read_text().replace('task = "text-classification"', 'task = "sloppy"'))
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "sloppy_task", "--output-dir", tmp_path / "out")
    assert result.code == 2, result
    assert result.err.strip() == (
        "ftrun: error: plugin sloppy_task: SloppyTask.build_metrics (stage ftrun_build_metrics) returned dict, expected ftrun.Metrics"
    )


def test_a_wrapper_wraps_a_stage_and_its_answer_is_checked(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "frozen_embeddings",
        """
        from ftrun import hookimpl

        built = []

        @hookimpl(wrapper=True)
        def ftrun_build_head(task, config, data):
            model = yield  # whatever another plugin, or the task itself, built
            for parameter in model.base_model.embeddings.parameters():
                parameter.requires_grad = False
            built.append(model)
            return model
        """,
    )
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "frozen_embeddings", "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    import frozen_embeddings

    (model,) = frozen_embeddings.built
    assert not any(p.requires_grad for p in model.base_model.embeddings.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())

    ftrun_plugin_module(
        "bad_wrapper",
        """
        from ftrun import hookimpl

        @hookimpl(wrapper=True)
        def ftrun_build_metrics(task, config, data):
            metrics = yield
            return {"compute": metrics.compute}
        """,
    )
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "bad_wrapper", "--output-dir", tmp_path / "out2")
    assert result.err.strip() == "ftrun: error: plugin bad_wrapper: ftrun_build_metrics (a wrapper) returned dict, expected ftrun.Metrics"


# -- hook specs can grow -------------------------------------------------------------------


def test_an_implementation_takes_only_the_arguments_it_needs(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "few_arguments",
        """
        from ftrun import hookimpl

        seen = {}

        @hookimpl
        def ftrun_load_data(config):
            seen["task"] = config.task

        @hookimpl
        def ftrun_build_trainer(output_dir):
            seen["output_dir"] = output_dir

        @hookimpl
        def ftrun_trainer_callbacks():
            return []
        """,
    )
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "few_arguments", "--output-dir", out)
    assert result.code == 0, result
    assert result.output_dir == out and (out / "model.safetensors").exists()
    import few_arguments

    assert few_arguments.seen == {"task": "text-classification", "output_dir": str(out)}


def test_a_hook_spec_can_grow_an_argument_without_breaking_plugins():
    """pluggy hands each implementation only the arguments it names: a new one in a spec breaks no plugin."""
    hookspec = pluggy.HookspecMarker("ftrun")

    class GrownSpecs:  # ftrun_build_metrics as a later ftrun might declare it
        @hookspec(firstresult=True)
        def ftrun_build_metrics(self, task, config, data, trainer_state): ...

    class WrittenForToday:
        @hookimpl
        def ftrun_build_metrics(self, task, config, data):
            return f"metrics for {task}"

    manager = pluggy.PluginManager("ftrun")
    manager.add_hookspecs(GrownSpecs)
    manager.register(WrittenForToday())
    manager.check_pending()
    assert manager.hook.ftrun_build_metrics(task="t", config=None, data=None, trainer_state={}) == "metrics for t"


# -- every hook documented and tested (datasette's rule) ---------------------------------


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_documented_and_implemented_in_a_test(name):
    import inspect

    import ftrun.api.hookspecs as specs

    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    # As datasette's: the section of each hook, and in it the spec's exact signature.
    sections = dict(re.findall(r"^### `?(\w+)`?\s*$\n(.*?)(?=^#)", guide, re.MULTILINE | re.DOTALL))
    assert name in sections, f"docs/plugins.md has no section for the hook {name}"
    signature = f"`{name}({', '.join(inspect.signature(getattr(specs, name)).parameters)})`"
    assert signature in sections[name], f"docs/plugins.md's section on {name} does not give its signature {signature}"
    tests = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"\bdef {name}\(", tests), f"no plugin in tests/ implements the hook {name}"


def test_the_plugin_guide_names_every_public_name():
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    missing = [name for name in ftrun.__all__ if f"`{name}" not in guide and f"{name}`" not in guide]
    assert not missing, f"docs/plugins.md does not mention {missing}"


# -- plugins that are not tasks: their own tables, pre-flight findings and the lifecycle hooks ----

GREETER = """
from pathlib import Path

from pydantic import Field

from ftrun import Section, hookimpl


class Greeting(Section):
    \"\"\"[greeting]: what the greeter plugin adds to a run.\"\"\"

    words: str = "hello"
    times: int = Field(1, gt=0)
    notes: str | None = Field(None, json_schema_extra={"path": "local"})


@hookimpl
def ftrun_register_tables(register):
    register("greeting", Greeting)


@hookimpl
def ftrun_preflight(task, config, data, report):
    greeting = config.tables.get("greeting")
    if greeting is not None and greeting.times > 3:
        report.fail("greeting.times", f"{greeting.times} greetings are too many for one run")


@hookimpl
def ftrun_after_training(task, config, trainer):
    greeting = config.tables.get("greeting")
    if greeting is not None:
        return f"greeter: {greeting.words} x{greeting.times} after {trainer.state.global_step} steps"


@hookimpl
def ftrun_save_model(task, config, trainer, output_dir):
    if "greeting" in config.tables:
        (Path(output_dir) / "greeting.txt").write_text(config.tables["greeting"].words)
    # None: ftrun's own save runs too


@hookimpl
def ftrun_model_card(task, config, card):
    if "greeting" in config.tables:
        card.data.tags.append("greeted")
        card.sections["Greeting"] = f"Greeted with *{config.tables['greeting'].words}*."
"""


def test_a_plugin_table_is_validated_like_every_other(ftrun_plugin_module, tiny_manifest, tmp_path):
    from ftrun import load_run

    ftrun_plugin_module("greeter", GREETER)
    manifest = tomllib.loads(tiny_manifest.read_text())
    _, config = load_run(manifest={**manifest, "greeting": {"times": 2, "notes": "notes.txt"}}, plugins=["greeter"], base_dir=tmp_path)
    assert config.tables["greeting"].times == 2 and config.tables["greeting"].words == "hello"
    assert config.tables["greeting"].notes == str(tmp_path / "notes.txt")  # its paths resolve as [data]'s do
    assert config.manifest["greeting"] == {"words": "hello", "times": 2, "notes": str(tmp_path / "notes.txt")}  # written whole
    _, without = load_run(manifest=manifest, plugins=["greeter"])
    assert "greeting" not in without.tables
    for table, words in (
        ({"tims": 2}, "manifest: greeting.tims: unknown key (did you mean times?)"),
        ({"times": 0}, "manifest: greeting.times: input should be greater than 0, got 0"),
        ({"times": "two"}, "manifest: greeting.times: input should be a valid integer, got 'two'"),
        ("loud", "manifest: greeting: expected a table, got a string"),
    ):
        with pytest.raises(FtrunError) as caught:
            load_run(manifest={**manifest, "greeting": table}, plugins=["greeter"])
        assert str(caught.value) == words
    with pytest.raises(FtrunError, match=r"^manifest: greeting: unknown key( \(did you mean \w+\?\))?$"):
        load_run(manifest={**manifest, "greeting": {}})  # no plugin reads it (a built-in table's name may be suggested)


def test_a_blocked_plugins_table_names_the_plugin(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module("greeter", GREETER)
    manifest = tmp_path / "greeted.toml"
    manifest.write_text('plugins = ["greeter"]\n' + tiny_manifest.read_text() + "\n[greeting]\ntimes = 2\n")
    result = ftrun_cli("check", "--manifest", manifest, "--no-plugin", "greeter")
    assert result.code == 2, result
    assert result.err.strip() == (
        "ftrun: error: greeted.toml: greeting: table of plugin greeter, which is blocked (--no-plugin or FTRUN_NO_PLUGINS): unblock it, or remove the table"
    )
    assert ftrun_cli("check", "--manifest", manifest).code == 0


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("register('greeting', dict)", "plugin clash: registered table 'greeting' as <class 'dict'>, which is not a pydantic model (subclass ftrun.Section)"),
        ("register('training', Section)", "plugin clash: table 'training' is one of ftrun's own manifest keys"),
    ],
)
def test_a_table_that_cannot_be_registered_names_the_plugin(ftrun_cli, ftrun_plugin_module, tiny_manifest, source, words):
    ftrun_plugin_module("greeter", GREETER)
    ftrun_plugin_module("clash", f"from ftrun import Section, hookimpl\n\n@hookimpl\ndef ftrun_register_tables(register):\n    {source}\n")
    result = ftrun_cli("check", "--manifest", tiny_manifest, "--plugin", "greeter", "--plugin", "clash")
    assert result.code == 2, result
    assert result.err.strip() == f"ftrun: error: {words}"


def test_two_plugins_registering_one_table_break_only_the_manifests_that_use_it(ftrun_cli, ftrun_plugin_module, tiny_manifest):
    ftrun_plugin_module("greeter", GREETER)
    ftrun_plugin_module("clash", "from ftrun import Section, hookimpl\n\n@hookimpl\ndef ftrun_register_tables(register):\n    register('greeting', Section)\n")
    plugins = ("--plugin", "greeter", "--plugin", "clash")
    clash = "table 'greeting' is registered by both plugin greeter and plugin clash: uninstall or block one of them (--no-plugin NAME)"
    listed = ftrun_cli("plugins", *plugins)
    assert listed.code == 0 and f"warning: {clash}; a manifest with [greeting] fails, everything else works" in listed.out, listed
    for command in (("schema", *plugins), ("tasks", *plugins), ("check", "--manifest", tiny_manifest, *plugins)):
        assert ftrun_cli(*command).code == 0, command
    greeted = tiny_manifest.with_name("greeted.toml")
    greeted.write_text(tiny_manifest.read_text() + "\n[greeting]\ntimes = 2\n")
    for command in (("check",), ()):
        result = ftrun_cli(*command, "--manifest", greeted, *plugins)
        assert result.code == 2 and result.err.strip() == f"ftrun: error: greeted.toml: greeting: {clash}", result


def test_ftrun_schema_has_the_plugin_tables(ftrun_cli, ftrun_plugin_module):
    ftrun_plugin_module("greeter", GREETER)
    schema = json.loads(ftrun_cli("schema", "--plugin", "greeter").out)
    assert schema["$defs"]["task:text-classification"]["properties"]["greeting"] == {"$ref": "#/$defs/Greeting"}
    assert schema["$defs"]["Greeting"]["description"] == "[greeting]: what the greeter plugin adds to a run."
    assert schema["$defs"]["Greeting"]["properties"]["times"]["exclusiveMinimum"] == 0
    assert "greeting" not in json.loads(ftrun_cli("schema").out)["$defs"]["task:text-classification"]["properties"]


def test_a_plugins_preflight_finding_stops_check_and_the_run(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module("greeter", GREETER)
    line = "ftrun: error: --set greeting.times: 5 greetings are too many for one run"
    checked = ftrun_cli("check", "--manifest", tiny_manifest, "--plugin", "greeter", "--set", "greeting.times=5")
    assert checked.code == 2 and checked.err.strip() == line, checked
    ran = ftrun_cli("--manifest", tiny_manifest, "--plugin", "greeter", "--set", "greeting.times=5", "--output-dir", tmp_path / "out")
    assert ran.code == 2 and ran.err.strip() == line, ran
    assert not (tmp_path / "out").exists()


def test_the_lifecycle_hooks_see_the_trained_run(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module("greeter", GREETER)
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--plugin", "greeter", "--set", "greeting.words='good day'", "--output-dir", out)
    assert result.code == 0, result
    assert "greeter: good day x1 after 6 steps" in result.out  # ftrun_after_training: a line of the summary
    assert (out / "greeting.txt").read_text() == "good day"  # ftrun_save_model, beside ftrun's own save
    assert (out / "model.safetensors").is_file() and not (out / ".ftrun-staging").exists()
    card = (out / "README.md").read_text()
    assert "- greeted" in card.split("---")[1]  # metadata, in the YAML header
    assert "## Greeting\n\nGreeted with *good day*." in card
    assert tomllib.loads((out / "ftrun.toml").read_text())["greeting"] == {"words": "good day", "times": 1}


def test_a_plugin_can_replace_the_final_save(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "weights_only",
        """
        from ftrun import hookimpl

        @hookimpl
        def ftrun_save_model(trainer, output_dir):
            trainer.model.save_pretrained(output_dir)  # no tokenizer
            return True
        """,
    )
    out = tmp_path / "out"
    assert ftrun_cli("--manifest", tiny_manifest, "--plugin", "weights_only", "--output-dir", out).code == 0
    assert (out / "model.safetensors").is_file() and (out / "ftrun.toml").is_file()
    assert not (out / "tokenizer.json").exists()
