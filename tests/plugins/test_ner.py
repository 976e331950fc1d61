"""The NER task: sub-word alignment, tag names, the CoNLL reader, its checks, metric, predict, runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from transformers import EvalPrediction

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.cli import main
from ftrun.manifest.config import build_config, read_manifest
from ftrun.plugins.ner.conll import read_conll, sentences
from ftrun.plugins.ner.metrics import entity_metrics
from ftrun.plugins.ner.tags import IGNORED, align_labels, continuation_ids
from ftrun.stages.data import load_data
from ftrun.stages.head import build_head
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SENTENCES = [
    {"tokens": ["Angela", "Merkel", "visited", "Paris", "."], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]},
    {
        "tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        "ner_tags": ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    },
    {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]},
    {"tokens": ["BRUSSELS", "1996-08-22"], "ner_tags": ["B-LOC", "O"]},
]
TAGS = ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER", "O"]  # the tags of SENTENCES, sorted


@pytest.fixture(scope="module")
def task():
    return get_plugin_manager().task("ner")


def config_for(task, tmp_path: Path, data: dict):
    """A tiny BERT whose tokenizer, trained on a few sentences with 100 entries, splits most words."""
    model = {"config": TINY_BERT, "tokenizer_vocab_size": 100, "tokenizer_lowercase": False}
    return build_config(task, {"task": "ner", "model": model, "data": data}, source="test.toml", base_dir=tmp_path)


def files(tmp_path: Path, train: list[dict], evaluation: list[dict] | None = None) -> dict:
    return {
        "train_file": str(write_jsonl(tmp_path / "train.jsonl", train)),
        "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", train if evaluation is None else evaluation)),
    }


def word_ids(data, tokens: list[str]) -> list[int | None]:
    return data.tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=None).word_ids()


# -- sub-word alignment ------------------------------------------------------------------------


def test_first_sub_token_of_each_word_gets_its_tag_the_rest_minus_100():
    #          [CLS]  Angela  Mer  ##kel  visited  [SEP]
    ids = [None, 0, 1, 1, 2, None]
    assert align_labels(ids, [3, 4, 5]) == [IGNORED, 3, 4, IGNORED, 5, IGNORED]


def test_label_all_tokens_continues_a_b_tag_as_i():
    labels = ["B-LOC", "B-PER", "I-PER", "O"]
    assert continuation_ids(labels) == [0, 2, 2, 3]  # B-LOC has no I-LOC here: it continues as itself
    assert align_labels([None, 0, 0, 1, 1, None], [1, 3], continuation_ids(labels)) == [IGNORED, 1, 2, 3, 3, IGNORED]


def test_words_split_into_sub_tokens_are_labelled_once(task, tmp_path):
    data = load_data(task, config_for(task, tmp_path, files(tmp_path, SENTENCES)))
    assert data.labels == TAGS
    for row, encoded in zip(SENTENCES, data.train):
        ids, labels = encoded["input_ids"], encoded["labels"]
        assert (ids[0], ids[-1]) == (data.tokenizer.cls_token_id, data.tokenizer.sep_token_id)
        assert labels[0] == labels[-1] == IGNORED
        # exactly one labelled sub-token per word, in order, carrying the word's tag
        assert [data.labels[label] for label in labels if label != IGNORED] == row["ner_tags"]
        words = word_ids(data, row["tokens"])
        firsts = [i for i, word in enumerate(words) if word is not None and word != words[i - 1]]
        assert [i for i, label in enumerate(labels) if label != IGNORED] == firsts
    # the vocabulary is small enough that words do split, so the test means something
    assert any(len(encoded["input_ids"]) > len(row["tokens"]) + 2 for row, encoded in zip(SENTENCES, data.train))


def test_label_all_tokens_labels_every_sub_token(task, tmp_path):
    config = config_for(task, tmp_path, {**files(tmp_path, SENTENCES), "label_all_tokens": True})
    data = load_data(task, config)
    encoded = data.train[0]  # Angela Merkel visited Paris .
    words = word_ids(data, SENTENCES[0]["tokens"])
    tags = [data.labels[label] if label != IGNORED else None for label in encoded["labels"]]
    assert tags[0] is None and tags[-1] is None  # [CLS], [SEP]
    angela = [tag for tag, word in zip(tags, words) if word == 0]
    assert len(angela) > 1 and angela == ["B-PER"] + ["I-PER"] * (len(angela) - 1)
    assert all(tag == "I-PER" for tag, word in zip(tags, words) if word == 1)


def test_truncation_to_max_length(task, tmp_path):
    data = load_data(task, config_for(task, tmp_path, {**files(tmp_path, SENTENCES), "max_length": 8}))
    assert max(len(ids) for ids in data.train["input_ids"]) == 8
    cut = data.train[1]  # "EU rejects German call to boycott British lamb .": nine words, more than 8 sub-tokens
    assert cut["input_ids"][-1] == data.tokenizer.sep_token_id and cut["labels"][-1] == IGNORED
    kept = [data.labels[label] for label in cut["labels"] if label != IGNORED]
    assert 0 < len(kept) < 9 and kept == SENTENCES[1]["ner_tags"][: len(kept)]  # the words that fit keep their tags


def test_collator_pads_labels_with_minus_100(task, tmp_path):
    config = config_for(task, tmp_path, files(tmp_path, SENTENCES))
    data = load_data(task, config)
    batch = task.data_collator(data, None, config)([data.train[0], data.train[2]])
    assert batch["input_ids"].shape == batch["labels"].shape
    padded = batch["attention_mask"] == 0
    assert padded.any() and (batch["labels"][padded] == IGNORED).all()


# -- tag names -----------------------------------------------------------------------------------


def test_string_tags_keep_their_names(task, tmp_path):
    config = config_for(task, tmp_path, files(tmp_path, SENTENCES))
    data = load_data(task, config)
    model = build_head(task, config, data)
    assert model.config.id2label == dict(enumerate(TAGS))
    assert model.config.label2id == {tag: i for i, tag in enumerate(TAGS)}


def test_classlabel_tags_take_the_dataset_names(task, tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # CoNLL-2003's order
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    rows = {"tokens": [row["tokens"] for row in SENTENCES], "ner_tags": [[names.index(tag) for tag in row["ner_tags"]] for row in SENTENCES]}
    split = Dataset.from_dict(rows, features=features)
    DatasetDict({"train": split, "validation": split}).save_to_disk(tmp_path / "saved")
    data = load_data(task, config_for(task, tmp_path, {"dataset": str(tmp_path / "saved"), "eval_split": "validation"}))
    assert data.labels == names  # every name of the feature, in its order, used or not
    assert [data.labels[label] for label in data.train[0]["labels"] if label != IGNORED] == SENTENCES[0]["ner_tags"]


def test_integer_tags_named_by_label_names(task, tmp_path):
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    rows = [{"tokens": ["Angela", "Merkel", "in", "Paris"], "ner_tags": [1, 2, 0, 3]}]
    data = load_data(task, config_for(task, tmp_path, {**files(tmp_path, rows), "label_names": names}))
    assert data.labels == names
    assert [label for label in data.train[0]["labels"] if label != IGNORED] == [1, 2, 0, 3]


# -- the CoNLL text format -------------------------------------------------------------------------


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC


Peter\tNNP\tB-NP\tB-PER
Blackburn\tNNP\tI-NP\tI-PER

-DOCSTART- -X- -X- O

BRUSSELS B-LOC
1996-08-22 O"""


def test_conll_sentences_skip_docstart_and_take_the_last_column():
    assert list(sentences(CONLL.splitlines())) == [
        {"tokens": ["EU", "rejects", "German"], "ner_tags": ["B-ORG", "O", "B-MISC"]},
        {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]},
        {"tokens": ["BRUSSELS", "1996-08-22"], "ner_tags": ["B-LOC", "O"]},  # no blank line at the end
    ]


def test_conll_line_without_a_tag_names_its_line():
    with pytest.raises(ValueError, match=r"line 3: expected a token and its tag .* got 'rejects'"):
        list(sentences(["EU B-ORG", "", "rejects"]))


def test_conll_file_is_a_cached_split(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL, encoding="utf-8")
    first, second = read_conll(path), read_conll(path)
    assert first.column_names == ["tokens", "ner_tags"] and len(first) == 3
    assert first.cache_files and first._fingerprint == second._fingerprint
    path.write_text(CONLL.replace("German", "French"), encoding="utf-8")
    changed = read_conll(path)
    assert changed._fingerprint != first._fingerprint and changed[0]["tokens"][2] == "French"


@pytest.mark.parametrize("suffix", [".conll", ".iob", ".bio", ".txt"])
def test_conll_files_load_as_splits(task, tmp_path, suffix):
    (tmp_path / f"train{suffix}").write_text(CONLL, encoding="utf-8")
    (tmp_path / f"eval{suffix}").write_text(CONLL, encoding="utf-8")
    config = config_for(task, tmp_path, {"train_file": f"train{suffix}", "eval_file": f"eval{suffix}"})
    data = load_data(task, config)
    assert data.labels == TAGS and len(data.train) == 3
    again = load_data(task, config)
    assert again.stats["train"].cached  # Arrow-backed: tokenized once


# -- every check, through the command line ---------------------------------------------------------


@pytest.fixture
def tables() -> dict:
    """The tables of a good NER manifest; a case spoils its data before writing it."""
    return {
        "task": "ner",
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 100},
        "data": {},
        "training": dict(TINY_TRAINING),
    }


def with_tags(tags: list[str], tokens: list[str] | None = None) -> dict:
    return {"tokens": tokens or [f"w{i}" for i in range(len(tags))], "ner_tags": tags}


GOOD = [with_tags(["B-PER", "I-PER", "O"]), with_tags(["B-LOC", "O"])]


@pytest.mark.parametrize(
    ("train", "evaluation", "data", "words"),
    [
        pytest.param(
            GOOD + [with_tags(["O", "B_PER"])],
            GOOD,
            {},
            ("run.toml: data.tags_column:", "sentence 3 of train.jsonl ('w0 w1')", "tag 'B_PER'", "not IOB1/IOB2/IOBES"),
            id="invalid-tag",
        ),
        pytest.param(
            GOOD,
            [with_tags(["PER", "O"], ["Peter", "said"])],
            {},
            ("run.toml: data.tags_column:", "sentence 1 of eval.jsonl ('Peter said')", "tag 'PER'"),
            id="invalid-eval-tag",
        ),
        pytest.param(
            GOOD,
            GOOD + [with_tags(["B-DATE", "O"])],
            {},
            ("run.toml: data.tags_column:", "eval tags missing from the train split: 'B-DATE'"),
            id="unseen-eval-tag",
        ),
        pytest.param(
            GOOD + [with_tags(["O", "O"], ["a", "b", "c"])],
            GOOD,
            {},
            ("run.toml: data.tags_column:", "sentence 3 of train.jsonl ('a b c') has 3 tokens but 2 tags"),
            id="length-mismatch",
        ),
        pytest.param(
            GOOD,
            GOOD,
            {"tokens_column": "words"},
            ("run.toml: data.tokens_column:", "column 'words' not in the train split", "columns: tokens, ner_tags"),
            id="missing-tokens-column",
        ),
        pytest.param(
            GOOD,
            GOOD,
            {"tags_column": "labels"},
            ("run.toml: data.tags_column:", "column 'labels' not in the train split", "columns: tokens, ner_tags"),
            id="missing-tags-column",
        ),
        pytest.param(
            [{"tokens": ["a", "b"], "ner_tags": [1, 0]}],
            [{"tokens": ["a"], "ner_tags": [0]}],
            {},
            ("run.toml: data.tags_column:", "integers without names", "label_names"),
            id="integers-without-names",
        ),
        pytest.param(
            [{"tokens": ["a", "b"], "ner_tags": [1, 5]}],
            [{"tokens": ["a"], "ner_tags": [0]}],
            {"label_names": ["O", "B-PER"]},
            ("run.toml: data.tags_column:", "label 5, outside the 2 of label_names"),
            id="integer-out-of-range",
        ),
        pytest.param(
            [{"tokens": "Angela Merkel", "ner_tags": ["B-PER", "I-PER"]}],
            GOOD,
            {},
            ("run.toml: data.tokens_column:", "column 'tokens' holds string, not a list of words"),
            id="text-not-words",
        ),
    ],
)
def test_bad_data_fails_before_training(fails, tables, ftrun_manifest, tmp_path, train, evaluation, data, words):
    tables["data"] = {**files(tmp_path, train, evaluation), **data}
    manifest = ftrun_manifest(tables)
    ran = fails("--manifest", manifest, "--output-dir", tmp_path / "out", words=words)
    assert fails("check", "--manifest", manifest, words=words) == ran


def test_conll_file_with_a_bad_line(fails, tables, ftrun_manifest, tmp_path):
    (tmp_path / "train.conll").write_text("EU B-ORG\nrejects\n", encoding="utf-8")
    (tmp_path / "eval.conll").write_text(CONLL, encoding="utf-8")
    tables["data"] = {"train_file": "train.conll", "eval_file": "eval.conll"}
    words = ("run.toml: data.train_file: train.conll: cannot load data: line 2: expected a token and its tag",)
    fails("--manifest", ftrun_manifest(tables), "--output-dir", tmp_path / "out", words=words)
    fails("check", "--manifest", ftrun_manifest(tables), words=words)


def test_slow_tokenizer_is_refused(fails, tables, ftrun_manifest, tmp_path):
    from transformers import ByT5Tokenizer

    ByT5Tokenizer().save_pretrained(tmp_path / "slow")
    tables["model"]["tokenizer"] = "./slow"
    tables["data"] = files(tmp_path, GOOD)
    fails(
        "--manifest",
        ftrun_manifest(tables),
        "--output-dir",
        tmp_path / "out",
        words=("run.toml: model.tokenizer:", "ByT5Tokenizer is a slow (Python) tokenizer", "word_ids"),
    )


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ({"names": ["f1", "bleu"]}, ("run.toml: metrics.names:", "'bleu' is not a ner metric", "precision, recall, f1, accuracy")),
        ({"best": "PER_accuracy"}, ("run.toml: metrics.best:", "'PER_accuracy' is not among the metrics", "PER_f1")),
    ],
    ids=["unknown-metric", "unknown-best"],
)
def test_bad_metrics_fail_before_training(fails, tables, ftrun_manifest, tmp_path, metrics, words):
    tables["data"] = files(tmp_path, GOOD)
    tables["metrics"] = metrics
    fails("--manifest", ftrun_manifest(tables), "--output-dir", tmp_path / "out", words=words)


# -- the metric --------------------------------------------------------------------------------------


def logits(ids: list[int], size: int) -> np.ndarray:
    return np.eye(size)[ids]


def test_entity_metrics_by_hand():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    O, BP, IP, BL, IL = range(5)
    # [CLS] Angela Merkel visited Paris [SEP]   /   [CLS] New York [SEP] [PAD] [PAD]
    gold = np.array([[IGNORED, BP, IP, O, BL, IGNORED], [IGNORED, BL, IL, IGNORED, IGNORED, IGNORED]])
    # "Merkel" is missed, so the PER entity is wrong as a whole; ignored positions predict nonsense
    guess = np.array([[BP, BP, O, O, BL, IP], [IP, BL, IL, BP, BP, BP]])
    scores = entity_metrics(["precision", "recall", "f1", "accuracy"], labels)(EvalPrediction(predictions=logits(guess, len(labels)), label_ids=gold))
    # gold entities: PER Angela Merkel, LOC Paris, LOC New York; predicted: PER Angela, LOC Paris, LOC New York
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(5 / 6)  # of the six labelled words, Merkel is wrong
    assert (scores["PER_precision"], scores["PER_recall"], scores["PER_f1"]) == (0.0, 0.0, 0.0)
    assert (scores["LOC_precision"], scores["LOC_recall"], scores["LOC_f1"]) == (1.0, 1.0, 1.0)
    assert scores["MISC_f1"] == 0.0  # a type of the tag set the eval split lacks still gets its keys
    assert "MISC_accuracy" not in scores


def test_iobes_tags_are_evaluated_strictly():
    labels = ["O", "S-PER", "B-LOC", "I-LOC", "E-LOC"]
    gold = np.array([[1, 0, 2, 4]])  # S-PER O B-LOC E-LOC
    guess = np.array([[1, 0, 2, 3]])  # S-PER O B-LOC I-LOC: the LOC entity never ends
    scores = entity_metrics(["precision", "recall", "f1"], labels)(EvalPrediction(predictions=logits(guess, 5), label_ids=gold))
    assert (scores["precision"], scores["recall"]) == (1.0, 0.5)
    assert scores["f1"] == pytest.approx(2 / 3)


# -- whole runs, predict and the saved model ---------------------------------------------------------


def test_format_prediction(task):
    entities = [{"type": "PER", "text": "Angela Merkel", "score": 0.987, "start": 0, "end": 13}]
    assert task.format_prediction({"entities": entities}) == "PER 'Angela Merkel' (0.99)"
    assert task.format_prediction({"entities": []}) == "no entities"


PEOPLE = [("Angela", "Merkel"), ("Peter", "Blackburn"), ("John", "Smith"), ("Mary", "Jones")]
PLACES = ["Paris", "Berlin", "London", "Madrid"]


def learnable_sentences() -> list[dict]:
    """Sentences a tiny model learns in seconds: one pattern, names and places swapped around."""
    rows = []
    for i in range(64):
        first, last = PEOPLE[i % 4]
        rows.append({"tokens": [first, last, "visited", PLACES[(i // 4) % 4], "."], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]})
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny NER model trained through the command line on sentences it can learn."""
    folder = tmp_path_factory.mktemp("ner-run")
    data = files(folder, learnable_sentences(), learnable_sentences()[:16])
    manifest = folder / "run.toml"
    manifest.write_text(
        tomli_w.dumps(
            {
                "task": "ner",
                "model": {"config": TINY_BERT, "tokenizer_vocab_size": 100, "tokenizer_lowercase": False},
                "data": data,
                "training": {**TINY_TRAINING, "num_train_epochs": 8},
                "predict": {"examples": ["Angela Merkel visited Paris."]},
            }
        ),
        encoding="utf-8",
    )
    assert main(["--manifest", str(manifest), "--output-dir", str(folder / "out")]) == 0
    return folder / "out"


def test_a_run_writes_a_token_classification_model(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["id2label"] == {"0": "B-LOC", "1": "B-PER", "2": "I-PER", "3": "O"}
    results = json.loads((trained / "eval_results.json").read_text())
    assert results["eval_f1"] == 1.0 and "eval_PER_f1" in results and "eval_LOC_recall" in results
    assert "pipeline_tag: token-classification" in (trained / "README.md").read_text()
    (prediction,) = [json.loads(line) for line in (trained / "predictions.jsonl").read_text().splitlines()]
    assert [(e["type"], e["text"]) for e in prediction["entities"]] == [("PER", "Angela Merkel"), ("LOC", "Paris")]


def test_predict_groups_sub_tokens_into_entity_spans(ftrun_cli, trained):
    text = "Peter Blackburn visited London."
    result = ftrun_cli("predict", "--model", trained, text)
    assert result.code == 0, result
    line, echoed = result.out.strip().split("\t")
    assert echoed == text
    assert re.fullmatch(r"PER 'Peter Blackburn' \([01]\.\d\d\), LOC 'London' \([01]\.\d\d\)", line), line
    record = json.loads(ftrun_cli("predict", "--model", trained, "--json", text).out)
    assert record["input"] == text
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in record["entities"]] == [("PER", "Peter Blackburn", 0, 15), ("LOC", "London", 24, 30)]
    assert all(0 < e["score"] <= 1 for e in record["entities"])


def test_the_saved_model_works_in_a_transformers_pipeline(trained):
    from transformers import pipeline

    tagger = pipeline("token-classification", model=str(trained), aggregation_strategy="simple")
    found = tagger("John Smith visited Madrid.")
    # entity types, not LABEL_n; "simple" follows each sub-token's own tag, so a tiny model may cut a word apart
    assert found and {e["entity_group"] for e in found} <= {"PER", "LOC"}
    assert (found[0]["entity_group"], found[0]["start"]) == ("PER", 0)


def test_demo_runs_on_the_embedded_conll_sample(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--task", "ner", "--demo", "--output-dir", out, "--set", "training.max_steps=3")
    assert result.code == 0, result
    assert "train: 1000 examples" in result.out and "eval: 200 examples" in result.out
    labels = json.loads((out / "config.json").read_text())["id2label"].values()
    assert sorted(labels) == ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
    assert "train.conll" in (out / "ftrun.toml").read_text()


# -- defaults and examples ---------------------------------------------------------------------------


def test_defaults_are_run_ner_recipe(task, tmp_path):
    config = build_config(task, {}, source="--task ner", base_dir=tmp_path)
    assert config.model.name == "bert-base-cased"
    assert (config.data.dataset, config.data.train_split, config.data.eval_split) == ("eriktks/conll2003", "train", "validation")
    assert (config.data.tokens_column, config.data.tags_column, config.data.label_all_tokens) == ("tokens", "ner_tags", False)
    assert config.training["num_train_epochs"] == 3
    assert config.training["per_device_train_batch_size"] == 8 and config.training["learning_rate"] == 5e-5
    assert config.metrics.best == "f1"
    assert "Angela Merkel visited Paris." in config.predict.examples


def validate(path: Path):
    manifest = read_manifest(path)
    return build_config(get_plugin_manager().task(manifest["task"]), manifest, source=path.name, base_dir=path.parent)


def test_conll2003_example_is_run_ner_s_recipe_on_the_hub_s_conll2003():
    config = validate(EXAMPLES / "conll2003.toml")
    assert config.task == "ner" and config.model.name == "bert-base-cased"
    assert (config.data.dataset, config.data.train_split, config.data.eval_split) == ("eriktks/conll2003", "train", "validation")
    assert config.metrics.best == "f1"


def test_custom_columns_example_runs(ftrun_cli, tmp_path):
    manifest = EXAMPLES / "ner-custom-columns.toml"
    config = validate(manifest)
    assert (config.data.tokens_column, config.data.tags_column) == ("words", "labels")
    checked = ftrun_cli("check", "--manifest", manifest)
    assert checked.code == 0, checked
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out", "--set", "training.num_train_epochs=1")
    assert result.code == 0, result
    assert "eval_f1" in json.loads((tmp_path / "out" / "eval_results.json").read_text())
