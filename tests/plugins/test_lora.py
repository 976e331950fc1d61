"""The built-in LoRA plugin ([peft]): adapters on every task's head, merged or alone, resumed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import EMBEDDED, embedded_data
from safetensors.torch import load_file

from ftrun.stages.training import is_sealed
from ftrun.testing import TINY_TRAINING

pytest.importorskip("peft")

#: 48 reviews in batches of 8: 6 steps an epoch; a checkpoint every 3 steps.
TRAINING = {**TINY_TRAINING, "num_train_epochs": 2, "eval_strategy": "steps", "eval_steps": 3, "save_strategy": "steps", "save_steps": 3}


@pytest.fixture
def lora_manifest(reviews, ftrun_manifest, ftrun_tiny_bert):
    def make(**peft) -> Path:
        train, evaluation = reviews
        return ftrun_manifest(
            {
                "task": "text-classification",
                "model": {"name": str(ftrun_tiny_bert)},
                "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64, "label_names": ["neg", "pos"]},
                "training": TRAINING,
                "predict": {"examples": ["A wonderful film.", "Dull and far too long."]},
                "peft": {"r": 4, **peft},
            }
        )

    return make


def predicted(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_lora_trains_the_adapters_and_the_head_and_saves_them_merged(ftrun_cli, lora_manifest, ftrun_tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, pipeline

    out = tmp_path / "out"
    result = ftrun_cli("--manifest", lora_manifest(), "--output-dir", out)
    assert result.code == 0, result
    line = next(line for line in result.out.splitlines() if line.startswith("lora: trained "))
    assert "rank 4 on query, value, whole classifier; merged into the saved model (adapter in adapter/)" in line
    # Checkpoints hold the adapter (with the classifier) and the optimizer state, not the model.
    checkpoint = out / "checkpoint-12"
    assert is_sealed(checkpoint) and (checkpoint / "adapter_model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert not (checkpoint / "model.safetensors").exists()
    adapter = load_file(checkpoint / "adapter_model.safetensors")
    assert any("lora_A" in name for name in adapter) and any("classifier" in name for name in adapter)
    assert not any("embeddings" in name for name in adapter)
    # The output: a standard model with the adapters merged in, loadable as any other, and the adapter beside it.
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "adapter" / "adapter_model.safetensors").is_file()
    merged = load_file(out / "model.safetensors")
    assert not any("lora" in name for name in merged)
    base = load_file(ftrun_tiny_bert / "model.safetensors")
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(merged[query], base[query.removeprefix("bert.")])  # the adapters, merged in
    key = "bert.encoder.layer.0.intermediate.dense.weight"
    assert torch.equal(merged[key], base[key.removeprefix("bert.")])  # not adapted: as it was
    model = AutoModelForSequenceClassification.from_pretrained(out)
    labels = [row["label"] for row in pipeline("text-classification", model=model, tokenizer=str(out))(["A wonderful film.", "Dull and far too long."])]
    assert labels == [row["label"] for row in predicted(out)]
    card = (out / "README.md").read_text()
    assert "- peft" in card.split("---")[1] and "## LoRA\n\nTrained with lora adapters of rank 4" in card
    predict = ftrun_cli("predict", "--model", out, "A wonderful film.")
    assert predict.code == 0 and predict.out.split("\t")[0].startswith(predicted(out)[0]["label"]), predict


def test_merge_false_saves_the_adapter_alone_and_predict_loads_it_on_its_base(ftrun_cli, lora_manifest, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", lora_manifest(merge=False), "--output-dir", out)
    assert result.code == 0, result
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    predict = ftrun_cli("predict", "--model", out, "--json", "A wonderful film.", "Dull and far too long.")
    assert predict.code == 0, predict
    assert [json.loads(line)["label"] for line in predict.out.splitlines()] == [row["label"] for row in predicted(out)]


#: A plugin that sends the run a SIGINT at the end of step 4: it saves a checkpoint after step 5 and stops.
INTERRUPT = """
import os, signal
from transformers import TrainerCallback
from ftrun import hookimpl

class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(os.environ.get("FTRUN_TEST_INTERRUPT_AT", "0")):
            os.kill(os.getpid(), signal.SIGINT)

@hookimpl
def ftrun_trainer_callbacks():
    return [Interrupt()]
"""


def test_an_adapter_run_resumes_exactly(ftrun_cli, ftrun_plugin_module, lora_manifest, tmp_path, monkeypatch):
    manifest = lora_manifest()
    module = ftrun_plugin_module("ftrun_test_interrupt", INTERRUPT)
    whole = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "whole", "--plugin", module)
    assert whole.code == 0, whole
    out = tmp_path / "stopped"
    monkeypatch.setenv("FTRUN_TEST_INTERRUPT_AT", "4")
    stopped = ftrun_cli("--manifest", manifest, "--output-dir", out, "--plugin", module)
    assert stopped.code == 130 and (out / "checkpoint-5" / "adapter_model.safetensors").is_file(), stopped
    monkeypatch.setenv("FTRUN_TEST_INTERRUPT_AT", "0")
    resumed = ftrun_cli("--manifest", manifest, "--output-dir", out, "--plugin", module, "--resume")
    assert resumed.code == 0 and f"resuming from {out / 'checkpoint-5'}" in resumed.out, resumed
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name
    assert json.loads((out / "eval_results.json").read_text())["eval_loss"] == pytest.approx(
        json.loads((tmp_path / "whole" / "eval_results.json").read_text())["eval_loss"], abs=1e-6
    )


#: Each built-in task but text classification (above), on its embedded sample (conftest's EMBEDDED):
#: the tiny pretrained model, the examples taken, and the output layer LoRA trains whole.
TASKS = {
    "causal-lm": ("gpt2", {"max_train_samples": 64, "max_eval_samples": 16}, "nothing else"),
    "ner": ("bert", {}, "classifier"),
    "question-answering": ("bert", {"max_eval_samples": 4}, "qa_outputs"),
    "summarization": ("t5", {"max_train_samples": 16, "max_eval_samples": 4}, "nothing else"),
    "translation": ("t5", {"max_train_samples": 16, "max_eval_samples": 4}, "nothing else"),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_lora_works_for_every_built_in_task(ftrun_cli, ftrun_manifest, ftrun_tiny_bert, ftrun_tiny_t5, ftrun_tiny_gpt2, tmp_path, task):
    family, samples, head = TASKS[task]
    models = {"bert": ftrun_tiny_bert, "t5": ftrun_tiny_t5, "gpt2": ftrun_tiny_gpt2}
    manifest = ftrun_manifest(
        {
            "task": task,
            "model": {"name": str(models[family])},
            "data": {**embedded_data(task), **samples},
            "training": {**TINY_TRAINING, "save_strategy": "no", "load_best_model_at_end": False, **EMBEDDED[task].get("training", {})},
            "peft": {"r": 4},
        }
    )
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert f"whole {head}; merged into the saved model" in result.out
    assert (out / "model.safetensors").is_file() and (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not any("lora" in name for name in load_file(out / "model.safetensors"))


def test_what_lora_refuses(fails, ftrun_manifest, lora_manifest, tiny_manifest, monkeypatch):
    import ftrun.plugins.lora

    assert fails("check", "--manifest", tiny_manifest, "--set", "peft.r=4", words=()) == (
        "ftrun: error: run.toml: model.config: LoRA adapts pretrained weights, and a model built from a config has none: name a pretrained model (model.name)"
    )
    assert fails("check", "--manifest", lora_manifest(alhpa=4), words=()) == "ftrun: error: run.toml: peft.alhpa: unknown key (did you mean alpha?)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fails("check", "--manifest", lora_manifest(method="qlora"), words=()) == (
        'ftrun: error: run.toml: peft.method: qlora loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU, and this machine has none: use method = "lora"'
    )
    line = fails("--manifest", lora_manifest(target_modules=["querry"]), words=())
    assert (
        line == "ftrun: error: run.toml: peft.target_modules: ['querry'] names no layer of the model; its linear layers: classifier, dense, key, query, value"
    )
    assert ftrun.plugins.lora.PeftTable.__doc__.startswith("[peft]:")


def test_the_learning_rate_is_checked_against_loras_range_not_full_fine_tunings(ftrun_cli, lora_manifest):
    manifest = lora_manifest()
    result = ftrun_cli("check", "--manifest", manifest, "--set", "training.learning_rate=2e-3")
    assert result.code == 0 and "learning_rate" not in result.out, result  # 2e-3 is far above full fine-tuning's range, not LoRA's
    result = ftrun_cli("check", "--manifest", manifest, "--set", "training.learning_rate=1e-6")
    assert "warning: --set training.learning_rate: 1e-06 is far below the usual 5e-05 to 0.003 for LoRA adapters" in result.out, result
