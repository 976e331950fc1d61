"""A whole run through the CLI on a tiny model: the outputs a user gets."""

import json

from transformers import pipeline


def test_run_writes_a_standard_model_directory(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out)
    assert result.code == 0, result
    for name in ("config.json", "model.safetensors", "tokenizer.json", "eval_results.json", "all_results.json", "README.md", "ftrun.toml", "predictions.jsonl"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert config["label2id"] == {"neg": 0, "pos": 1}
    results = json.loads((out / "eval_results.json").read_text())
    assert 0.0 <= results["eval_accuracy"] <= 1.0 and "eval_f1" in results
    card = (out / "README.md").read_text()
    assert "| accuracy |" in card and 'task = "text-classification"' in card
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["input"] for p in predictions] == ["A wonderful film.", "Dull and far too long."]
    assert {p["label"] for p in predictions} <= {"neg", "pos"}
    assert "Final evaluation" in result.out and "accuracy" in result.out

    classify = pipeline("text-classification", model=str(out))
    assert classify("a great movie")[0]["label"] in {"neg", "pos"}


def test_predict_command_reads_the_task_from_the_run(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    assert ftrun_cli("--manifest", tiny_manifest, "--output-dir", out).code == 0
    plain = ftrun_cli("predict", "--model", out, "what a film", "so boring")
    assert plain.code == 0, plain
    lines = plain.out.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("\twhat a film")
    as_json = ftrun_cli("predict", "--model", out, "--json", stdin="first line\n\nsecond line\n")
    records = [json.loads(line) for line in as_json.out.strip().splitlines()]
    assert [r["input"] for r in records] == ["first line", "second line"]
    assert all(r["label"] in {"neg", "pos"} and 0 <= r["score"] <= 1 for r in records)
