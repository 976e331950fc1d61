"""The multi-label task, tested as its users meet it: installed, through ftrun's command line.

The fixtures (ftrun_cli, ftrun_config, ftrun_plugin_manager) and the TINY_* settings come from
ftrun's pytest plugin, ftrun.testing, which pytest loads wherever ftrun is installed; the data
is this plugin's own.
"""

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
from transformers import EvalPrediction, pipeline

from ftrun import FtrunError
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

try:
    importlib.metadata.distribution("ftrun-multilabel")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("ftrun-multilabel is not installed: pip install ./examples/plugins/ftrun-multilabel", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[1] / "example.toml"
LABELS = ["account", "billing", "delivery", "product"]


def test_the_task_comes_from_the_entry_point(ftrun_cli):
    result = ftrun_cli("tasks")
    assert result.code == 0, result
    line = next(line for line in result.out.splitlines() if line.startswith("multilabel-classification "))
    assert "plugin multilabel (ftrun-multilabel 0.1.0)" in line


def test_check_reads_the_example_and_its_labels(ftrun_cli):
    result = ftrun_cli("check", "--manifest", EXAMPLE)
    assert result.code == 0, result
    assert "train 240 / eval 60 examples" in result.out and f"4 labels ({', '.join(LABELS)})" in result.out


def test_check_counts_each_label(ftrun_cli):
    result = ftrun_cli("check", "--manifest", EXAMPLE, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    train, evaluation = report["splits"]["train"], report["splits"]["eval"]
    assert set(train["labels"]) == set(LABELS) and sum(train["labels"].values()) >= train["examples"] // 2
    assert (train["empty"], evaluation["unseen"]) == (0, [])


def test_the_example_manifest_runs_end_to_end(ftrun_cli, tmp_path):
    result = ftrun_cli(
        "--task",
        "multilabel-classification",
        "--manifest",
        EXAMPLE,
        # The whole flow on a slice of the sample, in seconds.
        "--set",
        "training.num_train_epochs=1",
        "--set",
        "data.max_train_samples=64",
        "--set",
        "data.max_eval_samples=16",
        "--output-dir",
        tmp_path / "out",
    )
    assert result.code == 0, result
    out = result.output_dir
    assert out == tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert config["multilabel_threshold"] == 0.5
    metrics = json.loads((out / "eval_results.json").read_text())
    assert {"eval_f1_micro", "eval_f1_macro", "eval_exact_match"} <= set(metrics)
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 and all(set(p["labels"]) <= set(LABELS) and set(p["scores"]) == set(LABELS) for p in predictions)

    predicted = ftrun_cli("predict", "--model", out, "--json", "I was charged twice.")
    assert predicted.code == 0, predicted
    assert set(json.loads(predicted.out)["scores"]) == set(LABELS)
    (scores,) = pipeline("text-classification", model=str(out), top_k=None)(["I was charged twice."])
    assert {s["label"] for s in scores} == set(LABELS)  # a standard model directory


@pytest.fixture
def config_for(ftrun_config, ftrun_plugin_manager, tmp_path):
    """config_for(train_rows, eval_rows, **tables) -> (task, the RunConfig a run of these tables gets)."""
    task = ftrun_plugin_manager().task("multilabel-classification")

    def build(train: list[dict], evaluation: list[dict], **tables):
        data = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", train)), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", evaluation))}
        model = {"config": TINY_BERT, "tokenizer_vocab_size": 200}
        return task, ftrun_config({"task": task.name, "model": model, "data": data, "training": TINY_TRAINING, **tables})

    return build


def rows(*label_lists) -> list[dict]:
    return [{"text": f"message number {i}", "labels": labels} for i, labels in enumerate(label_lists)]


def test_labels_become_one_float_per_label(config_for, ftrun_plugin_manager):
    task, config = config_for(rows(["b", "a"], [], ["c"]), rows(["a"]))
    plugins = ftrun_plugin_manager()  # the stages as a run calls them
    data = plugins.load_data(task, config)
    assert data.labels == ["a", "b", "c"]
    assert data.train["labels"] == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert task.encode({"text": ["one more"], "labels": [["c", "a"]]}, data, config, "eval")["labels"] == [[1.0, 0.0, 1.0]]
    model = plugins.build_head(task, config, data)
    assert model.config.problem_type == "multi_label_classification" and model.config.num_labels == 3


def test_the_threshold_decides_which_labels_are_predicted(config_for):
    logits = np.array([[2.0, -0.5], [0.5, 0.1]])  # sigmoid: [[0.88, 0.38], [0.62, 0.52]]
    references = np.array([[1, 0], [1, 1]])
    prediction = EvalPrediction(predictions=logits, label_ids=references)
    for threshold, exact in ((0.3, 0.5), (0.5, 1.0), (0.55, 0.5)):  # a false label, none wrong, a missed label
        task, config = config_for(rows(["a"], ["b"]), rows(["a"]), metrics={"names": ["exact_match", "f1_micro"], "threshold": threshold})
        metrics = task.build_metrics(config, None).compute(prediction)
        assert metrics["exact_match"] == exact, threshold
    assert metrics["f1_micro"] == pytest.approx(0.8)  # at 0.55: two of three true labels found, no false one


@pytest.mark.parametrize(
    ("train", "tables", "words"),
    [
        pytest.param(rows(["a"], "b"), {}, ("run.toml: data.labels_column:", "the train split has 'b', not a list of label names"), id="label-not-a-list"),
        pytest.param(rows(["a"], ["a"]), {}, ("data.labels_column:", "needs two or more"), id="one-label"),
        pytest.param(
            rows(["a"], ["b"]), {"metrics": {"threshold": 1.5}}, ("run.toml: metrics.threshold: input should be less than 1, got 1.5",), id="threshold"
        ),
        pytest.param(rows(["a"], ["b"]), {"metrics": {"names": ["f1"]}}, ("metrics.names:", "unknown metric 'f1'", "f1_micro"), id="metric"),
    ],
)
def test_bad_input_names_the_key(config_for, ftrun_plugin_manager, train, tables, words):
    plugins = ftrun_plugin_manager()
    with pytest.raises(FtrunError) as raised:
        task, config = config_for(train, rows(["a"]), **tables)
        plugins.build_metrics(task, config, plugins.load_data(task, config))
    for word in words:
        assert word in str(raised.value)


def test_the_schema_holds_the_task_and_its_keys(ftrun_cli):
    result = ftrun_cli("schema")
    assert result.code == 0, result
    schema = json.loads(result.out)
    task = schema["$defs"]["task:multilabel-classification"]
    assert task["properties"]["data"] == {"$ref": "#/$defs/MultiLabelData"}
    assert schema["$defs"]["MultiLabelMetrics"]["properties"]["threshold"]["exclusiveMaximum"] == 1
