"""A run loses nothing: exact resume after SIGKILL, clean stops on signals, NaN stops, safe outputs.

The interrupted runs are real ``python -m ftrun`` processes, stopped from inside at an exact
step by a plugin (so nothing depends on timing); the runs they are compared with, and the
resumed runs, run in-process.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tomli_w
import torch
from conftest import EMBEDDED, embedded_data
from safetensors.torch import load_file

from ftrun.plugins.audio_classification import TASK as AUDIO_TASK
from ftrun.stages.training import SEAL_NAME, is_sealed
from ftrun.testing import TINY_BERT, TINY_GPT2, TINY_T5, TINY_TRAINING

#: 48 examples in batches of 4: 12 steps an epoch, 24 in all; a checkpoint every 5 steps.
TRAINING = {
    "num_train_epochs": 2,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "learning_rate": 1e-3,
    "warmup_steps": 3,
    "logging_steps": 1,
    "eval_strategy": "steps",
    "eval_steps": 5,
    "save_strategy": "steps",
    "save_steps": 5,
    "save_total_limit": 2,
    "load_best_model_at_end": False,
}

#: Float tolerance between a resumed and an uninterrupted run. Both compute the same operations
#: in the same order on the CPU, so they agree exactly in practice; the margin only allows for
#: a different summation order in a threaded kernel.
TOLERANCE = 1e-6

#: A plugin that records each training batch, and stops its process at a given step.
PLUGIN = """
import hashlib, os, signal
from transformers import TrainerCallback
from ftrun import hookimpl

BATCHES = os.environ["FTRUN_TEST_BATCHES"]
STOP_AT = int(os.environ.get("FTRUN_TEST_STOP_AT", "0"))
STOP_IN_SAVE = int(os.environ.get("FTRUN_TEST_STOP_IN_SAVE", "0"))
SIGNAL = getattr(signal, os.environ.get("FTRUN_TEST_SIGNAL", "SIGKILL"))


class Stop(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == STOP_AT:
            os.kill(os.getpid(), SIGNAL)


@hookimpl
def ftrun_trainer_callbacks():
    return [Stop()]


@hookimpl(wrapper=True)
def ftrun_build_trainer():
    trainer = yield
    step, save_rng_state = trainer.training_step, trainer._save_rng_state

    def recorded_step(model, inputs, num_items_in_batch=None):
        digest = hashlib.sha1(inputs["input_ids"].numpy().tobytes()).hexdigest()
        with open(BATCHES, "a") as out:
            out.write(f"{trainer.state.global_step + 1} {digest}\\n")
        return step(model, inputs, num_items_in_batch)

    def dying_save(output_dir):  # the model and optimizer are written, the trainer state is not
        if trainer.state.global_step == STOP_IN_SAVE:
            os.kill(os.getpid(), signal.SIGKILL)
        save_rng_state(output_dir)

    trainer.training_step, trainer._save_rng_state = recorded_step, dying_save
    return trainer
"""


@pytest.fixture
def run_manifest(reviews, ftrun_manifest):
    def make(sampling: str = "group_by_length", **training) -> Path:
        train, evaluation = reviews
        return ftrun_manifest(
            {
                "task": "text-classification",
                "model": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
                "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
                "training": {**TRAINING, "train_sampling_strategy": sampling, **training},
            }
        )

    return make


@pytest.fixture
def recorder(ftrun_plugin_module, tmp_path, monkeypatch):
    """The recording plugin's module name; ``batches(name)`` reads what a run recorded under ``name``."""
    module = ftrun_plugin_module("ftrun_test_recorder", PLUGIN)
    monkeypatch.setenv("FTRUN_TEST_BATCHES", str(tmp_path / "batches-unset"))

    def use(name: str) -> Path:
        path = tmp_path / f"batches-{name}"
        monkeypatch.setenv("FTRUN_TEST_BATCHES", str(path))
        sys.modules.pop(module, None)  # the module reads its settings when imported
        return path

    return module, use


def run_process(manifest: Path, output_dir: Path, module: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m ftrun`` in its own process, with the plugin modules of this test importable."""
    environment = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "ftrun", "--manifest", str(manifest), "--output-dir", str(output_dir), "--plugin", module]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


def recorded(path: Path) -> dict[int, str]:
    """Step → fingerprint of its batch; a step recorded twice (by the killed run and the resumed one) must agree."""
    steps: dict[int, str] = {}
    for line in path.read_text().splitlines():
        step, digest = line.split()
        assert steps.setdefault(int(step), digest) == digest, f"step {step} saw another batch"
    return steps


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "model.safetensors")


def history(output_dir: Path, after: int) -> dict[int, tuple]:
    """Each step's logged loss and learning rate (and eval loss), after step ``after``."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    out: dict[int, tuple] = {}
    for entry in state["log_history"]:
        if entry["step"] > after and ("loss" in entry or "eval_loss" in entry):
            out.setdefault(entry["step"], ())
            out[entry["step"]] += tuple(entry.get(k) for k in ("loss", "learning_rate", "eval_loss") if k in entry)
    return out


def assert_same_run(resumed: Path, uninterrupted: Path, after: int) -> None:
    a, b = weights(resumed), weights(uninterrupted)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=TOLERANCE, rtol=0), name
    got, want = history(resumed, after), history(uninterrupted, after)
    assert got.keys() == want.keys() and len(got) > 0
    for step in want:  # the learning-rate schedule goes on where it stopped, and so do the losses
        assert got[step] == pytest.approx(want[step], abs=TOLERANCE), step
    got_eval = json.loads((resumed / "eval_results.json").read_text())
    want_eval = json.loads((uninterrupted / "eval_results.json").read_text())
    for key in ("eval_loss", "eval_accuracy", "eval_f1"):
        assert got_eval[key] == pytest.approx(want_eval[key], abs=TOLERANCE), key


@pytest.mark.parametrize(
    ("sampling", "stop"),
    [
        pytest.param("group_by_length", {"FTRUN_TEST_STOP_AT": "17"}, id="length-grouped-killed-mid-epoch"),
        pytest.param("random", {"FTRUN_TEST_STOP_AT": "17"}, id="random-killed-mid-epoch"),
        pytest.param("group_by_length", {"FTRUN_TEST_STOP_IN_SAVE": "20"}, id="killed-while-writing-a-checkpoint"),
    ],
)
def test_a_run_killed_and_resumed_equals_an_uninterrupted_one(ftrun_cli, run_manifest, recorder, tmp_path, sampling, stop):
    module, batches = recorder
    manifest = run_manifest(sampling)

    whole_log = batches("whole")
    whole = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "whole", "--plugin", module)
    assert whole.code == 0, whole
    whole_batches = recorded(whole_log)
    assert len(whole_batches) == 24

    out = tmp_path / "killed"
    killed = run_process(manifest, out, module, {**stop, "FTRUN_TEST_BATCHES": str(tmp_path / "batches-killed")})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "ftrun.toml").exists() and not (out / "model.safetensors").exists()
    assert is_sealed(out / "checkpoint-15")
    if "FTRUN_TEST_STOP_IN_SAVE" in stop:  # died inside the save: the model is there, the seal is not
        assert (out / "checkpoint-20" / "model.safetensors").exists() and not is_sealed(out / "checkpoint-20")

    resumed_log = batches("resumed")
    resumed = ftrun_cli("--manifest", manifest, "--output-dir", out, "--plugin", module, "--resume")
    assert resumed.code == 0, resumed
    assert f"resuming from {out / 'checkpoint-15'}" in resumed.out
    if "FTRUN_TEST_STOP_IN_SAVE" in stop:
        assert "removed checkpoint-20: it was being written when the run stopped" in resumed.out
    resumed_batches = recorded(resumed_log)
    assert sorted(resumed_batches) == list(range(16, 25))  # only the steps after the checkpoint
    assert resumed_batches == {step: whole_batches[step] for step in range(16, 25)}  # the same batches, in order
    assert_same_run(out, tmp_path / "whole", after=15)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_step_with_a_checkpoint(ftrun_cli, run_manifest, recorder, tmp_path, name):
    module, batches = recorder
    manifest = run_manifest()
    batches("in-process")
    out = tmp_path / "out"
    env = {"FTRUN_TEST_STOP_AT": "7", "FTRUN_TEST_SIGNAL": name, "FTRUN_TEST_BATCHES": str(tmp_path / "batches-stopped")}
    stopped = run_process(manifest, out, module, env)
    number = getattr(signal, name)
    assert stopped.returncode == 128 + number, stopped.stderr[-2000:]
    # The signal came at the end of step 7: step 8 ran to its end, then the run saved and stopped.
    last = stopped.stderr.strip().splitlines()[-1]
    assert last == f"ftrun: stopped: {name} at step 8: checkpoint saved in {out / 'checkpoint-8'}; run the same command with --resume to continue"
    assert "Traceback" not in stopped.stderr
    assert is_sealed(out / "checkpoint-8") and not (out / "ftrun.toml").exists()
    if name == "SIGTERM":
        return  # what follows is the same for both signals

    resumed = ftrun_cli("--manifest", manifest, "--output-dir", out, "--plugin", module, "--resume")
    assert resumed.code == 0, resumed
    whole = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "whole", "--plugin", module)
    assert whole.code == 0, whole
    assert_same_run(out, tmp_path / "whole", after=8)


def test_the_same_manifest_gives_the_same_run_twice(ftrun_cli, run_manifest, tmp_path):
    manifest = run_manifest(num_train_epochs=1)
    first = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "first")
    second = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "second")
    assert first.code == second.code == 0
    assert first.run.eval_metrics["eval_loss"] == second.run.eval_metrics["eval_loss"]
    assert first.run.eval_metrics["eval_accuracy"] == second.run.eval_metrics["eval_accuracy"]
    a, b = weights(tmp_path / "first"), weights(tmp_path / "second")
    assert all(torch.equal(a[name], b[name]) for name in a)


#: The model of each built-in task but text classification (above), run on its embedded sample (conftest's EMBEDDED).
SAME_SEED = {
    "causal-lm": {"config": TINY_GPT2, "tokenizer_vocab_size": 300, "tokenizer_lowercase": False},
    "ner": {"config": TINY_BERT, "tokenizer_vocab_size": 300, "tokenizer_lowercase": False},
    "question-answering": {"config": TINY_BERT, "tokenizer_vocab_size": 300},
    "summarization": {"config": TINY_T5, "tokenizer_vocab_size": 300},
    "translation": {"config": TINY_T5, "tokenizer_vocab_size": 300},
    "audio-classification": {"config": AUDIO_TASK.demo["model"]["config"], "freeze_feature_encoder": False},  # its demo's small wav2vec2
}


@pytest.mark.parametrize("task", sorted(SAME_SEED))
def test_every_task_gives_the_same_run_twice(ftrun_cli, ftrun_manifest, tmp_path, task):
    manifest = ftrun_manifest(
        {
            "task": task,
            "model": SAME_SEED[task],
            "data": {"max_train_samples": 32, "max_eval_samples": 8, **embedded_data(task)},
            "training": {
                **TINY_TRAINING,
                "per_device_train_batch_size": 4,
                "save_strategy": "no",
                "load_best_model_at_end": False,
                **EMBEDDED[task].get("training", {}),
            },
            "predict": {"examples": []},
        }
    )
    first = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "first")
    second = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "second")
    assert first.code == second.code == 0, (first, second)
    assert first.run.eval_metrics.keys() == second.run.eval_metrics.keys()
    for key, value in first.run.eval_metrics.items():
        if not key.endswith(("runtime", "per_second")):
            assert second.run.eval_metrics[key] == value, key
    a, b = weights(tmp_path / "first"), weights(tmp_path / "second")
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_a_nan_loss_stops_the_run_naming_the_step(ftrun_cli, run_manifest, ftrun_plugin_module, tmp_path):
    module = ftrun_plugin_module(
        "ftrun_test_nan",
        """
        import torch
        from transformers import TrainerCallback
        from ftrun import hookimpl

        class Poison(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                if state.global_step == 6:
                    with torch.no_grad():
                        model.classifier.weight.fill_(float("nan"))

        @hookimpl
        def ftrun_trainer_callbacks():
            return [Poison()]
        """,
    )
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", run_manifest(), "--output-dir", out, "--plugin", module)
    assert result.code == 1, result
    assert result.err.splitlines() == [
        f"ftrun: error: training: the loss became nan at step 7 (epoch 0.50); the last complete checkpoint is {out / 'checkpoint-5'}; "
        "lower training.learning_rate, or look for broken examples in the data"
    ]
    assert not (out / "model.safetensors").exists() and not (out / "ftrun.toml").exists()


def test_outputs_are_staged_then_moved_into_place(ftrun_cli, tiny_manifest, tmp_path):
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    out = tmp_path / "out"
    assert not (out / ".ftrun-staging").exists()
    for name in ("model.safetensors", "config.json", "ftrun.toml", "README.md", "eval_results.json", "all_results.json", "trainer_state.json"):
        assert (out / name).is_file(), name
    # Weights are safetensors only, in the model and in every checkpoint: no pickled weights to load.
    assert not list(out.rglob("pytorch_model*"))
    for checkpoint in out.glob("checkpoint-*"):
        assert (checkpoint / "model.safetensors").is_file() and is_sealed(checkpoint)


def test_a_full_disk_is_one_line(ftrun_cli, tiny_manifest, tmp_path, monkeypatch):
    import transformers.modeling_utils

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", out)
    assert result.code == 2, result
    assert result.err.splitlines() == [f"ftrun: error: cannot write to {out}: No space left on device"]


# -- what --resume refuses ---------------------------------------------------------------------


def test_resume_in_an_empty_directory_starts_from_the_beginning(ftrun_cli, run_manifest, tmp_path):
    result = ftrun_cli("--manifest", run_manifest(num_train_epochs=1), "--output-dir", tmp_path / "out", "--resume")
    assert result.code == 0, result
    assert f"no complete checkpoint in {tmp_path / 'out'}: starting from the beginning" in result.out


def test_resume_from_a_named_checkpoint_and_from_the_manifest(ftrun_cli, run_manifest, ftrun_manifest, tmp_path):
    first = ftrun_cli("--manifest", run_manifest(num_train_epochs=1), "--output-dir", tmp_path / "first")
    assert first.code == 0, first
    checkpoint = tmp_path / "first" / "checkpoint-5"
    named = ftrun_cli("--manifest", run_manifest(), "--output-dir", tmp_path / "named", "--resume", checkpoint)
    assert named.code == 0, named
    assert f"resuming from {checkpoint}" in named.out and named.run.train_metrics["epoch"] == 2.0
    # resume = true in a manifest: the second run picks up the first one's newest checkpoint.
    again = ftrun_cli("--manifest", run_manifest(), "--output-dir", tmp_path / "first", "--set", "resume=true")
    assert again.code == 0, again
    assert f"resuming from {tmp_path / 'first' / 'checkpoint-12'}" in again.out


@pytest.mark.parametrize(
    ("setup", "args", "words"),
    [
        pytest.param("none", ("--resume", "{tmp}/nope"), ("--resume:", "nope", "is not a checkpoint directory"), id="no-such-checkpoint"),
        pytest.param(
            "unsealed",
            ("--resume", "{tmp}/half/checkpoint-5"),
            ("--resume:", "checkpoint-5", "not a complete checkpoint", SEAL_NAME),
            id="half-written-checkpoint",
        ),
        pytest.param("other", ("--resume",), ("--output-dir:", "files that no ftrun run wrote (notes.txt)", "refusing to resume"), id="not-an-ftrun-folder"),
        pytest.param("other", ("--resume", "--overwrite"), ("--overwrite and --resume: choose one",), id="resume-and-overwrite"),
        pytest.param("other", (), ("--output-dir:", "is not empty", "--overwrite", "--resume"), id="not-empty"),
    ],
)
def test_what_resume_refuses(ftrun_cli, run_manifest, tmp_path, setup, args, words):
    (tmp_path / "out").mkdir()
    if setup == "other":
        (tmp_path / "out" / "notes.txt").write_text("mine", encoding="utf-8")
    if setup == "unsealed":
        (tmp_path / "half" / "checkpoint-5").mkdir(parents=True)
        (tmp_path / "half" / "checkpoint-5" / "model.safetensors").write_bytes(b"half")
    result = ftrun_cli("--manifest", run_manifest(), "--output-dir", tmp_path / "out", *(a.format(tmp=tmp_path) for a in args))
    assert result.code == 2, result
    [line] = result.err.splitlines()
    assert all(word in line for word in words), line
    assert not list((tmp_path / "out").glob("checkpoint-*"))


def spoilt_run(tmp_path: Path, finished_run: Path, setup: str) -> tuple[Path, Path, list[str]]:
    """A copy of a finished run in ``tmp_path/project/out``, made into the case ``setup``; the manifest to run, the folder, the arguments."""
    import tomllib

    project, out = tmp_path / "project", tmp_path / "project" / "out"
    shutil.copytree(finished_run, out)
    tables = tomllib.loads((finished_run.parent / "run.toml").read_text())
    manifest, args = project / "run.toml", ["--output-dir", str(out)]
    if setup == "user-file":
        (out / "notes.txt").write_text("mine")
    elif setup == "user-file-among-the-runs":
        (out / "plots" / "mine.png").write_text("mine")
    elif setup == "a-project-with-ftrun-toml":  # a project folder, with no run: the README names manifests ftrun.toml
        shutil.rmtree(out)
        out.mkdir()
        for name in ("ftrun.toml", "train.jsonl", "train.py", "src/model.py"):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text("mine")
    elif setup == "data-inside":
        tables["data"]["train_file"] = str(shutil.copy(tables["data"]["train_file"], out / "more-train.jsonl"))
    elif setup == "manifest-inside":
        manifest = out / "run.toml"
    elif setup in ("current-folder", "its-parent"):
        os.chdir(out if setup == "current-folder" else out / "plots")
        args = ["--output-dir", "." if setup == "current-folder" else ".."]
    elif setup == "marker-naming-outside":
        (out / "ftrun-run.json").write_text(json.dumps({"files": {"../victim.txt": 4}}))
    elif setup == "other-task":
        tables["task"] = "ner"
    elif setup == "other-train-file":
        tables["data"]["train_file"] = str(shutil.copy(tables["data"]["train_file"], project / "other-train.jsonl"))
    elif setup == "other-train-file-from-a-checkpoint":
        tables["data"]["train_file"] = str(shutil.copy(tables["data"]["train_file"], project / "other-train.jsonl"))
        shutil.rmtree(out)
        args = ["--output-dir", str(tmp_path / "elsewhere"), "--resume", str(finished_run / "checkpoint-2")]
    (tmp_path / "victim.txt").write_text("mine")
    manifest.write_text(tomli_w.dumps(tables))
    return manifest, out, args


@pytest.mark.parametrize(
    ("setup", "flag", "words"),
    [
        pytest.param("user-file", "--overwrite", ("files that no ftrun run wrote (notes.txt)", "refusing to replace it"), id="overwrite-user-file"),
        pytest.param("user-file", "--resume", ("files that no ftrun run wrote (notes.txt)", "refusing to resume it"), id="resume-user-file"),
        pytest.param("user-file-among-the-runs", "--overwrite", ("files that no ftrun run wrote (plots/mine.png)",), id="overwrite-user-file-in-plots"),
        pytest.param(
            "a-project-with-ftrun-toml",
            "--overwrite",
            ("files that no ftrun run wrote (ftrun.toml, src/model.py, train.jsonl and 1 more)",),
            id="overwrite-project",
        ),
        pytest.param("a-project-with-ftrun-toml", "--resume", ("files that no ftrun run wrote (ftrun.toml,", "refusing to resume it"), id="resume-project"),
        pytest.param("data-inside", "--overwrite", ("holds what this run reads (data.train_file:", "more-train.jsonl"), id="overwrite-its-own-data"),
        pytest.param("manifest-inside", "--overwrite", ("holds what this run reads (manifest:", "run.toml"), id="overwrite-its-manifest"),
        pytest.param("current-folder", "--overwrite", ("--output-dir: . is the current folder; refusing to replace it",), id="overwrite-current-folder"),
        pytest.param("its-parent", "--resume", ("--output-dir: .. is a folder that holds the current one; refusing to resume it",), id="resume-parent-folder"),
        pytest.param("marker-naming-outside", "--overwrite", ("ftrun-run.json: damaged: it names '../victim.txt'",), id="overwrite-forged-marker"),
        pytest.param("other-task", "--resume", ("--resume:", "was trained with task 'text-classification', not 'ner'"), id="resume-other-task"),
        pytest.param(
            "other-train-file", "--resume", ("--resume:", "was trained with data.train_file", "train.jsonl', not", "other-train.jsonl'"), id="resume-other-data"
        ),
        pytest.param(
            "other-train-file-from-a-checkpoint",
            None,
            ("--resume:", "checkpoint-2 was trained with data.train_file", "as model.name"),
            id="resume-checkpoint-other-data",
        ),
    ],
)
def test_what_overwrite_and_resume_refuse(ftrun_cli, finished_run, tmp_path, monkeypatch, setup, flag, words):
    """--overwrite and --resume replace or continue an ftrun run alone, and only the same run: anything else is one line, and nothing changes."""
    from ftrun.testing import files_under

    monkeypatch.chdir(tmp_path)
    manifest, out, args = spoilt_run(tmp_path, finished_run, setup)
    before = files_under(tmp_path)
    result = ftrun_cli("--manifest", manifest, *args, *([flag] if flag else []))
    assert result.code == 2, result
    [line] = result.err.splitlines()
    assert line.startswith("ftrun: error: ") and all(word in line for word in words), line
    assert files_under(tmp_path) == before


def test_overwrite_of_a_new_folder_removes_nothing(ftrun_cli, tiny_manifest, tmp_path):
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "new", "--overwrite")
    assert result.code == 0, result
    assert "removed" not in result.out, result.out


def test_check_warns_when_a_manifest_lets_repository_code_run(ftrun_cli, run_manifest, ftrun_tiny_bert):
    manifest = run_manifest()
    checked = ftrun_cli("check", "--manifest", manifest, "--set", f"model={{name='{ftrun_tiny_bert}'}}", "--set", "model.trust_remote_code=true")
    assert checked.code == 0, checked
    assert checked.err.splitlines() == [
        f"ftrun: warning: --set model.trust_remote_code is true: code from {ftrun_tiny_bert}'s repository may run on this machine"
    ]
    quiet = ftrun_cli("check", "--manifest", manifest)
    assert quiet.code == 0 and "warning" not in quiet.err


# -- one writer per output directory; --overwrite loses nothing ---------------------------------

#: Holds its run at step 1 until it is killed: the run a second one finds in its output directory.
WAIT = """
import os, time
from pathlib import Path
from transformers import TrainerCallback
from ftrun import hookimpl


class Wait(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        Path(os.environ["FTRUN_TEST_STARTED"]).write_text(str(os.getpid()))
        while True:
            time.sleep(0.1)


@hookimpl
def ftrun_trainer_callbacks():
    return [Wait()]
"""


def test_a_second_run_in_the_same_output_dir_refuses_naming_the_first(ftrun_cli, run_manifest, ftrun_plugin_module, forker, tmp_path):
    """A run holding the folder (waiting at step 1) makes a second refuse at once; killed, it leaves the folder free for --resume."""
    manifest, out, started = run_manifest(num_train_epochs=1), tmp_path / "out", tmp_path / "started"
    module = ftrun_plugin_module("ftrun_test_wait", WAIT)
    ended = []
    thread = threading.Thread(
        target=lambda: ended.append(
            forker.run("--manifest", manifest, "--output-dir", out, "--plugin", module, env={"FTRUN_TEST_STARTED": str(started)}, kill_after=300)
        )
    )
    thread.start()
    while not started.exists() and thread.is_alive():
        time.sleep(0.1)
    pid = started.read_text()
    second = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert second.code == 2, second
    [line] = second.err.splitlines()
    assert line.startswith(f"ftrun: error: --output-dir: {out} is in use by ftrun process {pid} on {socket.gethostname()}, started "), line
    assert line.endswith(": wait for it to end, or choose another --output-dir"), line
    os.kill(int(pid), signal.SIGKILL)
    thread.join()
    assert ended[0].code == -signal.SIGKILL, ended[0]
    assert (out / ".ftrun.lock").exists()  # what the killed run left: a file, whose lock the kernel let go
    resumed = ftrun_cli("--manifest", manifest, "--output-dir", out, "--resume")
    assert resumed.code == 0, resumed
    assert not (out / ".ftrun.lock").exists()


def fake_run(folder: Path, name: str) -> dict[str, str]:
    """A finished run's files (a model, a figure, a checkpoint, the manifest, its marker), each holding ``name``; their contents by path."""
    from ftrun.stages.output import RUN_SEAL
    from ftrun.stages.training import seal

    files = {"model.safetensors": name, "README.md": name, "plots/loss.png": name, "checkpoint-5/model.safetensors": name, "ftrun.toml": f"# {name}\n"}
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    seal(folder, RUN_SEAL, [folder / path for path in files if not path.startswith("checkpoint-")], run={"task": name})
    return {**files, RUN_SEAL: (folder / RUN_SEAL).read_text()}


def contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


class Killed(BaseException):
    """What a kill is to the swap: it stops between two renames."""


def test_replacing_an_earlier_run_survives_a_kill_between_any_two_renames(tmp_path, monkeypatch):
    import ftrun.stages.output_dir
    from ftrun.stages.output_dir import NEXT_NAME, replace_earlier_run

    real_replace, renames = os.replace, []
    out = tmp_path / "out"
    out.mkdir()
    # A file of the user's, put there while the new run trained: no run's, it stays as it is.
    mine = {"notes.txt": "mine", "plots-of-mine/a.png": "mine"}

    def earlier_and_mine() -> dict[str, str]:
        for path, text in mine.items():
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            (out / path).write_text(text)
        return fake_run(out, "earlier")

    earlier, new = earlier_and_mine(), fake_run(out / NEXT_NAME, "new")
    monkeypatch.setattr(ftrun.stages.output_dir.os, "replace", lambda *a: (renames.append(a), real_replace(*a)))
    replace_earlier_run(out)
    assert contents(out) == {**new, **mine} and renames
    for kill in range(len(renames)):
        shutil.rmtree(out)
        out.mkdir()
        earlier_and_mine()
        fake_run(out / NEXT_NAME, "new")

        def dying(*paths: Path, calls=iter(range(len(renames))), kill=kill) -> None:  # noqa: B008 - the kill-th rename never happens
            if next(calls) == kill:
                raise Killed
            real_replace(*paths)

        monkeypatch.setattr(ftrun.stages.output_dir.os, "replace", dying)
        with pytest.raises(Killed):
            replace_earlier_run(out)
        # Whatever the moment, the folder's marker is the earlier run's with all of its files, or there is none yet; the user's files stay.
        marker = out / "ftrun-run.json"
        if marker.exists():
            assert all((out / path).read_text() == text for path, text in earlier.items()), kill
        assert all((out / path).read_text() == text for path, text in mine.items()), kill
        monkeypatch.setattr(ftrun.stages.output_dir.os, "replace", real_replace)
        replace_earlier_run(out)  # what the next run in the folder does first
        assert contents(out) == {**new, **mine}, kill


def test_a_stopped_overwrite_run_says_how_to_continue_it():
    from ftrun.runner import Interrupted

    stopped = Interrupted(signal.SIGTERM, 8, Path("out/.ftrun-next/checkpoint-8"), replacing=True)
    assert str(stopped) == (
        "SIGTERM at step 8: checkpoint saved in out/.ftrun-next/checkpoint-8; "
        "run again with --resume in place of --overwrite (the earlier run is kept until then) to continue"
    )


def test_an_overwrite_run_killed_mid_training_leaves_the_earlier_run_whole(ftrun_cli, run_manifest, recorder, forker, tmp_path):
    module, batches = recorder
    manifest, out = run_manifest(num_train_epochs=1), tmp_path / "out"
    batches("earlier")
    assert ftrun_cli("--manifest", manifest, "--output-dir", out, "--plugin", module).code == 0
    shutil.copytree(out, tmp_path / "whole")  # the uninterrupted run, which the replacement must equal
    before = {path: (path.stat().st_mtime, path.read_bytes()) for path in out.rglob("*") if path.is_file()}

    env = {"FTRUN_TEST_STOP_AT": "7", "FTRUN_TEST_BATCHES": str(tmp_path / "batches-killed")}
    killed = forker.run("--manifest", manifest, "--output-dir", out, "--plugin", module, "--overwrite", env=env)
    assert killed.code == -signal.SIGKILL, killed
    next_run = out / ".ftrun-next"
    # Every file of the earlier run as it was; besides, only the new run's folder and the lock file the kill left.
    kept = {path: (path.stat().st_mtime, path.read_bytes()) for path in out.rglob("*") if path.is_file() and next_run not in path.parents}
    assert kept.pop(out / ".ftrun.lock")[1].startswith(b"ftrun process ") and kept == before
    assert is_sealed(next_run / "checkpoint-5") and not (next_run / "ftrun.toml").exists()

    batches("resumed")
    resumed = ftrun_cli("--manifest", manifest, "--output-dir", out, "--plugin", module, "--resume")
    assert resumed.code == 0, resumed
    assert f"resuming from {next_run / 'checkpoint-5'}" in resumed.out
    assert sorted(path.name for path in out.iterdir() if path.name.startswith(".")) == []
    assert_same_run(out, tmp_path / "whole", after=5)


# -- kill anywhere ------------------------------------------------------------------------------

#: Kills the soak survives: a few in the default run; FTRUN_SOAK_KILLS=50 for the long version.
SOAK_KILLS = int(os.environ.get("FTRUN_SOAK_KILLS", "3"))
#: Functions that write a run's files, where a kill lands besides a random moment: at their n-th call.
WRITERS = [
    ("transformers.modeling_utils", "safe_save_file"),  # weights, in a checkpoint and in the final model (left half written)
    ("torch", "save"),  # a checkpoint's optimizer, scheduler, random state and arguments (left half written)
    ("os", "replace"),  # a seal, the final outputs and the --overwrite swap, each moved into place
]


def test_a_run_killed_anywhere_ends_as_an_uninterrupted_one(run_manifest, forker, tmp_path, record_property):
    """SIGKILL at random moments and inside the writing of checkpoints and outputs, --resume each time.

    A round is one run from scratch, or an --overwrite of the last round's, killed until it
    finishes; each must end with the weights, log and metrics of an uninterrupted run, and no
    file outside its output directory changed. While an --overwrite run has not written its
    outputs, the earlier run must be whole.
    """
    import random
    from collections import Counter

    from ftrun.stages.output_dir import EARLIER_NAME, INCOMING_NAME, NEXT_NAME
    from ftrun.testing import files_under

    manifest, out = run_manifest(), tmp_path / "out"
    whole = forker.run("--manifest", manifest, "--output-dir", tmp_path / "whole")
    assert whole.code == 0, whole

    def outside() -> dict[str, float]:
        return {path: mtime for path, mtime in files_under(tmp_path).items() if not path.startswith(f"{out}{os.sep}")}

    before = outside()
    draw = random.Random(int(os.environ.get("FTRUN_SOAK_SEED", "0")))
    kills, rounds, start, where = 0, 0, time.monotonic(), Counter()
    while kills < SOAK_KILLS:
        replacing = rounds > 0 and draw.random() < 0.5
        if rounds and not replacing:
            shutil.rmtree(out)
        earlier = ((out / "ftrun.toml").read_bytes(), (out / "model.safetensors").read_bytes()) if replacing else None
        command = ["--manifest", manifest, "--output-dir", out, "--overwrite" if replacing else "--resume"]
        while True:
            if kills == SOAK_KILLS:  # enough: the round's run goes to its end
                kill = {}
            elif draw.random() < 0.5:
                kill = {"kill_after": draw.uniform(0, whole.seconds)}
            else:
                kill = {"kill_at": (*draw.choice(WRITERS), draw.randint(1, 12))}
            ended = forker.run(*command, **kill)
            if ended.code == 0:
                break
            assert ended.code == -signal.SIGKILL, (kill, ended)
            kills += 1
            where["at a random moment" if "kill_after" in kill else f"in {kill['kill_at'][1]}"] += 1
            command[-1] = "--resume"
            assert outside() == before
            swapping = (out / EARLIER_NAME).exists() or (out / INCOMING_NAME).exists() or (out / NEXT_NAME / "ftrun-run.json").exists()
            if replacing and not swapping:
                assert ((out / "ftrun.toml").read_bytes(), (out / "model.safetensors").read_bytes()) == earlier, kill
        rounds += 1
        assert_same_run(out, tmp_path / "whole", after=0)
        assert not [path.name for path in out.iterdir() if path.name.startswith(".")]
    assert outside() == before
    kinds = ", ".join(f"{count} {kind}" for kind, count in where.most_common())
    record_property("figure", f"soak: {kills} kills survived ({kinds}) in {rounds} rounds, {time.monotonic() - start:.0f} s")
