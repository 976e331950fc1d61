import json

from transformers import AutoTokenizer

from ftrun import TaskData
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl


def test_a_run_end_to_end(ftrun_cli, ftrun_manifest, tmp_path):
    rows = [{"text": f"review number {i}", "target": i / 10} for i in range(32)]
    manifest = ftrun_manifest({
        "task": "text-regression",
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 200},   # a tiny BERT, built offline
        "data": {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows)),
                 "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:8]))},
        "training": TINY_TRAINING,
        "predict": {"examples": ["review number 3"]},
    })
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "eval_mse" in json.loads((result.output_dir / "eval_results.json").read_text())
    assert len(result.run.predictions) == 1


def test_encode_reads_the_configured_column(ftrun_config, ftrun_plugin_manager, ftrun_tiny_bert):
    # The config a run of these tables gets: the task's defaults, validated.
    config = ftrun_config({"task": "text-regression", "model": {"name": str(ftrun_tiny_bert)},
                           "data": {"dataset": "any/reviews", "target_column": "stars"}})
    task = ftrun_plugin_manager().task("text-regression")
    data = TaskData(train=None, eval=None, tokenizer=AutoTokenizer.from_pretrained(ftrun_tiny_bert))
    encoded = task.encode({"text": ["Great.", "Awful."], "stars": [5, 1]}, data, config, "train")
    assert encoded["labels"] == [5.0, 1.0]


def test_the_task_is_registered(ftrun_plugin_manager):
    assert ftrun_plugin_manager().task("text-regression").data_config.__name__ == "RegressionData"
