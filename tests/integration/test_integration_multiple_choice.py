"""Fine-tuning a real pretrained encoder for multiple choice on 4-choice questions built from real SQuAD questions (needs ../shared).

Each question's choices are its answer and the answers of three other questions about the same
article, shuffled (``examples/multiple_choice/build_squad_mc.py``): 1,553 training questions and
447 validation ones, whose articles none of the training questions are about. all-MiniLM-L6-v2
(a 6-layer BERT) stands in for run_swag.py's roberta-base. The padding a real epoch sees, with
and without length grouping, is measured on the Trainer's own train dataloader and checked
against ``ftrun check``'s estimate.
"""

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import SHARED, short_and_full

import ftrun
from ftrun.testing import make_config

MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
SQUAD = SHARED / "data" / "squad"
BUILDER = Path(__file__).resolve().parents[2] / "examples" / "multiple_choice" / "build_squad_mc.py"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (MODEL.is_dir() and SQUAD.is_dir()), reason="../shared/models/all-MiniLM-L6-v2 or ../shared/data/squad is absent"),
]


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> dict[str, Path]:
    """The 4-choice questions of ../shared's SQuAD train and validation files, as the example script builds them."""
    spec = importlib.util.spec_from_file_location("build_squad_mc", BUILDER)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    folder = tmp_path_factory.mktemp("squad-mc")
    files = {}
    for name, source in (("train", "train.jsonl"), ("eval", "validation.jsonl")):
        rows = builder.build(builder.read_jsonl(SQUAD / source), seed=0)
        files[name] = folder / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return files


def tables(questions: dict[str, Path], **training) -> dict:
    return {
        "task": "multiple-choice",
        "model": {"name": str(MODEL)},
        "data": {"train_file": str(questions["train"]), "eval_file": str(questions["eval"]), "max_length": 192},
        "training": {"per_device_train_batch_size": 16, **training},
    }


def test_the_padding_of_a_real_epoch_with_and_without_grouping_is_what_ftrun_check_estimates(questions, ftrun_cli, ftrun_manifest, tmp_path, record_property):
    measured = {}
    for strategy in ("group_by_length", "random"):
        manifest = tables(questions, train_sampling_strategy=strategy)
        schedule = json.loads(ftrun_cli("check", "--manifest", ftrun_manifest(manifest), "--json").out)["schedule"]
        manager = ftrun.get_plugin_manager()
        task = manager.task("multiple-choice")
        config = make_config(manifest)
        data = manager.load_data(task, config)
        model = manager.build_head(task, config, data)
        trainer = manager.build_trainer(task, config, data, model, manager.build_metrics(task, config, data), callbacks=[], output_dir=str(tmp_path / strategy))
        pad = real = 0
        for batch in trainer.get_train_dataloader():  # the batches of one epoch, as the Trainer's loop draws them
            mask = batch["attention_mask"]
            pad, real = pad + int((mask == 0).sum()), real + int(mask.sum())
        assert real == pytest.approx(schedule["real_tokens"], rel=0.02)  # ftrun check tokenizes 1,000 of the 1,553 and scales
        measured[strategy] = (pad / (pad + real), schedule["pad_tokens"] / (schedule["pad_tokens"] + schedule["real_tokens"]))
    record_property(
        "figure",
        "padding of one epoch of 1,553 SQuAD 4-choice questions (max_length 192, batches of 16): "
        + ", ".join(f"{strategy} {real:.1%} (ftrun check: {estimate:.1%})" for strategy, (real, estimate) in measured.items()),
    )
    for real, estimate in measured.values():
        assert abs(real - estimate) < 0.01
    assert measured["group_by_length"][0] < measured["random"][0] / 2


#: The floor is under what the full size measured (accuracy 0.433 on 150 validation questions, where
#: chance is 0.25); the short form only runs the whole flow on the real model.
@short_and_full(("train", "evaluate", "floor"), (32, 32, 0.0), (240, 150, 0.35))
def test_minilm_fine_tuned_on_squad_questions(questions, ftrun_cli, ftrun_manifest, tmp_path, record_property, train, evaluate, floor):
    manifest = tables(
        questions,
        num_train_epochs=1,
        learning_rate=1e-4,
        warmup_steps=0.1,
        per_device_eval_batch_size=32,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
    )
    manifest["data"].update(max_train_samples=train, max_eval_samples=evaluate)
    manifest["predict"] = {
        "examples": [
            {
                "context": "Super Bowl 50 was an American football game to determine the champion of the National Football League (NFL) for the 2015 "
                "season. The American Football Conference (AFC) champion Denver Broncos defeated the National Football Conference (NFC) "
                "champion Carolina Panthers 24–10 to earn their third Super Bowl title.",
                "question": "Which team won Super Bowl 50?",
                "choices": ["Carolina Panthers", "Denver Broncos", "2015", "24–10"],
            }
        ]
    }
    out = tmp_path / "squad-mc-minilm"
    result = ftrun_cli("--manifest", ftrun_manifest(manifest), "--output-dir", out)
    assert result.code == 0, result
    metrics = json.loads((out / "eval_results.json").read_text())
    train_results = json.loads((out / "train_results.json").read_text())
    record_property(
        "figure",
        f"all-MiniLM-L6-v2 on {train} SQuAD 4-choice questions, 1 epoch at 1e-4, max_length 192: accuracy {metrics['eval_accuracy']:.3f} "
        f"on {evaluate} validation questions; train {train_results['train_samples_per_second']:.2f} samples/s, {train_results['train_runtime']:.0f} s",
    )
    assert metrics["eval_accuracy"] >= floor
    (prediction,) = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert prediction["choice"] == prediction["input"]["choices"][prediction["index"]]
    assert sum(prediction["probabilities"]) == pytest.approx(1)
