"""benchmarks/throughput.py end to end, on tiny models and small local files (no ../shared).

Only that every configuration reports every figure: the figures themselves mean nothing
on a model this small, and performance claims live in the benchmark's own runs.
"""

import gzip
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import sample_reviews

from ftrun.testing import write_jsonl

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {
    "train_samples_per_second",
    "train_tokens_per_second",
    "padding_waste",
    "train_page_faults_per_step",
    "eval_samples_per_second",
    "peak_rss_mb",
    "metric",
}


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def data_files(task: str, folder: Path) -> tuple[Path, Path]:
    """Small real samples, as fresh files (a first run must tokenize)."""
    if task == "text-classification":  # reviews of many lengths, so that padding them to one length shows
        return tuple(
            write_jsonl(folder / f"{name}.jsonl", [{**row, "text": row["text"][: 30 * (1 + i % 8)]} for i, row in enumerate(sample_reviews(name, size))])
            for name, size in (("imdb-train", 48), ("imdb-eval", 16))
        )
    sources = {
        "ner": (ROOT / "examples" / "data" / "ner-train.jsonl", ROOT / "examples" / "data" / "ner-eval.jsonl"),
        "translation": tuple(ROOT / "plugins" / "translation" / "data" / f"multi30k-{n}.jsonl.gz" for n in ("train", "eval")),
    }[task]
    return tuple(Path(shutil.copy(source, folder / source.name)) for source in sources)


@pytest.mark.parametrize("task", ["text-classification", "ner", "translation"])
def test_every_configuration_reports_every_figure(throughput, task, ftrun_tiny_bert, ftrun_tiny_t5, tmp_path):
    train, evaluation = data_files(task, tmp_path)
    output = tmp_path / "results.json"
    model = ftrun_tiny_t5 if task == "translation" else ftrun_tiny_bert
    args = ["--task", task, "--model", model, "--train-file", train, "--eval-file", evaluation, "--output", output]
    args += ["--train-samples", "32", "--eval-samples", "16", "--pad-to", "120", "--warmup-steps", "1"]
    if task == "ner":  # the example's own column names
        args += ["--set", "data.tokens_column=words", "--set", "data.tags_column=labels"]
    assert throughput.main([str(arg) for arg in args]) == 0

    results = json.loads(output.read_text())
    assert {"cpu", "cpu_bf16", "cores", "torch_threads", "gpu"} <= set(results["machine"])
    (result,) = results["tasks"]
    assert result["task"] == task
    assert list(result["configurations"]) == ["seed", "hand-tuned", "ftrun", "bare-loop"]
    for name, figures in result["configurations"].items():
        assert FIGURES <= set(figures), name
        assert figures["train_samples_per_second"] > 0 and figures["eval_samples_per_second"] > 0, name
        assert figures["timed_steps"] == 3, name  # 4 steps of 8, the first one not timed
        if task == "translation":  # generation's speed, whatever length each model generates
            gen_len = figures["eval_metrics"]["eval_gen_len"]
            assert figures["eval_generated_tokens_per_second"] == pytest.approx(gen_len * figures["eval_samples_per_second"]), name
            assert figures["train_tflops"] is None, name  # model FLOPs are counted for encoders only
        else:
            assert "eval_generated_tokens_per_second" not in figures, name
            assert figures["train_tflops"] > 0, name
        assert "mfu" not in figures, name  # no peak known for a CPU
    seed, hand = result["configurations"]["seed"], result["configurations"]["hand-tuned"]
    assert seed["padding_waste"] > hand["padding_waste"]  # padded to 120 tokens against each batch's longest
    for target in ("train_vs_seed", "train_vs_hand_tuned", "eval_vs_seed", "metric_vs_seed"):
        assert isinstance(result[target]["met"], bool)
    # The first run tokenized; ftrun's run, the second identical one, loaded it from the cache.
    assert result["first_run_cached"] is False
    assert result["configurations"]["ftrun"]["second_run_cached"] is True


def test_missing_data_is_one_clear_line(throughput, tmp_path, capsys):
    assert throughput.main(["--task", "ner", "--data", str(tmp_path / "absent"), "--output", str(tmp_path / "r.json")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"benchmark: error: --data: {tmp_path / 'absent'} not found (name a data folder with --data, or files with --train-file/--eval-file)"
    )


def test_model_built_from_a_config_with_flops_utilization(throughput, ftrun_tiny_bert, tmp_path):
    """As on a GPU: a model built from a config (with a given tokenizer), and MFU against a peak."""
    train, evaluation = data_files("text-classification", tmp_path)
    output = tmp_path / "results.json"
    config = '{"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}'
    args = ["--task", "text-classification", "--model-config", config, "--tokenizer", ftrun_tiny_bert, "--peak-tflops", "0.5"]
    args += ["--train-file", train, "--eval-file", evaluation, "--output", output, "--train-samples", "32", "--eval-samples", "16"]
    args += ["--pad-to", "120", "--warmup-steps", "1", "--configurations", "hand-tuned", "ftrun"]
    assert throughput.main([str(arg) for arg in args]) == 0

    (result,) = json.loads(output.read_text())["tasks"]
    assert result["model"] == f"built from a config: {config}"
    assert result["peak_tflops"] == 0.5
    for name, figures in result["configurations"].items():
        assert figures["mfu"] == pytest.approx(figures["train_tflops"] / 0.5), name


def test_encoder_flops_count_the_parameters_as_transformers_does(throughput, ftrun_tiny_bert):
    """6 FLOPs per parameter and token (the Trainer's floating_point_ops), plus attention's 12 x layers x hidden x length."""
    from types import SimpleNamespace

    import torch
    from transformers import AutoModelForSequenceClassification, Trainer

    model = AutoModelForSequenceClassification.from_pretrained(ftrun_tiny_bert, num_labels=2)
    flops = throughput.encoder_flops(model)
    ids = torch.ones(3, 10, dtype=torch.long)
    trainer_count = Trainer.floating_point_ops(SimpleNamespace(model=model), {"input_ids": ids})  # what it adds to total_flos
    attention = 12 * model.config.num_hidden_layers * model.config.hidden_size * 10 * 30
    assert flops(torch.tensor([10, 10, 10])) == pytest.approx(trainer_count + attention)
    # Real lengths, not the padded batch: a sequence of 4 tokens costs what 4 tokens cost.
    assert flops(torch.tensor([4])) == pytest.approx(6 * model.num_parameters(exclude_embeddings=True) * 4 + 12 * 1 * 32 * 16)


def test_model_and_model_config_together_is_one_clear_line(throughput, tmp_path, capsys):
    args = ["--task", "ner", "--model", str(tmp_path), "--model-config", '{"model_type": "bert"}', "--output", str(tmp_path / "r.json")]
    assert throughput.main(args) == 2
    assert capsys.readouterr().err.strip() == "benchmark: error: --model and --model-config: give one (pretrained weights, or a model built from a config)"


def test_the_tune_benchmark_reports_both_studies_and_the_default_run(ftrun_tiny_bert, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("tune_benchmark", ROOT / "benchmarks" / "tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = tmp_path / "imdb"
    data.mkdir()
    for name, source, size in (("train", "imdb-train", 24), ("dev", "imdb-eval", 8)):
        rows = [{"text": row["text"][:200], "label": int(row["label"] == "pos")} for row in sample_reviews(source, size)]
        with gzip.open(data / f"{name}.jsonl.gz", "wt", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    output = tmp_path / "tune.json"
    args = ["--model", str(ftrun_tiny_bert), "--data", str(data), "--trials", "2", "--train-samples", "24", "--eval-samples", "8", "--output", str(output)]
    assert module.main(args) == 0
    results = json.loads(output.read_text())["results"]
    assert set(results) == {"median", "none", "default"} and all(row["seconds"] > 0 for row in results.values())
    assert [len(results[name]["trials"]) for name in ("median", "none")] == [2, 2]
    shown = capsys.readouterr().out
    assert "tune, median pruner" in shown and "pruning / no pruning: wall time" in shown and "best found - default: accuracy" in shown


def test_the_images_benchmark_reports_every_figure_of_both_sides(tmp_path):
    """benchmarks/images.py on the image task's embedded digits, one short round (no ../shared): every figure there, and cached pixels on disk."""
    sys.path.insert(0, str(ROOT / "benchmarks"))  # its encoding runs in fresh processes, which import it by name
    try:
        import images

        data = ROOT / "plugins" / "image_classification" / "data"
        output = tmp_path / "images.json"
        args = ["--train", data / "train", "--eval", data / "eval", "--rounds", "1", "--epochs", "1", "--side", "32", "--output", output]
        assert images.main([str(arg) for arg in args]) == 0
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.modules.pop("images", None)
    results = json.loads(output.read_text())
    for side in ("script", "ftrun"):
        (run,) = results["runs"][side]
        assert 0 <= run["accuracy"] <= 1 and run["images_per_second"] > 0, side
    cached, lazy = results["encoding"]["cached"], results["encoding"]["lazy"]
    assert cached["cache_mb"] > 200 * 3 * 32 * 32 * 4 / 1e6  # every image's float32 pixels, stored
    assert lazy["cache_mb"] < cached["cache_mb"] / 10
    assert all(figures["peak_rss_mb"] > 0 and figures["epoch_seconds"] > 0 for figures in (cached, lazy))
