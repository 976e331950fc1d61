"""The model card of a run: the Hub's metadata (model-index with the eval results), and what made the model."""

import json

from huggingface_hub import ModelCard

from ftrun import __version__


def test_the_card_parses_back_with_the_eval_results_and_names_the_plugins_and_data(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--set", 'model.license="apache-2.0"')
    assert result.code == 0, result
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "apache-2.0"
    metrics = json.loads((out / "eval_results.json").read_text())
    results = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert results == {key.removeprefix("eval_"): value for key, value in metrics.items() if key in ("eval_accuracy", "eval_f1", "eval_loss")}
    assert {(r.task_type, r.dataset_name, r.dataset_split) for r in card.data.eval_results} == {("text-classification", "eval.jsonl", "eval")}
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification" and "ftrun" in card.data.tags
    assert f"ftrun {__version__}, with these plugins:" in card.text
    assert f"| text-classification | ftrun | {__version__} |" in card.text
    train_fingerprint = result.run.data.raw.train._fingerprint
    assert f"- train: `{train_fingerprint}`" in card.text
