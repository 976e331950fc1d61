"""The preference task (DPO on TRL), on a tiny GPT-2 offline: a run, its rewards everywhere metrics go, the
reference model, ``ftrun eval`` against the same reference, predict, bad rows, the schema with and without TRL, and a search over beta."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import pytest

import ftrun.plugins
from ftrun.testing import TINY_GPT2, TINY_TRAINING, write_jsonl

pytest.importorskip("trl")

DEMO = Path(ftrun.plugins.__file__).parent / "preference" / "data"
#: Small enough for seconds: one epoch of 4 steps, on sequences of at most 64 tokens.
TRAINING = {**TINY_TRAINING, "max_length": 64, "activation_checkpointing": False}
REWARDS = ("eval_rewards/accuracies", "eval_rewards/margins", "eval_rewards/chosen", "eval_rewards/rejected")


def pairs(name: str, count: int) -> list[dict]:
    """The first ``count`` IMDB pairs the demo ships, their completions shortened."""
    with gzip.open(DEMO / f"pairs-{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(count))]
    return [{**row, "chosen": " ".join(row["chosen"].split()[:8]), "rejected": " ".join(row["rejected"].split()[:8])} for row in rows]


@pytest.fixture
def manifest(ftrun_manifest, tmp_path):
    """manifest(train=rows, eval=rows, **tables) -> a preference manifest on a tiny GPT-2 built from a config (unless ``tables`` name a model)."""

    def write(train: list[dict] | None = None, eval: list[dict] | None = None, **tables):
        data = {
            "train_file": str(write_jsonl(tmp_path / "train.jsonl", train if train is not None else pairs("train", 32))),
            "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", eval if eval is not None else pairs("eval", 16))),
        }
        model = {"config": TINY_GPT2, "tokenizer_vocab_size": 300, "tokenizer_lowercase": False}
        return ftrun_manifest({"task": "preference", "model": model, "data": data, "training": TRAINING, **tables})

    return write


def rewards(metrics: dict) -> dict:
    return {key: metrics[key] for key in REWARDS}


def test_a_run_logs_the_rewards_saves_a_text_generation_model_and_ftrun_eval_gives_them_again(manifest, ftrun_cli, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", manifest(predict={"examples": ["This movie was"]}), "--output-dir", out)
    assert result.code == 0, result
    results = json.loads((out / "eval_results.json").read_text())
    assert set(REWARDS) <= set(results)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_metric"] == results["eval_rewards/accuracies"]  # metrics.best, and the saved model is that checkpoint
    assert "rewards/accuracies" in result.out and "rewards/margins" in result.out  # the summary
    assert {"eval_rewards_accuracies.png", "eval_rewards_margins.png", "loss.png"} <= {path.name for path in (out / "plots").iterdir()}
    card = (out / "README.md").read_text()
    assert "type: rewards/accuracies" in card and "pipeline_tag: text-generation" in card
    # ftrun eval recomputes the rewards against the same reference: the model the run started from, as ftrun.toml records it.
    evaluated = json.loads(ftrun_cli("eval", "--model", out, "--output-dir", tmp_path / "eval", "--json").out)
    assert rewards(evaluated) == pytest.approx(rewards(results), abs=1e-6)
    # A standard causal LM directory: the text-generation pipeline loads it, and ftrun predict continues a text with it.
    from transformers import pipeline

    generated = pipeline("text-generation", model=str(out))("This movie was", max_new_tokens=3, do_sample=False)
    assert generated[0]["generated_text"].startswith("This movie was")
    predicted = ftrun_cli("predict", "--model", out, "This movie was", "--json")
    assert predicted.code == 0, predicted
    assert set(json.loads(predicted.out.splitlines()[0])) == {"input", "generated_text"}


def test_the_reference_is_a_frozen_copy_of_the_starting_model_or_with_lora_the_base_with_adapters_off(manifest, ftrun_tiny_gpt2, tmp_path):
    import torch
    from transformers import set_seed

    from ftrun import load_run

    def trainer_of(path, *overrides):
        manager, config = load_run(manifest=path, overrides=list(overrides))
        task = manager.task("preference")
        data = manager.load_data(task, config)
        set_seed(config.training["seed"])  # as the runner seeds the head stage
        model = manager.build_head(task, config, data)
        start = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        metrics = manager.build_metrics(task, config, data)
        return manager.build_trainer(task, config, data, model, metrics, callbacks=[], output_dir=str(tmp_path / "work")), start

    trainer, start = trainer_of(manifest())
    reference = trainer.ref_model
    assert reference is not None and reference is not trainer.model
    assert not any(parameter.requires_grad for parameter in reference.parameters())
    assert all(torch.equal(tensor, start[name]) for name, tensor in reference.state_dict().items())  # the same weights, from a config too
    # precompute_ref_log_probs passes through to TRL: the reference's log-probabilities join the features.
    trainer, _ = trainer_of(manifest(), "training.precompute_ref_log_probs=true")
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(trainer.train_dataset.column_names)
    # With LoRA adapters, no second model: TRL takes the reference with the adapters off.
    trainer, _ = trainer_of(manifest(model={"name": str(ftrun_tiny_gpt2)}, peft={"r": 4, "target_modules": ["c_attn"]}))
    assert trainer.ref_model is None and hasattr(trainer.model, "peft_config")


def test_chat_rows_are_rendered_with_the_chat_template(manifest, ftrun_cli, ftrun_tiny_gpt2):
    chats = [
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in pairs("train", 24)
    ]
    # With the prompt in a column of its own, or implicit: the turns chosen and rejected begin with alike (as UltraFeedback's pairs).
    implicit = [{"chosen": row["prompt"] + row["chosen"], "rejected": row["prompt"] + row["rejected"]} for row in chats]
    for rows in (chats, implicit):
        result = ftrun_cli("check", "--manifest", manifest(train=rows[:16], eval=rows[16:]), "--json")
        assert result.code == 0, result
        report = json.loads(result.out)
        assert report["splits"]["train"]["examples"] == 16 and not report["errors"]
    from transformers import AutoTokenizer

    from ftrun import TaskData, load_run

    manager, config = load_run(manifest=manifest(model={"name": str(ftrun_tiny_gpt2)}))
    tokenizer = AutoTokenizer.from_pretrained(ftrun_tiny_gpt2)
    task = manager.task("preference")
    task.check_tokenizer(tokenizer, config, "model")
    data = TaskData(train=None, eval=None, tokenizer=tokenizer)
    explicit_ids, implicit_ids = (task.encode({key: [row[key] for row in rows[:2]] for key in rows[0]}, data, config, "train") for rows in (chats, implicit))
    assert explicit_ids == implicit_ids  # the same pairs, the same tokens
    assert tokenizer.decode(explicit_ids["prompt_ids"][0]).endswith("<|im_start|>assistant\n")  # the prompt ends where the answer starts (ChatML)


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        pytest.param(
            [{key: value for key, value in row.items() if key != "rejected"} for row in pairs("train", 16)],
            ("data.rejected_column: column 'rejected' not in the train split",),
            id="missing-column",
        ),
        pytest.param(
            [{**row, "chosen": None} if i == 5 else row for i, row in enumerate(pairs("train", 16))],
            ("data.chosen_column:", "row 6", "has no 'chosen'"),
            id="chosen-not-text",
        ),
    ],
)
def test_bad_rows_are_one_line(manifest, ftrun_fails, rows, words):
    ftrun_fails("check", "--manifest", manifest(train=rows), words=words)


def test_the_pairs_are_cut_at_training_max_length_not_data_max_length(manifest, ftrun_fails):
    line = ftrun_fails("check", "--manifest", manifest(), "--set", "data.max_length=32", words=("data.max_length",))
    assert line.endswith("TRL's collator cuts the pairs of the preference task: set training.max_length instead")
    line = ftrun_fails("check", "--manifest", manifest(), "--set", "training.max_length=512", words=("training.max_length",))
    assert "more than the model takes (128 positions)" in line


def test_training_is_trl_s_dpo_config_in_the_schema_and_without_trl_the_task_says_how_to_install_it(ftrun_cli, manifest, monkeypatch):
    schema = json.loads(ftrun_cli("schema").out)
    fields = schema["$defs"]["DPOConfig"]["properties"]
    assert fields["beta"]["default"] == 0.1 and "max_length" in fields and "loss_type" in fields and "precompute_ref_log_probs" in fields
    assert "preference" in schema["properties"]["task"]["enum"]
    monkeypatch.setitem(sys.modules, "trl", None)  # as if TRL were not installed
    without = json.loads(ftrun_cli("schema").out)
    assert "preference" not in without["properties"]["task"]["enum"] and "task:text-classification" in without["$defs"]
    assert "Task preference is left out: task preference needs TRL: pip install 'ftrun[trl]'." in without["$comment"]
    result = ftrun_cli("check", "--manifest", manifest())
    assert result.code == 2 and result.err.strip() == "ftrun: error: task preference needs TRL: pip install 'ftrun[trl]'", result


def test_tune_searches_beta_for_the_best_reward_accuracy(manifest, ftrun_cli, tmp_path):
    search = {"trials": 2, "space": {"training.beta": {"low": 0.05, "high": 0.5, "log": True}}}
    out = tmp_path / "tuned"
    result = ftrun_cli("tune", "--manifest", manifest(train=pairs("train", 16), eval=pairs("eval", 8), search=search), "--output-dir", out)
    assert result.code == 0, result
    assert "maximize rewards/accuracies over training.beta" in result.out
    with open(out / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert [row["state"] for row in trials] == ["COMPLETE"] * 2
    best = max(trials, key=lambda row: float(row["value"]))
    assert json.loads((out / "eval_results.json").read_text())["eval_rewards/accuracies"] == pytest.approx(float(best["value"]))
