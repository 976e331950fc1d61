"""The MCC plugin, installed: text-classification gains a metric, and nothing else changes."""

import importlib.metadata
import json
from types import SimpleNamespace

import pytest

try:
    importlib.metadata.distribution("ftrun-mcc")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("ftrun-mcc is not installed: pip install ./examples/plugins/ftrun-mcc", allow_module_level=True)


def test_the_plugin_is_loaded_from_its_entry_point(cli):
    result = cli("plugins")
    assert result.code == 0, result
    assert "mcc (ftrun-mcc 0.1.0): ftrun_build_metrics" in result.out


def test_text_classification_gains_mcc_and_keeps_its_own_metrics(cli, tiny_manifest, tmp_path):
    result = cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    metrics = json.loads((result.output_dir / "eval_results.json").read_text())
    assert -1.0 <= metrics["eval_mcc"] <= 1.0
    assert "eval_accuracy" in metrics and "eval_f1" in metrics


def test_other_tasks_keep_their_metrics(make_plugin_manager):
    manager = make_plugin_manager()
    other = SimpleNamespace(name="some-other-task")
    assert manager.get_plugin("mcc").ftrun_build_metrics(task=other, config=None, data=None) is None


def test_it_can_be_blocked(cli):
    result = cli("plugins", "--no-plugin", "mcc")
    assert result.code == 0, result
    assert not any(line.startswith("mcc ") for line in result.out.splitlines())
