"""The multiple-choice task: pairs and features of (choices, tokens), truncation of the context only, the collator,
checks naming the key and the row, the pre-flight, a whole run whose accuracy plain transformers gives again, predict.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForMultipleChoice, AutoTokenizer

from ftrun import TaskData
from ftrun.stages.tokenizer import train_tokenizer
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

TASK_NAME = "multiple-choice"
SAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "multiple_choice" / "data"
MODEL = {"config": TINY_BERT, "tokenizer_vocab_size": 300}


def sample_rows(name: str = "squad-mc-train", limit: int = 48, context: int = 200) -> list[dict]:
    """Real 4-choice questions from the package's embedded sample, contexts shortened to ``context`` characters."""
    with gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(limit))]
    return [{**row, "context": row["context"][:context]} for row in rows]


def swag_rows(rows: list[dict]) -> list[dict]:
    """The same questions in SWAG's layout: sent1, sent2, ending0-3, label."""
    return [
        {"sent1": row["context"], "sent2": row["question"], **{f"ending{i}": choice for i, choice in enumerate(row["choices"])}, "label": row["label"]}
        for row in rows
    ]


@pytest.fixture(scope="module")
def task():
    from ftrun.api.plugin_manager import get_plugin_manager

    return get_plugin_manager().task(TASK_NAME)


@pytest.fixture(scope="module")
def tokenizer():
    texts = (text for row in sample_rows(limit=200) for text in (row["context"], row["question"], *row["choices"]))
    return train_tokenizer(texts, model_type="bert", vocab_size=600, model_max_length=512)


def encode(task, tokenizer, config, rows: list[dict], split: str = "train") -> dict[str, list]:
    batch = {key: [row[key] for row in rows] for key in rows[0]}
    return task.encode(batch, TaskData(train=None, eval=None, tokenizer=tokenizer), config, split)


def config_of(ftrun_config, **data):
    return ftrun_config({"task": TASK_NAME, "model": {"config": TINY_BERT}, "data": {"train_file": "train.jsonl", "eval_file": "eval.jsonl", **data}})


def test_each_choice_is_the_pair_context_and_question_plus_choice_and_only_the_context_is_cut(task, tokenizer, ftrun_config):
    rows = sample_rows(limit=3)
    features = encode(task, tokenizer, config_of(ftrun_config, max_length=64), rows)
    assert features["labels"] == [row["label"] for row in rows]
    for row, ids in zip(rows, features["input_ids"]):
        assert len(ids) == 4  # one sequence per choice: a feature of (choices, tokens)
        for choice, sequence in zip(row["choices"], ids):
            second = tokenizer(f"{row['question']} {choice}", add_special_tokens=False)["input_ids"]
            context = tokenizer(row["context"], add_special_tokens=False)["input_ids"]
            kept = 64 - len(second) - 3  # [CLS] context [SEP] question choice [SEP]
            assert sequence == [tokenizer.cls_token_id, *context[:kept], tokenizer.sep_token_id, *second, tokenizer.sep_token_id]


def test_swag_columns_and_a_list_column_give_the_same_features_and_the_question_may_be_left_out(task, tokenizer, ftrun_config):
    rows = sample_rows(limit=4)
    swag = config_of(ftrun_config, context_column="sent1", question_column="sent2", choices_column=[f"ending{i}" for i in range(4)])
    assert encode(task, tokenizer, swag, swag_rows(rows)) == encode(task, tokenizer, config_of(ftrun_config), rows)
    without = encode(task, tokenizer, config_of(ftrun_config, question_column=""), rows)
    first = rows[0]
    assert without["input_ids"][0][1] == tokenizer(first["context"], first["choices"][1])["input_ids"]


def test_swag_s_columns_apply_to_swag_only_and_data_of_your_own_gets_the_task_s_own(ftrun_config):
    swag = ftrun_config({"task": TASK_NAME}).data
    assert (swag.dataset, swag.dataset_config, swag.context_column, swag.question_column, swag.choices_column) == (
        "swag",
        "regular",
        "sent1",
        "sent2",
        ["ending0", "ending1", "ending2", "ending3"],
    )
    own = config_of(ftrun_config).data
    assert (own.dataset, own.context_column, own.question_column, own.choices_column, own.label_column) == (None, "context", "question", "choices", "label")
    assert (own.max_train_samples, own.eval_split) == (None, "test")  # nor the default recipe's subset and splits


def test_the_collator_pads_to_batch_choices_longest_with_or_without_labels(task, tokenizer, ftrun_config):
    config = config_of(ftrun_config)
    rows = sample_rows(limit=3)
    features = encode(task, tokenizer, config, rows)
    collate = task.data_collator(TaskData(train=None, eval=None, tokenizer=tokenizer), None, config)
    examples = [{key: values[i] for key, values in features.items()} for i in range(3)]
    batch = collate(examples)
    longest = max(len(sequence) for ids in features["input_ids"] for sequence in ids)
    assert batch["input_ids"].shape == (3, 4, longest) and batch["labels"].tolist() == [row["label"] for row in rows]
    for example, ids in enumerate(features["input_ids"]):
        for choice, sequence in enumerate(ids):
            assert batch["input_ids"][example, choice, : len(sequence)].tolist() == sequence
            assert batch["attention_mask"][example, choice].sum() == len(sequence)
    unlabelled = collate([{key: value for key, value in example.items() if key != "labels"} for example in examples])
    assert "labels" not in unlabelled and torch.equal(unlabelled["input_ids"], batch["input_ids"])


def test_a_question_and_choice_that_leave_no_room_for_the_context_is_one_line(task, tokenizer, ftrun_config):
    from ftrun import FtrunError

    row = {**sample_rows(limit=1)[0], "choices": ["a very long choice " * 10, "b", "c", "d"]}
    with pytest.raises(FtrunError, match=r"^run.toml: data.max_length: in the train split, the question and choice .* leaves no room for the context in 16"):
        encode(task, tokenizer, config_of(ftrun_config, max_length=16), [row])


@pytest.fixture
def fails_on(ftrun_fails, ftrun_manifest, tmp_path):
    """fails_on(train_rows, eval_rows=None, **data) -> the one line ftrun check says about that data."""

    def check(train: list[dict], evaluation: list[dict] | None = None, **data) -> str:
        manifest = ftrun_manifest(
            {
                "task": TASK_NAME,
                "model": MODEL,
                "data": {
                    "train_file": str(write_jsonl(tmp_path / "train.jsonl", train)),
                    "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", evaluation or sample_rows(limit=4))),
                    **data,
                },
            }
        )
        return ftrun_fails("check", "--manifest", manifest, words=())

    return check


def test_bad_data_is_one_line_naming_the_key_and_the_row(fails_on):
    rows = sample_rows(limit=4)
    assert fails_on(rows, context_column="passage") == (
        "ftrun: error: run.toml: data.context_column: column 'passage' not in the train split (columns: id, title, context, question, choices, label)"
    )
    assert fails_on(swag_rows(rows), context_column="sent1", question_column="sent2", choices_column=["ending0", "ending1", "ending9"]).startswith(
        "ftrun: error: run.toml: data.choices_column: column 'ending9' not in the train split"
    )
    label = [*rows[:2], {**rows[2], "label": 4}, rows[3]]
    assert (
        fails_on(label) == "ftrun: error: run.toml: data.label_column: row 3 of train.jsonl has the label 4: a label is the index of the right choice, 0 to 3"
    )
    text = [*rows[:1], {**rows[1], "choices": ["a", "b", 3, "d"]}, *rows[2:]]
    assert fails_on(text) == "ftrun: error: run.toml: data.choices_column: row 2 of train.jsonl: choice 2 is the number 3, not a text"
    fewer = [*rows[:3], {**rows[3], "choices": ["a", "b", "c"], "label": 0}]
    assert (
        fails_on(fewer)
        == "ftrun: error: run.toml: data.choices_column: row 4 of train.jsonl has 3 choices, not 4 (its first row's): every example needs as many"
    )
    other = [{**row, "choices": row["choices"][:3], "label": 0} for row in rows]
    assert fails_on(rows, other) == (
        "ftrun: error: run.toml: data.choices_column: row 1 of eval.jsonl has 3 choices, not 4 (the train split's): every example needs as many"
    )
    one = [{**row, "choices": ["only"], "label": 0} for row in rows]
    assert fails_on(one, one) == "ftrun: error: run.toml: data.choices_column: the train split's examples have 1 choice; multiple choice needs two or more"
    assert fails_on([{**rows[0], "choices": "a b c"}, *rows[1:]]) == (
        "ftrun: error: run.toml: data.choices_column: row 1 of train.jsonl holds a text, not a list of choices"
    )


def test_ftrun_check_says_where_the_right_answer_sits_and_that_the_context_is_cut(ftrun_cli, ftrun_manifest, tmp_path):
    rows = [
        {**row, "choices": [row["choices"][row["label"]], *(c for i, c in enumerate(row["choices"]) if i != row["label"])], "label": 0}
        for row in sample_rows(context=2000)
    ]
    manifest = ftrun_manifest(
        {
            "task": TASK_NAME,
            "model": MODEL,
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", rows)),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:8])),
                "max_length": 128,
            },
        }
    )
    report = json.loads(ftrun_cli("check", "--manifest", manifest, "--json").out)
    assert report["splits"]["train"]["labels"] == {"choice 0": 48}
    pairs = report["splits"]["train"]["lengths"]["pairs"]
    assert pairs["truncation"] == "only_first" and pairs["cut"] == {"first": 1.0} and pairs["truncated"] > 0.5
    lines = {finding["key"]: finding["line"] for finding in report["warnings"]}
    assert lines["data.label_column"] == (
        "run.toml: data.label_column: the right answer is choice 0 in 100% of the train split's examples (of 4 choices, 25% each is even): "
        "a model can learn the position instead of reading the choices; shuffle the choices"
    )
    assert lines["data.max_length"].endswith(
        "truncation cuts only the first text of a pair (only_first): the model never reads its end, and reads the other whole"
    )
    shuffled = ftrun_manifest(
        {
            "task": TASK_NAME,
            "model": MODEL,
            "data": {"train_file": str(write_jsonl(tmp_path / "ok.jsonl", sample_rows())), "eval_file": str(tmp_path / "eval.jsonl")},
        }
    )
    assert "data.label_column" not in {finding["key"] for finding in json.loads(ftrun_cli("check", "--manifest", shuffled, "--json").out)["warnings"]}


def test_a_pair_of_the_other_tasks_is_still_cut_longest_first():
    """The report's words follow the task's truncation: longest-first pairs as before, one side where only that one is cut."""
    from ftrun.stages.preflight import pair_cuts, what_is_cut

    lengths, pairs = np.array([12, 12]), [(8, 2), (2, 8)]
    assert pair_cuts(lengths, pairs, 10) == {"first": 0.5, "second": 0.5}
    assert pair_cuts(lengths, pairs, 10, "only_first") == {"first": 1.0}
    assert what_is_cut({"first": 1.0}).startswith("truncation cuts the longer text of a pair")


def read_input_error(task, value) -> str:
    from ftrun import FtrunError

    with pytest.raises(FtrunError) as error:
        task.read_input(value, "input 1")
    return str(error.value)


def test_inputs_are_a_table_or_a_tab_separated_line(task):
    assert task.read_input("The sky.\tWhat colour?\tblue\tgreen", "input 1") == {
        "context": "The sky.",
        "question": "What colour?",
        "choices": ["blue", "green"],
    }
    assert task.read_input("The sky.\t\tblue\tgreen", "input 1")["question"] == ""
    assert task.read_input({"context": "c", "choices": ["a", "b"]}, "input 1") == {"context": "c", "question": "", "choices": ["a", "b"]}
    assert read_input_error(task, "The sky.\tWhat colour?\tblue").startswith("input 1: choices must be a list of two or more texts")
    assert read_input_error(task, {"context": "c", "choices": ["a", 2]}) == "input 1: choice 1 must be a text that is not empty, got 2"
    assert (
        read_input_error(task, {"context": "c", "answers": ["a", "b"]})
        == "input 1: unknown key 'answers'; an input has context, choices and optionally question"
    )
    assert read_input_error(task, {"question": "q", "choices": ["a", "b"]}) == "input 1: context must be a text that is not empty, got nothing"


def test_a_run_reports_the_accuracy_its_saved_model_gives_in_plain_transformers_and_ftrun_predict(ftrun_cli, ftrun_manifest, tmp_path):
    train, evaluation = sample_rows(limit=32), sample_rows("squad-mc-eval", limit=12)
    manifest = ftrun_manifest(
        {
            "task": TASK_NAME,
            "model": MODEL,
            "data": {
                "train_file": str(write_jsonl(tmp_path / "train.jsonl", train)),
                "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", evaluation)),
                "max_length": 128,
            },
            "training": {**TINY_TRAINING, "learning_rate": 1e-3},
        }
    )
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    reported = json.loads((out / "eval_results.json").read_text())["eval_accuracy"]
    # The model card's recipe, by hand: each choice the pair (context, question + choice), the context cut.
    model, tokenizer = AutoModelForMultipleChoice.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    assert model.config.architectures == ["BertForMultipleChoice"]
    best = []
    for row in evaluation:
        pairs = [f"{row['question']} {choice}" for choice in row["choices"]]
        inputs = tokenizer([row["context"]] * 4, pairs, truncation="only_first", max_length=128, padding=True, return_tensors="pt")
        with torch.no_grad():
            best.append(int(model(**{key: value.unsqueeze(0) for key, value in inputs.items()}).logits.argmax()))
    assert reported == pytest.approx(np.mean([b == row["label"] for b, row in zip(best, evaluation)]))
    predicted = ftrun_cli("predict", "--model", out, "--input", write_jsonl(tmp_path / "questions.jsonl", evaluation), "--output", tmp_path / "p.jsonl")
    assert predicted.code == 0, predicted
    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [p["index"] for p in predictions] == best
    assert all(p["choice"] == row["choices"][p["index"]] and sum(p["probabilities"]) == pytest.approx(1) for p, row in zip(predictions, evaluation))
    card = (out / "README.md").read_text()
    assert "pipeline_tag: multiple-choice" in card and "AutoModelForMultipleChoice" in card and 'truncation="only_first", max_length=128' in card


def test_predict_takes_inputs_of_any_number_of_choices(task, ftrun_tiny_bert, ftrun_config):
    from transformers import AutoModelForMultipleChoice as Head

    model, tokenizer = Head.from_pretrained(ftrun_tiny_bert), AutoTokenizer.from_pretrained(ftrun_tiny_bert)
    config = ftrun_config({"task": TASK_NAME, "model": {"name": str(ftrun_tiny_bert)}, "data": {"train_file": "t.jsonl", "eval_file": "e.jsonl"}})
    inputs = [
        {"context": "The sky is blue.", "question": "What colour?", "choices": ["blue", "red", "green"]},
        {"context": "Rome is in Italy.", "question": "", "choices": ["Italy", "Spain"]},
    ]
    predictions = task.predict(model, tokenizer, inputs, config)
    assert [len(p["probabilities"]) for p in predictions] == [3, 2]
    assert all(p["choice"] == given["choices"][p["index"]] for p, given in zip(predictions, inputs))


@pytest.mark.parametrize("strategy", ["group_by_length", "random"])
def test_ftrun_check_estimates_the_padding_a_real_epoch_sees(ftrun_cli, ftrun_manifest, tmp_path, strategy):
    """Batches grouped by each example's longest choice, padded to (batch, choices, longest): the pad tokens of the
    Trainer's own train dataloader, a whole epoch of 320 questions of the demo sample, against the estimate of ``ftrun check``."""
    import ftrun

    tables = {
        "task": TASK_NAME,
        "model": {"config": {**TINY_BERT, "max_position_embeddings": 512}, "tokenizer_vocab_size": 1000},
        "data": {
            "train_file": str(SAMPLE / "squad-mc-train.jsonl.gz"),
            "eval_file": str(SAMPLE / "squad-mc-eval.jsonl.gz"),
            "max_length": 256,
            "max_train_samples": 320,
            "max_eval_samples": 8,
        },
        "training": {"per_device_train_batch_size": 16, "train_sampling_strategy": strategy},
    }
    schedule = json.loads(ftrun_cli("check", "--manifest", ftrun_manifest(tables), "--json").out)["schedule"]
    estimate = schedule["pad_tokens"] / (schedule["pad_tokens"] + schedule["real_tokens"])
    manager = ftrun.get_plugin_manager()
    task = manager.task(TASK_NAME)
    config = ftrun.testing.make_config(tables)
    data = manager.load_data(task, config)
    model = manager.build_head(task, config, data)
    trainer = manager.build_trainer(task, config, data, model, manager.build_metrics(task, config, data), callbacks=[], output_dir=str(tmp_path / "out"))
    pad = real = 0
    for batch in trainer.get_train_dataloader():
        assert batch["input_ids"].shape[1] == 4  # (batch, choices, longest)
        pad, real = pad + int((batch["attention_mask"] == 0).sum()), real + int(batch["attention_mask"].sum())
    assert real == schedule["real_tokens"]  # every choice's tokens, of all 320 examples
    assert abs(pad / (pad + real) - estimate) < 0.01, (pad / (pad + real), estimate)
    # Measured: 6.5% of the tokens are padding with grouping (estimated 6.5%), 13.6% without (estimated 13.6%).
    assert pad / (pad + real) < 0.08 if strategy == "group_by_length" else pad / (pad + real) > 0.12
