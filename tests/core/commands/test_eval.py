"""``ftrun eval``: a trained model directory evaluated again, on its own eval split or another, for every built-in task."""

import json

import pytest
from conftest import EMBEDDED, embedded_data

from ftrun.testing import TINY_BERT, TINY_GPT2, TINY_T5, TINY_TRAINING, files_under, write_jsonl

MODELS = {"causal-lm": TINY_GPT2, "summarization": TINY_T5, "translation": TINY_T5}
#: The metric each task's eval must give again, as the run's final evaluation gave it.
METRIC = {
    "text-classification": "eval_accuracy",
    "ner": "eval_f1",
    "question-answering": "eval_f1",
    "translation": "eval_bleu",
    "summarization": "eval_rougeL",
    "causal-lm": "eval_perplexity",
    "multiple-choice": "eval_accuracy",
}


def trained(ftrun_cli, ftrun_manifest, tmp_path, task):
    data = {**embedded_data(task), "max_train_samples": 24, "max_eval_samples": 8} if task != "text-classification" else None
    if data is None:
        from conftest import sample_reviews

        rows = sample_reviews("imdb-train", 32)
        data = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[:24])), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[24:]))}
    model = {"config": MODELS.get(task, TINY_BERT), "tokenizer_vocab_size": 300}
    training = {**TINY_TRAINING, **EMBEDDED.get(task, {}).get("training", {})}
    out = tmp_path / "model"
    result = ftrun_cli("--manifest", ftrun_manifest({"task": task, "model": model, "data": data, "training": training}), "--output-dir", out)
    assert result.code == 0, result
    return out


@pytest.mark.parametrize("task", sorted(METRIC))
def test_eval_gives_the_runs_final_metrics_again_and_changes_nothing_in_the_model_directory(ftrun_cli, ftrun_manifest, tmp_path, task):
    out = trained(ftrun_cli, ftrun_manifest, tmp_path, task)
    before = files_under(out)
    result = ftrun_cli("eval", "--model", out)
    assert result.code == 0, result
    folder = tmp_path / "model-eval"
    again = json.loads((folder / "eval_results.json").read_text())
    run = json.loads((out / "eval_results.json").read_text())
    assert again[METRIC[task]] == pytest.approx(run[METRIC[task]], rel=1e-4)
    assert files_under(out) == before
    assert "Evaluation" in result.out and f"Results written to {folder}" in result.out


def test_eval_on_another_file_and_its_errors(ftrun_cli, ftrun_manifest, tmp_path):
    from conftest import sample_reviews

    out = trained(ftrun_cli, ftrun_manifest, tmp_path, "text-classification")
    other = write_jsonl(tmp_path / "other.jsonl", sample_reviews("imdb-eval", 6))
    result = ftrun_cli("eval", "--model", out, "--set", f"data.eval_file={other}", "--output-dir", tmp_path / "other-eval")
    assert result.code == 0, result
    assert json.loads((tmp_path / "other-eval" / "eval_results.json").read_text())["eval_samples_per_second"] > 0
    assert (tmp_path / "other-eval" / "plots" / "confusion_matrix.png").is_file()
    again = ftrun_cli("eval", "--model", out, "--output-dir", tmp_path / "other-eval")
    assert again.code == 2 and "other-eval is not empty: choose another, or pass --overwrite" in again.err
    inside = ftrun_cli("eval", "--model", out, "--output-dir", out / "eval")
    assert inside.code == 2 and "is inside the model directory" in inside.err
    missing = ftrun_cli("eval", "--model", tmp_path)
    assert missing.code == 2 and "has no ftrun.toml" in missing.err


#: A plugin that sees the data stage, as one that loads its data through it would.
DATA_SPY = """
from ftrun import hookimpl

SEEN = []


@hookimpl(wrapper=True)
def ftrun_load_data(task, config, sample, labels, splits):
    data = yield
    SEEN.append((labels, splits, len(data.eval)))
    return data
"""


def test_eval_loads_its_data_through_the_data_stage_and_prints_the_summary_table_or_json(ftrun_cli, ftrun_manifest, ftrun_plugin_module, tmp_path):
    out = trained(ftrun_cli, ftrun_manifest, tmp_path, "text-classification")
    spy = __import__(ftrun_plugin_module("data_spy", DATA_SPY))
    result = ftrun_cli("eval", "--model", out, "--plugin", "data_spy")
    assert result.code == 0, result
    labels = [json.loads((out / "config.json").read_text())["id2label"][str(i)] for i in range(2)]
    assert spy.SEEN == [(labels, ("eval",), 8)]  # the trained model's labels, in its order; the eval split alone
    assert "Evaluation" in result.out and "'eval_loss'" not in result.out  # the run's table, not the Trainer's printed dict
    as_json = ftrun_cli("eval", "--model", out, "--json", "--output-dir", tmp_path / "json-eval")
    assert as_json.code == 0, as_json
    results = json.loads(as_json.out)  # stdout holds the JSON alone
    assert results["eval_accuracy"] == json.loads((tmp_path / "json-eval" / "eval_results.json").read_text())["eval_accuracy"]
