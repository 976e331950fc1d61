"""The plugin system: discovery, overriding one stage, and the errors plugin authors meet."""

import json
import textwrap

import pytest

from ftrun import FtrunError
from ftrun.hookspecs import hook_names
from ftrun.plugin_manager import get_plugin_manager


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """plugin_module(name, source) writes an importable module and returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return name

    return write


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


def test_a_plugin_overrides_one_stage_of_one_task(cli, plugin_module, tiny_manifest, tmp_path):
    plugin_module(
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
    result = cli("--manifest", tiny_manifest, "--plugin", "only_f1", "--output-dir", out)
    assert result.code == 0, result
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["eval_always_one"] == 1.0 and metrics["eval_n"] == 16.0
    assert "eval_accuracy" not in metrics  # the built-in metric stage did not run
    assert (out / "model.safetensors").exists()  # every other stage did


def test_manifest_plugins_are_loaded(cli, plugin_module, tiny_manifest, tmp_path):
    plugin_module(
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
    assert cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out").code == 0
    import counting

    assert counting.Count.steps == 6  # 48 examples, batch 8, one epoch


def test_a_third_party_task_registers_and_runs(cli, plugin_module, tiny_manifest, tmp_path):
    plugin_module(
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
    listing = cli("tasks", "--plugin", "sentiment_plugin")
    assert listing.code == 0
    assert "sentiment" in listing.out and "plugin sentiment_plugin" in listing.out
    manifest = tiny_manifest.read_text().replace('task = "text-classification"', 'task = "sentiment"')
    tiny_manifest.write_text(manifest)
    tiny_manifest.write_text('plugins = ["sentiment_plugin"]\n' + manifest)
    result = cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert 'task = "sentiment"' in (tmp_path / "out" / "ftrun.toml").read_text()
    predicted = cli("predict", "--model", tmp_path / "out", "a fine film")  # the run's plugins are loaded again
    assert predicted.code == 0, predicted
    assert predicted.out.strip().endswith("\ta fine film")


def test_duplicate_task_name_names_both_plugins(cli, plugin_module):
    plugin_module(
        "copycat",
        """
        from ftrun import hookimpl
        from ftrun.plugins.text_classification import TextClassificationTask

        @hookimpl
        def ftrun_register_tasks(register):
            register(TextClassificationTask())
        """,
    )
    result = cli("tasks", "--plugin", "copycat")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "ftrun: error: task 'text-classification' is registered by both plugin text-classification (ftrun 0.1.0) and plugin copycat"
    ]


def test_misspelt_hook_name_is_reported(cli, plugin_module):
    plugin_module(
        "typo",
        """
        from ftrun import hookimpl

        @hookimpl
        def ftrun_build_metric(task, config, data):
            return None
        """,
    )
    result = cli("tasks", "--plugin", "typo")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("ftrun: error: plugin typo:") and "ftrun_build_metric" in line and "misspelt" in line


def test_hook_with_an_unknown_argument_is_reported(cli, plugin_module):
    plugin_module(
        "badargs",
        """
        from ftrun import hookimpl

        @hookimpl
        def ftrun_build_head(task, config, data, gpu):
            return None
        """,
    )
    result = cli("tasks", "--plugin", "badargs")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("ftrun: error: plugin badargs:") and "gpu" in line


def test_plugin_module_that_fails_to_import(cli, plugin_module):
    plugin_module("broken", "import no_such_dependency\n")
    result = cli("tasks", "--plugin", "broken")
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip() == (
        "ftrun: error: plugin broken failed to import: ModuleNotFoundError: No module named 'no_such_dependency'"
    )
    assert cli("tasks", "--plugin", "no_such_module").code == 2


def test_entry_point_that_fails_to_import_names_its_distribution(cli, installed_plugin):
    installed_plugin("ftrun-broken", "broken-task", "broken_task_module", "raise RuntimeError('boom')\n")
    result = cli("tasks")
    assert result.code == 2
    assert result.err.strip() == "ftrun: error: plugin broken-task (ftrun-broken 1.2) failed to import: RuntimeError: boom"


def test_an_entry_point_can_be_blocked(cli, installed_plugin, monkeypatch):
    installed_plugin("ftrun-broken", "broken-task", "broken_task_module", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("FTRUN_NO_PLUGINS", "broken-task")
    assert cli("tasks").code == 0


def test_register_must_receive_a_task(plugin_module):
    plugin_module(
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


def test_plugins_command_lists_hooks_and_origin(cli):
    result = cli("plugins")
    assert result.code == 0
    assert "text-classification (ftrun 0.1.0): ftrun_register_tasks" in result.out
    assert "ftrun.default_stages" in result.out and "ftrun_build_trainer" in result.out


def test_every_hook_spec_is_documented():
    import ftrun.hookspecs as specs

    for name in hook_names():
        doc = getattr(specs, name).__doc__ or ""
        assert "Called" in doc and ("Returns" in doc or "return" in doc.lower()), name
