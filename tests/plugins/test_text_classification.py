"""The text-classification task's data, head and metric stages on tiny data."""

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import EvalPrediction

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.manifest.config import build_config
from ftrun.stages.data import load_data, tokenize
from ftrun.stages.head import build_head
from ftrun.testing import TINY_BERT, write_jsonl


@pytest.fixture(scope="module")
def task():
    return get_plugin_manager().task("text-classification")


def config_for(task, tmp_path: Path, data: dict, model: dict | None = None, **tables):
    manifest = {"task": task.name, "model": model or {"config": TINY_BERT, "tokenizer_vocab_size": 300}, "data": data, **tables}
    return build_config(task, manifest, source="test.toml", base_dir=tmp_path)


def write_rows(tmp_path: Path, train: list[dict], evaluation: list[dict], suffix: str = "jsonl") -> dict:
    import pandas as pd

    paths = {}
    for name, rows in (("train", train), ("eval", evaluation)):
        path = tmp_path / f"{name}.{suffix}"
        frame = pd.DataFrame(rows)
        writers = {
            "jsonl": lambda p: write_jsonl(p, rows),
            "csv": lambda p: frame.to_csv(p, index=False),
            "tsv": lambda p: frame.to_csv(p, index=False, sep="\t"),
            "parquet": frame.to_parquet,
        }
        writers[suffix](path)
        paths[f"{name}_file"] = str(path)
    return paths


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "tsv", "parquet"])
def test_string_labels_keep_their_names_in_every_file_format(task, tmp_path, suffix):
    rows = [{"text": f"review number {i}, with a comma", "label": ["bad", "good", "meh"][i % 3]} for i in range(12)]
    config = config_for(task, tmp_path, write_rows(tmp_path, rows, rows[:6], suffix))
    data = load_data(task, config)
    assert data.labels == ["bad", "good", "meh"]
    assert data.train["labels"][:4] == [0, 1, 2, 0]
    model = build_head(task, config, data)
    assert model.config.id2label == {0: "bad", 1: "good", 2: "meh"}
    assert model.config.num_labels == 3


def test_integer_labels_named_by_label_names(task, tmp_path):
    rows = [{"text": f"text {i}", "label": i % 2} for i in range(8)]
    config = config_for(task, tmp_path, {**write_rows(tmp_path, rows, rows), "label_names": ["negative", "positive"]})
    data = load_data(task, config)
    assert data.labels == ["negative", "positive"]
    assert data.train["labels"] == [i % 2 for i in range(8)]


def test_integer_labels_without_names_use_their_values(task, tmp_path):
    rows = [{"text": f"text {i}", "label": [3, 7][i % 2]} for i in range(8)]
    data = load_data(task, config_for(task, tmp_path, write_rows(tmp_path, rows, rows)))
    assert data.labels == ["3", "7"]
    assert data.train["labels"] == [i % 2 for i in range(8)]


def test_classlabel_names_come_from_the_dataset(task, tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rows = {"text": ["fine", "awful", "great", "poor"], "label": [1, 0, 1, 0]}
    DatasetDict({"train": Dataset.from_dict(rows, features=features), "test": Dataset.from_dict(rows, features=features)}).save_to_disk(tmp_path / "saved")
    data = load_data(task, config_for(task, tmp_path, {"dataset": str(tmp_path / "saved")}))
    assert data.labels == ["neg", "pos"]
    assert data.train["labels"] == [1, 0, 1, 0]


def test_text_pairs_are_encoded_together(task, tmp_path, ftrun_tiny_bert):
    rows = [{"premise": f"a cat sat {i}", "hypothesis": "an animal sat", "label": ["entailment", "neutral"][i % 2]} for i in range(8)]
    data_settings = {**write_rows(tmp_path, rows, rows), "text_column": "premise", "text_pair_column": "hypothesis"}
    config = config_for(task, tmp_path, data_settings, model={"name": str(ftrun_tiny_bert)})
    data = load_data(task, config)
    ids = data.train[0]["input_ids"]
    assert ids.count(data.tokenizer.sep_token_id) == 2  # [CLS] premise [SEP] hypothesis [SEP]
    assert set(data.train[0]["token_type_ids"]) == {0, 1}


def test_truncation_to_max_length_and_no_padding(task, tmp_path):
    rows = [{"text": "word " * (5 + 40 * i), "label": ["a", "b"][i % 2]} for i in range(4)]
    data = load_data(task, config_for(task, tmp_path, {**write_rows(tmp_path, rows, rows), "max_length": 32}))
    lengths = [len(ids) for ids in data.train["input_ids"]]
    assert max(lengths) == 32 and min(lengths) < 32  # truncated, and padded only per batch by the collator


def test_an_extremely_long_text_is_truncated_to_what_the_model_takes(task, tmp_path):
    rows = [{"text": "word " * 200_000, "label": "a"}, {"text": "short", "label": "b"}]
    data = load_data(task, config_for(task, tmp_path, write_rows(tmp_path, rows, rows)))  # no max_length
    assert [len(ids) for ids in data.train["input_ids"]] == [TINY_BERT["max_position_embeddings"], 3]


def test_subsets_are_shuffled_with_the_seed(task, tmp_path):
    rows = [{"text": f"text {i}", "label": ["a", "b"][i % 2]} for i in range(50)]
    files = write_rows(tmp_path, rows, rows)
    first = load_data(task, config_for(task, tmp_path, {**files, "max_train_samples": 10}))
    second = load_data(task, config_for(task, tmp_path, {**files, "max_train_samples": 10}))
    assert len(first.train) == 10 and first.raw.train["text"] == second.raw.train["text"]
    assert first.raw.train["text"] != [f"text {i}" for i in range(10)]


def test_metrics_binary_and_macro_f1(task, tmp_path):
    rows = [{"text": "x", "label": label} for label in ["a", "b", "c"]]
    config = config_for(task, tmp_path, write_rows(tmp_path, rows, rows))
    data = load_data(task, config)
    metrics = task.build_metrics(config, data)
    assert metrics.best == "accuracy" and metrics.greater_is_better
    logits = np.eye(3)[[0, 1, 2, 2]]
    result = metrics.compute(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 2, 1])))
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)  # macro over three classes


def test_unknown_metric_fails_before_training(task, tmp_path):
    rows = [{"text": "x", "label": label} for label in ["a", "b"]]
    config = config_for(task, tmp_path, write_rows(tmp_path, rows, rows), metrics={"names": ["accuracy", "no_such_metric"]})
    data = load_data(task, config)
    from ftrun import FtrunError

    with pytest.raises(FtrunError, match=r"test.toml: metrics.names: cannot load metric 'no_such_metric'.*offline metrics are accuracy, f1"):
        task.build_metrics(config, data)


def test_tokenized_splits_are_cached(tmp_path):
    from datasets import load_dataset

    path = write_jsonl(tmp_path / "rows.jsonl", [{"text": f"row {i}"} for i in range(20)])
    calls = []

    def encode(batch):
        calls.append(len(batch["text"]))
        return {"n": [len(text) for text in batch["text"]]}

    for _ in range(2):
        split = load_dataset("json", data_files=str(path), split="train")
        result, stats = tokenize(split, encode, key="k1", desc="test")
        assert result["n"][0] == 5
    assert sum(calls) == 20  # encoded once, loaded from the cache the second time
    assert stats.cached
    tokenize(load_dataset("json", data_files=str(path), split="train"), encode, key="k2", desc="test")
    assert sum(calls) == 40  # another key (tokenizer, settings) tokenizes again


def test_second_identical_run_does_not_tokenize_again(ftrun_cli, tiny_manifest, tmp_path):
    first = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "one")
    second = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "two")
    assert first.code == 0 and second.code == 0
    assert "train: 48 examples, tokenized in" in first.out
    assert "train: 48 examples, loaded from the cache" in second.out
    assert "eval: 16 examples, loaded from the cache" in second.out


def test_refuses_a_non_empty_output_directory(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out)
    assert result.code == 2
    assert result.err.strip() == f"ftrun: error: --output-dir: {out} is not empty (pass --overwrite to replace it, or --resume to continue it)"
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    refused = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--overwrite")
    assert refused.code == 2 and "holds files that no ftrun run wrote (keep.txt); refusing to replace it" in refused.err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_overwrite_replaces_an_earlier_run(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    assert ftrun_cli("--manifest", tiny_manifest, "--output-dir", out).code == 0
    (out / "eval_results.json").write_text("{}")  # a file of the first run's, changed since: still the run's, replaced
    assert ftrun_cli("--manifest", tiny_manifest, "--output-dir", out).code == 2
    replaced = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--overwrite")
    assert replaced.code == 0 and (out / "eval_results.json").read_text() != "{}" and (out / "model.safetensors").exists()
    (out / "notes.txt").write_text("mine")  # a file no run wrote: --overwrite refuses rather than delete it
    refused = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out, "--overwrite")
    assert refused.code == 2 and "holds files that no ftrun run wrote (notes.txt)" in refused.err and (out / "notes.txt").read_text() == "mine"


def test_set_overrides_manifest_keys(ftrun_cli, tiny_manifest, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli(
        "--manifest",
        tiny_manifest,
        "--output-dir",
        out,
        "--set",
        "training.max_steps=2",
        "--set",
        "data.max_train_samples=16",
        "--set",
        "metrics.names=['accuracy']",
    )
    assert result.code == 0, result
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert "eval_f1" not in json.loads((out / "eval_results.json").read_text())
    assert "max_train_samples = 16" in (out / "ftrun.toml").read_text()


def test_offline_without_a_named_source_falls_back_to_the_demo(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--task", "text-classification", "--output-dir", out, "--set", "training.max_steps=2", "--set", "predict.examples=['good']")
    assert result.code == 0, result
    first = result.out.splitlines()[0]
    assert first.startswith("ftrun: the Hugging Face Hub is unreachable and model bert-base-uncased and dataset imdb are not cached")
    assert "embedded text-classification demo" in first
    assert "imdb-train.jsonl.gz" in (out / "ftrun.toml").read_text()
    # Run again (as the README's next command does after the demo): the same line says how to replace it.
    again = ftrun_cli("--task", "text-classification", "--output-dir", out, "--set", "training.max_steps=2")
    assert again.code == 2
    assert "--overwrite replaces the results of an earlier demo run" in again.out.splitlines()[0]
    assert "pass --overwrite to replace it" in again.err


@pytest.mark.parametrize(
    "named, where",
    [
        ("model.name=bert-base-cased", "--set model.name: cannot load 'bert-base-cased'"),  # the default dataset stays named
        # the model is checked first: the default bert-base-uncased is not cached either
        ("data.dataset=ag_news", "--task text-classification: model.name: cannot load 'bert-base-uncased'"),
    ],
)
def test_a_named_model_or_dataset_never_silently_changes(ftrun_cli, tmp_path, named, where):
    result = ftrun_cli("--task", "text-classification", "--output-dir", tmp_path / "out", "--set", named)
    assert result.code == 2
    assert "unreachable" not in result.out and "demo" not in result.out
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"ftrun: error: {where}")
    assert not (tmp_path / "out").exists()


def test_a_named_hub_model_that_is_not_cached_fails_in_one_line(ftrun_cli, reviews, tmp_path):
    train, evaluation = reviews
    result = ftrun_cli(
        "--task",
        "text-classification",
        "--output-dir",
        tmp_path / "out",
        "--set",
        "model.name=bert-base-cased",
        "--set",
        f"data.train_file='{train}'",
        "--set",
        f"data.eval_file='{evaluation}'",
    )
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("ftrun: error: --set model.name: cannot load 'bert-base-cased'")


def test_demo_flag_runs_the_embedded_default(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--task", "text-classification", "--demo", "--output-dir", out, "--set", "training.max_steps=3")
    assert result.code == 0, result
    assert "unreachable" not in result.out
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    assert "train: 1000 examples" in result.out
