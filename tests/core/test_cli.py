"""The command line as a user meets it first: help, version, python -m, listings."""

import subprocess
import sys

import pytest

from ftrun import __version__
from ftrun.api.plugin_manager import get_plugin_manager


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


def test_check_runs_the_metric_stage(ftrun_cli):
    """An unknown metric name fails ftrun check, as it would the run, and a plugin's metric stage is consulted."""
    result = ftrun_cli("check", "--task", "text-classification", "--demo", "--set", "metrics.names=['no_such_metric']")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert result.err.startswith("ftrun: error: --set metrics.names: cannot load metric 'no_such_metric'"), result


#: Libraries only some runs need: a plugin imports them when a run uses it, never at startup.
OPTIONAL_LIBRARIES = ("peft", "bitsandbytes", "mlflow", "tensorboard", "optuna", "matplotlib", "deepspeed", "trl")


def imported_by(command: list[str], libraries: tuple[str, ...]) -> list[str]:
    """Which of ``libraries`` ``ftrun COMMAND`` imports, in a fresh interpreter."""
    code = (
        "import sys\nfrom ftrun.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & {set(libraries)!r}), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, check=True)
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", [["tasks"], ["plugins"], ["--help"]])
def test_startup_imports_no_optional_library(command):
    assert imported_by(command, OPTIONAL_LIBRARIES) == "[]"


@pytest.mark.parametrize("command", [["tasks"], ["plugins"], ["--help"]])
def test_listings_import_no_torch(command):
    # torch's import alone takes seconds: a listing loads no model, and a task's model class is imported on first use.
    assert imported_by(command, ("torch",)) == "[]"
