"""Runs in several processes: a real 2-process DDP fine-tuning on the CPU (gloo).

Launchers run as a user runs them, in a process of their own, and start two processes that
each import torch and transformers: these tests take about half a minute each on two CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import sample_reviews

from ftrun.testing import TINY_BERT, write_jsonl

#: Counts what each process loaded from the cache, and what an evaluation saw.
PROBE = """
import dataclasses, json, os
from pathlib import Path

import ftrun


@ftrun.hookimpl(wrapper=True)
def ftrun_load_data(task, config):
    data = yield
    rank = os.environ.get("RANK", "alone")
    stats = {name: stats.cached for name, stats in data.stats.items()}
    Path(os.environ["PROBE_DIR"], f"cache-{rank}.json").write_text(json.dumps(stats))
    return data


@ftrun.hookimpl(wrapper=True)
def ftrun_build_metrics(task, config, data):
    metrics = yield

    def compute(prediction):
        # How many examples the metrics saw, and a checksum of what the model predicted for them.
        seen = {"examples": len(prediction.label_ids), "logit_sum": float(prediction.predictions.sum())}
        return {**metrics.compute(prediction), **seen}

    return dataclasses.replace(metrics, compute=compute)
"""

#: Fails in the second process only, after the first has loaded the data.
FAIL_ON_RANK_1 = """
import os

import ftrun


@ftrun.hookimpl(wrapper=True)
def ftrun_load_data(task, config):
    data = yield
    if os.environ.get("RANK") == "1":
        raise ftrun.FtrunError("run.toml: data: wrong in process 1 only")
    return data
"""

#: 13 eval examples: not a multiple of 2 processes x 4 per batch, so the last batch of the
#: second process is filled up with repeated examples, which the metrics must not count.
EVAL_EXAMPLES = 13


@pytest.fixture
def distributed_manifest(tmp_path, ftrun_manifest, ftrun_plugin_module):
    def write(plugin: str) -> Path:
        train = write_jsonl(tmp_path / "train.jsonl", sample_reviews("imdb-train", 48))
        evaluation = write_jsonl(tmp_path / "eval.jsonl", sample_reviews("imdb-eval", EVAL_EXAMPLES))
        return ftrun_manifest(
            {
                "task": "text-classification",
                "plugins": [plugin],
                # No dropout: each process draws its own masks, which one process would draw otherwise.
                "model": {"config": {**TINY_BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}, "tokenizer_vocab_size": 500},
                "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
                "training": {
                    "num_train_epochs": 1,
                    "per_device_train_batch_size": 4,
                    "per_device_eval_batch_size": 4,
                    "learning_rate": 1e-3,
                    "warmup_steps": 0,
                    "logging_steps": 2,
                    # In order: each step of 2 processes x 4 takes the same 8 examples as one process's step of 8.
                    "train_sampling_strategy": "sequential",
                    # fp32, as compared to float rounding: bf16 (chosen on a CPU with bf16
                    # instructions) rounds the logits of a batch of 4 otherwise than of 8.
                    "bf16": False,
                },
            }
        )

    return write


def launch(*command, tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m COMMAND`` in a process of its own, as a user runs it; the probe plugins importable."""
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "plugin-modules"), "PROBE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *map(str, command)], env=env, capture_output=True, text=True, timeout=300)


def results(out: Path) -> dict:
    return json.loads((out / "all_results.json").read_text())


def files(out: Path) -> list[str]:
    """The files of a run, but the RNG states the Trainer saves once per process."""
    return sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file() and not path.name.startswith("rng_state"))


def test_two_processes_train_as_one(ftrun_cli, distributed_manifest, ftrun_plugin_module, tmp_path, monkeypatch):
    manifest = distributed_manifest(ftrun_plugin_module("probe", PROBE))
    ddp, single = tmp_path / "ddp", tmp_path / "single"

    torchrun = ("torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "ftrun")
    launched = launch(*torchrun, "--manifest", manifest, "--output-dir", ddp, tmp_path=tmp_path)
    assert launched.returncode == 0, launched.stderr[-3000:]
    # The first process tokenized; the second waited for it, then read its cache.
    assert json.loads((tmp_path / "cache-0.json").read_text()) == {"train": False, "eval": False}
    assert json.loads((tmp_path / "cache-1.json").read_text()) == {"train": True, "eval": True}
    assert launched.stdout.count("Final evaluation") == 1  # the other process prints nothing

    # One process with the same global batch size (8), in the same cache.
    monkeypatch.setenv("PROBE_DIR", str(tmp_path))
    alone = ftrun_cli("--manifest", manifest, "--output-dir", single, "--set", "training.per_device_train_batch_size=8")
    assert alone.code == 0, alone
    # It found everything the two processes cached: the same tokenizer and tokenized splits.
    assert json.loads((tmp_path / "cache-alone.json").read_text()) == {"train": True, "eval": True}

    # It trained: 48 examples in global batches of 8, split between the 2 processes.
    state = json.loads((ddp / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert sorted(path.name for path in ddp.glob("checkpoint-*/rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    # Every eval example exactly once, though the second process evaluated 3 repeated ones.
    assert results(ddp)["eval_examples"] == results(single)["eval_examples"] == EVAL_EXAMPLES
    # One model, and the same files as one process writes.
    assert files(ddp) == files(single)
    assert (ddp / "model.safetensors").is_file() and (ddp / "ftrun.toml").is_file()

    # The same training and the same predictions, to float rounding.
    assert results(ddp)["train_loss"] == pytest.approx(results(single)["train_loss"], rel=1e-4)
    assert results(ddp)["eval_accuracy"] == results(single)["eval_accuracy"]
    assert results(ddp)["eval_logit_sum"] == pytest.approx(results(single)["eval_logit_sum"], rel=1e-4, abs=1e-4)
    # The eval loss within 0.01: the Trainer keeps one mean loss per batch, and the last batch of
    # the second process averages its one real example with the 3 repeated ones.
    assert results(ddp)["eval_loss"] == pytest.approx(results(single)["eval_loss"], abs=0.01)


def test_a_failure_in_any_process_is_one_line(distributed_manifest, ftrun_plugin_module, tmp_path):
    manifest = distributed_manifest(ftrun_plugin_module("fail_on_rank_1", FAIL_ON_RANK_1))
    launched = launch("ftrun", "--manifest", manifest, "--nproc", 2, "--output-dir", tmp_path / "out", tmp_path=tmp_path)
    assert launched.returncode == 2, launched.stderr[-3000:]
    # Not the first process, which torchrun stopped when the second failed: the second's own error.
    assert launched.stderr.splitlines() == ["ftrun: error: run.toml: data: wrong in process 1 only"]
    assert not (tmp_path / "out").exists()


def test_processes_cannot_each_train_their_own_tokenizer(monkeypatch):
    from datasets import Dataset

    from ftrun import FtrunError
    from ftrun.stages.tokenizer import cached_tokenizer

    split = Dataset.from_list([{"text": "a film"}])  # in memory: no cache folder to share a tokenizer through
    assert cached_tokenizer(split, "key", lambda: "trained", where="run.toml: model.tokenizer") == "trained"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(FtrunError, match="run.toml: model.tokenizer: none given, .* name a tokenizer"):
        cached_tokenizer(split, "key", lambda: "trained", where="run.toml: model.tokenizer")


#: Kills the first of the processes at the end of step 3, with checkpoint-2 saved: a job pre-empted.
KILL_AT_STEP_3 = """
import os, signal

from transformers import TrainerCallback

import ftrun


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3 and os.environ.get("RANK") == "0":
            os.kill(os.getpid(), signal.SIGKILL)


@ftrun.hookimpl
def ftrun_trainer_callbacks():
    return [Kill()]
"""


def test_a_run_of_two_processes_resumes_in_one_keeping_the_batch_of_a_step(ftrun_cli, distributed_manifest, ftrun_plugin_module, forker, tmp_path):
    """2 processes over gloo, killed; --resume in 1 refuses the half-size step it would take, and with the same step goes on as one run."""
    import signal

    from ftrun.stages.training import is_sealed

    manifest = distributed_manifest(ftrun_plugin_module("kill_at_step_3", KILL_AT_STEP_3))
    steps = ["--set", 'training.save_strategy="steps"', "--set", "training.save_steps=2", "--set", "training.load_best_model_at_end=false"]
    out, checkpoint = tmp_path / "out", tmp_path / "out" / "checkpoint-2"
    killed = forker.run("--manifest", manifest, "--output-dir", out, *steps, ranks=2, env={"OMP_NUM_THREADS": "1"})
    assert killed.codes[0] == -signal.SIGKILL, killed
    assert is_sealed(checkpoint) and sorted(path.name for path in checkpoint.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]

    # One process with the same per-device batch: a step of 4 examples where the run took 8.
    refused = ftrun_cli("--manifest", manifest, "--output-dir", out, *steps, "--resume")
    assert refused.code == 2, refused
    assert refused.err.splitlines() == [
        f"ftrun: error: --resume: {checkpoint} was trained on 8 examples a step (2 processes × 4 examples × 1 accumulated), "
        "this run would take 4 (1 process × 4 examples × 1 accumulated), and would not go on where it stopped: "
        "resume with --nproc 2, or keep 8 with --set training.per_device_train_batch_size=8"
    ]
    assert is_sealed(checkpoint) and not (out / "ftrun.toml").exists()

    batch_of_8 = ["--set", "training.per_device_train_batch_size=8"]
    resumed = ftrun_cli("--manifest", manifest, "--output-dir", out, *steps, *batch_of_8, "--resume")
    assert resumed.code == 0, resumed
    said = " ".join(resumed.out.split())  # as the terminal wraps it
    assert f"resuming from {checkpoint}; trained in 2 processes, resumed in 1 process: the 8 examples of a step are kept" in said
    alone = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "alone", *steps, *batch_of_8)
    assert alone.code == 0, alone

    # The steps after the checkpoint saw the examples and the learning rate of one uninterrupted run.
    def losses(folder: Path) -> dict:
        log = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        return {entry["step"]: (entry["loss"], entry["learning_rate"]) for entry in log if "loss" in entry and entry["step"] > 2}

    assert losses(out).keys() == losses(tmp_path / "alone").keys() == {4, 6}
    for step, (loss, rate) in losses(tmp_path / "alone").items():
        assert losses(out)[step] == (pytest.approx(loss, rel=1e-4), pytest.approx(rate, rel=1e-6)), step
    assert results(out)["eval_loss"] == pytest.approx(results(tmp_path / "alone")["eval_loss"], rel=1e-4)
    assert results(out)["eval_accuracy"] == results(tmp_path / "alone")["eval_accuracy"]
