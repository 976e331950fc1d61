"""The MCC plugin, installed: text-classification gains a metric, and nothing else changes."""

import importlib.metadata
import json
from types import SimpleNamespace

import pytest

from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

try:
    importlib.metadata.distribution("ftrun-mcc")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("ftrun-mcc is not installed: pip install ./examples/plugins/ftrun-mcc", allow_module_level=True)

GOOD = ["good", "great", "lovely", "excellent", "pleasant", "superb"]
BAD = ["bad", "awful", "dull", "broken", "terrible", "boring"]
THINGS = ["film", "meal", "hotel", "service", "book", "concert", "game", "trip"]


def reviews(things: list[str]) -> list[dict]:
    """Short reviews of ``things``, labelled by the one word that says what the writer thought."""
    return [{"text": f"The {thing} was {word}.", "label": label} for thing in things for words, label in ((GOOD, "pos"), (BAD, "neg")) for word in words[:3]]


@pytest.fixture
def manifest(ftrun_manifest, tmp_path):
    """A text-classification run of a few seconds, on data of its own."""
    train = write_jsonl(tmp_path / "train.jsonl", reviews(THINGS[:6]))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", reviews(THINGS[6:]))
    return ftrun_manifest(
        {
            "task": "text-classification",
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},
            "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 32},
            "training": TINY_TRAINING,
        }
    )


def test_the_plugin_is_loaded_from_its_entry_point(ftrun_cli):
    result = ftrun_cli("plugins")
    assert result.code == 0, result
    assert "mcc (ftrun-mcc 0.1.0): ftrun_build_metrics" in result.out


def test_text_classification_gains_mcc_and_keeps_its_own_metrics(ftrun_cli, manifest, tmp_path):
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    metrics = json.loads((result.output_dir / "eval_results.json").read_text())
    assert -1.0 <= metrics["eval_mcc"] <= 1.0
    assert "eval_accuracy" in metrics and "eval_f1" in metrics


def test_other_tasks_keep_their_metrics(ftrun_plugin_manager):
    manager = ftrun_plugin_manager()
    other = SimpleNamespace(name="some-other-task")
    assert manager.get_plugin("mcc").ftrun_build_metrics(task=other, config=None, data=None) is None


def test_it_can_be_blocked(ftrun_cli):
    result = ftrun_cli("plugins", "--no-plugin", "mcc")
    assert result.code == 0, result
    assert not any(line.startswith("mcc ") for line in result.out.splitlines())
