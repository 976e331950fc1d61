"""The saved model is the best checkpoint, every tensor of it, and a resumed run is the run it resumes, for every model family.

transformers 5 saves ViT, Swin, DINOv2, BEiT and the Audio Spectrogram Transformer under names
other than their modules' (core/training.py, ``restore``): these tests train one tiny model of
each family that a built-in task uses, and of those, with evaluations and checkpoints such
that the best checkpoint is not the last. No built-in task reads images or audio yet: those
families train on a task plugin of this file, on random tensors as their inputs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import embedded_data, sample_reviews
from safetensors.torch import load_file

from ftrun.stages.training import BEST_METRIC_TOLERANCE
from ftrun.testing import TINY_BERT, TINY_CORPUS, TINY_GPT2, TINY_T5, write_jsonl

#: Tasks of inputs no built-in task reads: tensors drawn from each example's seed, shifted by its label
#: so that the eval loss falls as the model learns.
PLUGIN = """
import numpy as np
from transformers import AutoModelForAudioClassification, AutoModelForImageClassification, default_data_collator

from ftrun import Metrics, Task, hookimpl


class RandomTensors(Task):
    auto_model = AutoModelForImageClassification
    input_name, shape = "pixel_values", (3, 16, 16)

    def check_data(self, splits, config):
        return ["low", "high"]

    def text_of(self, split, config):
        return split["text"]

    def encode(self, batch, data, config, split):
        labels = [seed % 2 for seed in batch["seed"]]
        inputs = [np.random.default_rng(seed).standard_normal(self.shape, dtype=np.float32) + label - 0.5 for seed, label in zip(batch["seed"], labels)]
        return {self.input_name: inputs, "labels": labels}

    def data_collator(self, data, model, config):
        return default_data_collator

    def build_metrics(self, config, data):
        return Metrics(compute=lambda outputs: {"accuracy": float((outputs.predictions.argmax(-1) == outputs.label_ids).mean())}, best="accuracy")


class RandomImages(RandomTensors):
    name = "random-images"


class RandomSpectrograms(RandomTensors):
    name = "random-spectrograms"
    auto_model = AutoModelForAudioClassification
    input_name, shape = "input_values", (32, 16)  # frames × mel bins


@hookimpl
def ftrun_register_tasks(register):
    register(RandomImages())
    register(RandomSpectrograms())
"""

VIT = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "image_size": 16, "patch_size": 8}
#: What each family trains on: its task, ``[model] config`` and ``[data]`` (besides the files each test writes).
FAMILIES = {
    "bert": ("text-classification", TINY_BERT, {"max_length": 64}),
    "gpt2": ("causal-lm", TINY_GPT2, {"block_size": 32}),
    "t5": ("translation", TINY_T5, {"source_lang": "en", "target_lang": "de", "max_source_length": 32, "max_target_length": 16}),
    "vit": ("random-images", VIT, {}),
    "swin": (
        "random-images",
        {"model_type": "swin", "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "image_size": 16, "patch_size": 4, "window_size": 2},
        {},
    ),
    "ast": (
        "random-spectrograms",
        {
            "model_type": "audio-spectrogram-transformer",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_length": 32,
            "num_mel_bins": 16,
            "frequency_stride": 8,
            "time_stride": 8,
        },
        {},
    ),
    "dinov2": (
        "random-images",
        {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "mlp_ratio": 2, "image_size": 16, "patch_size": 8},
        {},
    ),
    "beit": (
        "random-images",
        {"model_type": "beit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "image_size": 16, "patch_size": 8},
        {},
    ),
}
#: 24 examples in batches of 4, 6 steps; an evaluation and a checkpoint every 2. The best checkpoint is the one of
#: the highest eval loss, the first as the model learns, so that the best model is never the last one.
TRAINING = {
    "max_steps": 6,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "learning_rate": 3e-3,
    "warmup_steps": 0,
    "logging_steps": 1,
    "eval_strategy": "steps",
    "eval_steps": 2,
    "save_strategy": "steps",
    "save_steps": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "loss",
    "greater_is_better": True,
}


def family_param(name: str, slow: bool = False):
    return pytest.param(name, id=name, marks=pytest.mark.slow if slow else ())


#: BERT, GPT-2, T5 (the built-in tasks' families) and ViT, Swin, AST (renamed on save) by default; DINOv2 and BEiT with --slow.
MATRIX = [family_param(name) for name in ("bert", "gpt2", "t5", "vit", "swin", "ast")] + [family_param(name, slow=True) for name in ("dinov2", "beit")]


@pytest.fixture
def family_manifest(ftrun_manifest, ftrun_plugin_module, tmp_path):
    """family_manifest(family, **tables) -> the manifest of a run of ``family`` (and the plugin module it needs)."""
    module = ftrun_plugin_module("ftrun_test_random_tensors", PLUGIN)

    def make(family: str, **tables) -> Path:
        task, model, data = FAMILIES[family]
        sampling = {}
        if task in ("causal-lm", "translation"):
            files = embedded_data(task)
        else:
            texts = list(TINY_CORPUS)
            rows = [{"text": texts[i % len(texts)], "seed": i, "label": ["neg", "pos"][i % 2]} for i in range(32)]
            if task == "text-classification":
                rows = sample_reviews("imdb-train", 32)
            files = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[:24])), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[24:]))}
            if task != "text-classification":  # inputs of one size have no lengths to group batches by
                sampling = {"train_sampling_strategy": "random"}
        return ftrun_manifest(
            {
                "task": task,
                "plugins": [module],
                "model": {"config": model, "tokenizer_vocab_size": 500},
                "data": {**files, **data, "max_train_samples": 24, "max_eval_samples": 8},
                "training": {**TRAINING, **sampling},
                **tables,
            }
        )

    return make


def tensors(folder: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(folder / name)


def assert_identical(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], what: str) -> None:
    """Every tensor, bit for bit: one left as it was is named."""
    assert got.keys() == want.keys(), what
    differ = [name for name in want if not torch.equal(got[name], want[name])]
    assert not differ, f"{what}: {len(differ)} of {len(want)} tensors differ: {differ[:5]}"


def best_and_last(out: Path) -> tuple[Path, Path]:
    """The run's best checkpoint, as its trainer_state.json names it, and its last one; the final evaluation is the best's."""
    state = json.loads((out / "trainer_state.json").read_text())
    best = out / Path(state["best_model_checkpoint"]).name
    last = max(out.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert best != last, "the best checkpoint must not be the last one, or a model left as it was would pass"
    metric = json.loads((out / "eval_results.json").read_text())["eval_loss"]
    assert math.isclose(metric, state["best_metric"], rel_tol=BEST_METRIC_TOLERANCE), (metric, state["best_metric"])  # the invariant
    return best, last


@pytest.mark.parametrize("family", MATRIX)
def test_the_saved_model_is_the_best_checkpoint_and_a_resumed_run_the_uninterrupted_one(family, family_manifest, forker, tmp_path):
    # Every run in a process of its own, with the same threads: a sum split otherwise would round otherwise.
    manifest = family_manifest(family)
    whole = forker.run("--manifest", manifest, "--output-dir", tmp_path / "whole")
    assert whole.code == 0, whole
    best, last = best_and_last(tmp_path / "whole")
    assert_identical(tensors(tmp_path / "whole"), tensors(best), f"the saved model against {best.name}")

    # SIGKILL once the second checkpoint is sealed (step 4), then --resume: the last checkpoint and
    # the saved model are the uninterrupted run's, bit for bit.
    out = tmp_path / "killed"
    killed = forker.run("--manifest", manifest, "--output-dir", out, kill_at=("ftrun.stages.training", "seal", 2))
    assert killed.code == -9 and not (out / "model.safetensors").exists(), killed
    resumed = forker.run("--manifest", manifest, "--output-dir", out, "--resume")
    assert resumed.code == 0, resumed
    assert_identical(tensors(out / last.name), tensors(last), f"the resumed run's {last.name}")
    assert_identical(tensors(out), tensors(tmp_path / "whole"), "the resumed run's saved model")


@pytest.fixture
def tiny_vit(ftrun_tiny_bert, tmp_path) -> Path:
    """A "pretrained" ViT (LoRA adapts pretrained weights), with a tokenizer beside it for the data stage."""
    from transformers import AutoConfig, AutoModelForImageClassification, AutoTokenizer

    folder = tmp_path / "tiny-vit"
    AutoModelForImageClassification.from_config(AutoConfig.for_model(**VIT, vocab_size=500)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(ftrun_tiny_bert).save_pretrained(folder)
    return folder


def test_lora_the_saved_adapter_is_the_best_checkpoint_and_a_resumed_run_the_uninterrupted_one(family_manifest, tiny_vit, forker, tmp_path):
    manifest = family_manifest("vit", model={"name": str(tiny_vit)}, peft={"r": 4, "target_modules": ["q_proj", "v_proj"]})
    whole = forker.run("--manifest", manifest, "--output-dir", tmp_path / "whole")
    assert whole.code == 0, whole
    best, last = best_and_last(tmp_path / "whole")
    adapter = "adapter_model.safetensors"
    assert_identical(tensors(tmp_path / "whole" / "adapter", adapter), tensors(best, adapter), f"the saved adapter against {best.name}")

    out = tmp_path / "killed"
    killed = forker.run("--manifest", manifest, "--output-dir", out, kill_at=("ftrun.stages.training", "seal", 2))
    assert killed.code == -9, killed
    resumed = forker.run("--manifest", manifest, "--output-dir", out, "--resume")
    assert resumed.code == 0, resumed
    assert_identical(tensors(out / last.name, adapter), tensors(last, adapter), f"the resumed run's {last.name}")
    assert_identical(tensors(out), tensors(tmp_path / "whole"), "the resumed run's merged model")


def test_a_finished_run_moved_elsewhere_resumes_on_its_best_checkpoint_and_predicts(family_manifest, ftrun_cli, tmp_path):
    manifest = family_manifest("bert", predict={"examples": ["A fine film."]})
    first = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "first")
    assert first.code == 0, first
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(tmp_path / "first", moved)
    again = ftrun_cli("--manifest", manifest, "--output-dir", moved, "--resume")
    assert again.code == 0, again
    best, _ = best_and_last(moved)
    assert_identical(tensors(moved), tensors(best), f"the model of the moved run, resumed, against {best.name}")
    predicted = ftrun_cli("predict", "--model", moved, "--plugin", "ftrun_test_random_tensors", "A dull film.")
    assert predicted.code == 0 and ("neg" in predicted.out or "pos" in predicted.out), predicted


def test_after_overwrite_every_trainer_state_names_a_folder_of_the_run(family_manifest, ftrun_cli, tmp_path):
    manifest = family_manifest("vit")
    for _ in range(2):  # the second run replaces the first from .ftrun-next
        result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out", "--overwrite")
        assert result.code == 0, result
    out = tmp_path / "out"
    states = [out / "trainer_state.json", *out.glob("checkpoint-*/trainer_state.json")]
    assert len(states) == 3  # the best checkpoint and the last are kept
    for path in states:
        best = json.loads(path.read_text())["best_model_checkpoint"]
        assert best == "checkpoint-2" and (out / best).is_dir(), (path, best)


def test_a_model_that_is_not_its_best_checkpoint_is_not_published(family_manifest, ftrun_cli, ftrun_plugin_module, tmp_path):
    # As the Trainer's own reload did for ViT: the model keeps its last weights instead of the best checkpoint's.
    module = ftrun_plugin_module(
        "ftrun_test_no_reload",
        """
        from ftrun import hookimpl

        @hookimpl(wrapper=True)
        def ftrun_build_trainer():
            trainer = yield
            trainer._load_best_model = lambda: None
            return trainer
        """,
    )
    manifest = family_manifest("vit")
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out", "--plugin", module)
    assert result.code == 1, result
    line = result.err.strip()
    assert line.startswith("ftrun: error: the final evaluation of the model gives eval_loss ") and "\n" not in line, result
    assert "not the" in line and "recorded for its best checkpoint (checkpoint-2)" in line, line
    assert not (tmp_path / "out" / "model.safetensors").exists() and not (tmp_path / "out" / "ftrun.toml").exists()


def test_resuming_a_run_whose_best_checkpoint_is_gone_is_one_line(family_manifest, ftrun_cli, tmp_path):
    manifest = family_manifest("vit")
    out = tmp_path / "out"
    assert ftrun_cli("--manifest", manifest, "--output-dir", out).code == 0
    shutil.rmtree(out / "checkpoint-2")
    saved = tensors(out)
    result = ftrun_cli("--manifest", manifest, "--output-dir", out, "--resume")
    assert result.code == 2, result
    assert result.err == (
        f"ftrun: error: {out / 'checkpoint-6'}: its run's best checkpoint, checkpoint-2, is not in {out}: the run could not end on its best model "
        "(restore the folder, or resume with --set training.load_best_model_at_end=false)\n"
    )
    assert_identical(tensors(out), saved, "the saved model")
