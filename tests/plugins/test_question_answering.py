"""The question-answering task: windows, exact post-processing, checks, metrics, inputs, a whole run, predict.

A run's exact match and F1 are checked against a scorer written here from scratch (one example
and one window at a time, no Trainer, SQuAD's normalisation spelled out), so that predictions
reaching post-processing in another order than their examples' would fail the test.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import string
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch
from datasets import Dataset
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, EvalPrediction

from ftrun import FtrunError, Splits, TaskData
from ftrun.cli import main
from ftrun.plugins.question_answering.answers import best_answer, best_answers, window_spans
from ftrun.stages.data import load_tokenizer
from ftrun.stages.tokenizer import train_tokenizer
from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl

#: Until ftrun's pyproject names it as an entry point; naming it too is harmless after.
PLUGIN = "ftrun.plugins.question_answering"
SAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "question_answering" / "data"
TASK_NAME = "question-answering"


def sample_rows(name: str = "squad-train", limit: int = 48) -> list[dict]:
    """Real SQuAD questions from the package's embedded sample."""
    with gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(limit))]


def row_with_id(example_id: str) -> dict:
    return next(row for row in sample_rows(limit=10_000) if row["id"] == example_id)


@pytest.fixture(scope="module")
def task():
    from ftrun.api.plugin_manager import get_plugin_manager

    return get_plugin_manager(plugins=[PLUGIN]).task(TASK_NAME)


@pytest.fixture(scope="module")
def tokenizer():
    """A WordPiece tokenizer trained on the sample: small enough that a context takes several windows."""
    texts = (text for row in sample_rows(limit=300) for text in (row["question"], row["context"]))
    return train_tokenizer(texts, model_type="bert", vocab_size=1000, model_max_length=128)


@pytest.fixture
def config_of(ftrun_config):
    """config_of(**data_keys) -> the RunConfig of a question-answering manifest with those [data] keys."""

    def build(metrics: dict | None = None, **data):
        tables = {
            "task": TASK_NAME,
            "model": {"config": TINY_BERT},
            "data": {"train_file": "train.jsonl", "eval_file": "eval.jsonl", **data},
        }
        if metrics is not None:
            tables["metrics"] = metrics
        return ftrun_config(tables, PLUGIN)

    return build


def encode(task, tokenizer, config, rows: list[dict], split: str) -> dict[str, list]:
    batch = {key: [row[key] for row in rows] for key in rows[0]}
    return task.encode(batch, TaskData(train=None, eval=None, tokenizer=tokenizer), config, split)


# -- windows ----------------------------------------------------------------------------------

LONG = "56ce4a58aab44d1400b8866c"  # 2,099 characters of context; the answer "The fourth Dalai Lama" at 623


def context_tokens(input_ids: list[int], token_type_ids: list[int]) -> list[int]:
    return [token for token, segment in zip(input_ids, token_type_ids) if segment == 1][:-1]  # without the last [SEP]


def test_a_long_context_becomes_overlapping_windows_of_one_example(task, tokenizer, config_of):
    row = row_with_id(LONG)
    features = encode(task, tokenizer, config_of(max_length=64, doc_stride=16), [row], "eval")
    windows = len(features["input_ids"])
    assert windows > 5
    assert features["example_id"] == [LONG] * windows
    question = tokenizer(row["question"], add_special_tokens=False)["input_ids"]
    for k in range(windows):
        ids = features["input_ids"][k]
        assert len(ids) <= 64
        assert ids[: len(question) + 2] == [tokenizer.cls_token_id, *question, tokenizer.sep_token_id]  # the whole question in each
        # offsets are kept for the context's tokens only, in order, within the context
        offsets = features["offset_mapping"][k]
        context = context_tokens(ids, features["token_type_ids"][k])
        assert [offset is not None for offset in offsets] == [False] * (len(question) + 2) + [True] * len(context) + [False]
        kept = [offset for offset in offsets if offset is not None]
        assert kept == sorted(kept) and 0 <= kept[0][0] and kept[-1][1] <= len(row["context"])
    for k in range(windows - 1):  # consecutive windows share doc_stride tokens of context
        this = context_tokens(features["input_ids"][k], features["token_type_ids"][k])
        following = context_tokens(features["input_ids"][k + 1], features["token_type_ids"][k + 1])
        assert this[-16:] == following[:16]
    whole = tokenizer(row["context"], add_special_tokens=False)["input_ids"]
    assert whole[:5] == context_tokens(features["input_ids"][0], features["token_type_ids"][0])[:5]
    assert whole[-5:] == context_tokens(features["input_ids"][-1], features["token_type_ids"][-1])[-5:]


def test_training_windows_point_at_the_answer_or_at_cls(task, tokenizer, config_of):
    row = row_with_id(LONG)
    answer, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
    plain = encode(task, tokenizer, config_of(max_length=64, doc_stride=16), [row], "eval")
    features = encode(task, tokenizer, config_of(max_length=64, doc_stride=16), [row], "train")
    assert "offset_mapping" not in features and "example_id" not in features
    assert features["input_ids"] == plain["input_ids"]
    holding = 0
    for k, (first, last) in enumerate(zip(features["start_positions"], features["end_positions"])):
        offsets = [offset for offset in plain["offset_mapping"][k] if offset is not None]
        if offsets[0][0] <= start and offsets[-1][1] >= start + len(answer):
            holding += 1
            assert row["context"][plain["offset_mapping"][k][first][0] : plain["offset_mapping"][k][last][1]] == answer
            assert tokenizer.decode(features["input_ids"][k][first : last + 1]) == answer.lower()
        else:
            assert (first, last) == (0, 0)
    assert holding >= 1


def test_questions_are_left_stripped(task, tokenizer, config_of):
    row = sample_rows(limit=1)[0]
    config = config_of(max_length=64, doc_stride=16)
    spaced = encode(task, tokenizer, config, [{**row, "question": "   " + row["question"]}], "eval")
    assert spaced["input_ids"] == encode(task, tokenizer, config, [row], "eval")["input_ids"]


def test_the_windows_of_each_example_follow_each_other_in_the_examples_order(task, tokenizer, config_of):
    rows = [row_with_id(LONG), *sample_rows(limit=3)]
    ids = encode(task, tokenizer, config_of(max_length=64, doc_stride=16), rows, "eval")["example_id"]
    assert list(dict.fromkeys(ids)) == [row["id"] for row in rows]
    assert ids == sorted(ids, key=[row["id"] for row in rows].index)


def test_a_question_that_leaves_no_room_for_the_context(task, tokenizer, config_of):
    row = {**sample_rows(limit=1)[0], "question": "the " * 60}
    with pytest.raises(FtrunError) as error:
        encode(task, tokenizer, config_of(max_length=64, doc_stride=16), [row], "train")
    assert str(error.value) == (
        "run.toml: data.max_length: the question of the train split's example '56bebba63aeaaa14008c930b' takes 60 tokens, "
        "which leaves no more than doc_stride (16) of the 64 for its context; raise max_length or lower doc_stride"
    )


# -- post-processing --------------------------------------------------------------------------

#          [CLS] what  ?    [SEP]  alpha    bravo     charlie    delta      [SEP]
OFFSETS = [None, None, None, None, (0, 5), (6, 11), (12, 19), (20, 25), None]
CONTEXT = "alpha bravo charlie delta"


def logits(**peaks: float) -> np.ndarray:
    """Logits of the 9 tokens above: 0 but for ``t4=3.0`` and the like."""
    out = np.zeros(len(OFFSETS), dtype=np.float32)
    for token, value in peaks.items():
        out[int(token[1:])] = value
    return out


def test_the_best_span_is_the_highest_start_plus_end():
    answer = best_answer([(logits(t5=2, t4=1), logits(t6=3, t7=1), OFFSETS)], CONTEXT, max_answer_length=30)
    assert (answer["answer"], answer["start"], answer["end"]) == ("bravo charlie", 6, 19)


def test_spans_in_the_question_or_reversed_are_never_chosen():
    # The question's tokens (and CLS) have the highest logits; a reversed span (delta, bravo) would score 5 + 5.
    start, end = logits(t0=50, t1=40, t2=30, t7=5, t4=1), logits(t0=50, t2=40, t3=30, t5=5, t7=0.5)
    assert best_answer([(start, end, OFFSETS)], CONTEXT, 30)["answer"] == "alpha bravo"  # 1 + 5, where (delta, delta) is 5 + 0.5


def test_max_answer_length_is_respected():
    start, end = logits(t4=5, t6=1, t7=0.2), logits(t7=5, t6=1.5)
    assert best_answer([(start, end, OFFSETS)], CONTEXT, max_answer_length=4)["answer"] == "alpha bravo charlie delta"  # 5 + 5
    assert best_answer([(start, end, OFFSETS)], CONTEXT, max_answer_length=3)["answer"] == "alpha bravo charlie"  # 5 + 1.5
    assert best_answer([(start, end, OFFSETS)], CONTEXT, max_answer_length=1)["answer"] == "delta"  # 0.2 + 5 beats 5 + 0


def padded(values: np.ndarray, length: int, value: float) -> np.ndarray:
    """Logits as they come out of evaluation: padded along the tokens to the longest window of all batches."""
    return np.concatenate([values, np.full(length - len(values), value)]).astype(np.float32)


def test_the_best_window_wins_and_padding_is_ignored():
    first = (padded(logits(t4=4), 12, -100), padded(logits(t4=4), 12, 999), OFFSETS)  # "alpha": 4 + 4
    # the second window of the same context holds "charlie delta" only: "delta" scores 5 + 5 there
    second_offsets = [None, None, None, None, (12, 19), (20, 25), None]
    second = (padded(np.array([0, 0, 0, 0, 0, 5, 0]), 12, -100), padded(np.array([0, 0, 0, 0, 0, 5, 0]), 12, -100), second_offsets)
    answer = best_answer([first, second], CONTEXT, 30)
    assert (answer["answer"], answer["start"], answer["end"]) == ("delta", 20, 25)
    assert best_answer([first], CONTEXT, 30)["answer"] == "alpha"


def test_the_score_is_the_probability_among_all_valid_spans():
    one_token = [None, (0, 5), None]
    assert best_answer([(np.zeros(3, np.float32), np.zeros(3, np.float32), one_token)], CONTEXT, 30)["score"] == 1.0
    # 4 context tokens, 10 valid spans: the 4 starting at alpha score log(9), the 6 others 0; the first of the 4 wins
    answer = best_answer([(logits(t4=np.log(9)), logits(), OFFSETS)], CONTEXT, 30)
    assert answer["answer"] == "alpha" and answer["score"] == pytest.approx(9 / (4 * 9 + 6))


def test_an_example_without_context_tokens_gets_the_empty_answer():
    assert best_answer([(np.zeros(3), np.zeros(3), [None, None, None])], CONTEXT, 30) == {"answer": "", "score": 0.0, "start": 0, "end": 0}


def test_answers_follow_the_examples_whatever_order_the_windows_come_in():
    start, end = logits(t5=3), logits(t5=3)
    other_start, other_end = logits(t7=3), logits(t7=3)
    answers = best_answers(np.stack([start, other_start]), np.stack([end, other_end]), ["b", "a"], [OFFSETS, OFFSETS], ["a", "b"], [CONTEXT, CONTEXT], 30)
    assert [answer["answer"] for answer in answers] == ["delta", "bravo"]


def brute_force(start: np.ndarray, end: np.ndarray, offsets: list, max_answer_length: int) -> tuple[float, int, int] | None:
    best = None
    for i, first in enumerate(offsets):
        for j in range(i, min(i + max_answer_length, len(offsets))):
            if first is None or offsets[j] is None:
                continue
            score = float(start[i]) + float(end[j])
            if best is None or score > best[0]:
                best = (score, i, j)
    return best


def test_every_valid_span_is_considered():
    """Against a plain loop, on random windows: always the same span (run_qa.py's top-20 shortcut is not)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        length = int(rng.integers(3, 60))
        question = int(rng.integers(1, length - 1))
        offsets = [None] * question + [(k, k + 1) for k in range(length - question - 1)] + [None]
        start, end = rng.normal(size=length).astype(np.float32), rng.normal(size=length).astype(np.float32)
        start[:question] += 5  # as an untrained model might: the question's tokens on top
        limit = int(rng.integers(1, 12))
        firsts, lasts, scores = window_spans(start, end, offsets, limit)
        top = int(np.argmax(scores))
        assert (float(scores[top]), int(firsts[top]), int(lasts[top])) == brute_force(start, end, offsets, limit)


# -- data checks ------------------------------------------------------------------------------


def splits_of(train: list[dict], evaluation: list[dict] | None = None) -> Splits:
    return Splits(train=Dataset.from_list(train), eval=Dataset.from_list(train if evaluation is None else evaluation))


def check_fails(task, config, splits: Splits) -> str:
    with pytest.raises(FtrunError) as error:
        task.check_data(splits, config)
    return str(error.value)


def test_good_data_passes_and_has_no_labels(task, config_of):
    assert task.check_data(splits_of(sample_rows(limit=48), sample_rows("squad-eval", 24)), config_of()) is None


def test_an_answer_that_is_not_at_its_answer_start(task, config_of):
    rows = sample_rows(limit=3)
    rows[1] = {**rows[1], "answers": {"text": rows[1]["answers"]["text"], "answer_start": [rows[1]["answers"]["answer_start"][0] + 2]}}
    assert check_fails(task, config_of(), splits_of(sample_rows(limit=3), rows)) == (
        "run.toml: data.answers_column: row 2 of eval.jsonl (id '56cf63b4aab44d1400b891bf'): "
        "answer 'eolomelodicon' is not at answer_start 499 of its context, which has 'lomelodicon\",' there"
    )


def test_answers_need_as_many_starts_as_texts_and_at_least_one(task, config_of):
    rows = sample_rows(limit=2)
    rows[0] = {**rows[0], "answers": {"text": ["feminism", "female"], "answer_start": [4]}}
    assert check_fails(task, config_of(), splits_of(rows)) == (
        "run.toml: data.answers_column: row 1 of train.jsonl (id '56bebba63aeaaa14008c930b'): answers must be "
        "{\"text\": [...], \"answer_start\": [...]}, as many starts as texts; got {'text': ['feminism', 'female'], 'answer_start': [4]}"
    )
    rows[0] = {**rows[0], "answers": {"text": [], "answer_start": []}}
    assert check_fails(task, config_of(), splits_of(rows)) == (
        "run.toml: data.answers_column: row 1 of train.jsonl (id '56bebba63aeaaa14008c930b') has no answer "
        "(unanswerable questions, as in SQuAD v2, are not supported)"
    )


def test_duplicate_ids(task, config_of):
    rows = sample_rows(limit=4)
    rows[3] = {**rows[3], "id": rows[1]["id"]}
    assert check_fails(task, config_of(), splits_of(rows)) == (
        "run.toml: data.id_column: train.jsonl has the id '56cf63b4aab44d1400b891bf' twice (rows 2 and 4)"
    )


def test_a_missing_column(task, config_of):
    rows = [{key: value for key, value in row.items() if key != "context"} for row in sample_rows(limit=2)]
    assert check_fails(task, config_of(), splits_of(sample_rows(limit=2), rows)) == (
        "run.toml: data.context_column: column 'context' not in the eval split (columns: id, title, question, answers)"
    )
    assert check_fails(task, config_of(question_column="query"), splits_of(sample_rows(limit=2))) == (
        "run.toml: data.question_column: column 'query' not in the train split (columns: id, title, context, question, answers)"
    )


def test_a_missing_context(task, config_of):
    rows = sample_rows(limit=2)
    rows[1] = {**rows[1], "context": " "}
    assert check_fails(task, config_of(), splits_of(rows)) == (
        "run.toml: data.context_column: row 2 of train.jsonl (id '56cf63b4aab44d1400b891bf') has no context text, but ' '"
    )


def test_columns_are_configurable(task, config_of, tokenizer):
    renamed = [{"qid": row["id"], "q": row["question"], "passage": row["context"], "gold": row["answers"]} for row in sample_rows(limit=4)]
    config = config_of(id_column="qid", question_column="q", context_column="passage", answers_column="gold", max_length=64, doc_stride=16)
    assert task.check_data(splits_of(renamed), config) is None
    assert encode(task, tokenizer, config, renamed, "eval")["example_id"][0] == renamed[0]["qid"]
    assert len(encode(task, tokenizer, config, renamed, "train")["start_positions"]) >= 4


def test_a_slow_tokenizer_is_refused(task, ftrun_config, tmp_path):
    from transformers import ByT5Tokenizer

    ByT5Tokenizer().save_pretrained(tmp_path / "slow")
    config = ftrun_config(
        {"task": TASK_NAME, "model": {"config": TINY_BERT, "tokenizer": "./slow"}, "data": {"train_file": "t.jsonl", "eval_file": "e.jsonl"}},
        PLUGIN,
    )
    with pytest.raises(FtrunError) as error:
        load_tokenizer(task, config, splits_of(sample_rows(limit=2)))
    assert str(error.value) == (
        "run.toml: model.tokenizer: ByT5Tokenizer is a slow (Python) tokenizer; "
        "question-answering needs a fast one, which maps tokens to characters (offset_mapping)"
    )


# -- metrics ----------------------------------------------------------------------------------


def test_exact_match_and_f1_as_squad_scores_them(task, config_of):
    metrics = task.build_metrics(config_of(), None)
    assert metrics.best == "f1" and metrics.greater_is_better
    answers = [{"answer": "The Denver Broncos!"}, {"answer": "Carolina"}, {"answer": "nothing alike"}]
    references = [["Denver Broncos"], ["the Carolina Panthers", "Panthers"], ["Super Bowl"]]
    scores = metrics.compute(EvalPrediction(predictions=answers, label_ids=references))
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx((100 + 100 * 2 / 3) / 3)}


def test_metric_names_are_checked(task, config_of):
    assert task.build_metrics(config_of(metrics={"names": ["exact_match"]}), None).best == "exact_match"
    with pytest.raises(FtrunError) as error:
        task.build_metrics(config_of(metrics={"names": ["exact_match", "bleu"]}), None)
    assert str(error.value) == "run.toml: metrics.names: 'bleu' is not a question-answering metric (choose from exact_match, f1)"
    with pytest.raises(FtrunError) as error:
        task.build_metrics(config_of(metrics={"names": ["exact_match"], "best": "f1"}), None)
    assert str(error.value) == "run.toml: metrics.best: 'f1' is not among metrics.names (exact_match)"


# -- inputs to predict on ---------------------------------------------------------------------


def test_inputs_are_tables_or_a_question_tab_context(task):
    expected = {"question": "Who?", "context": "Ada wrote it."}
    assert task.read_input({"question": "Who?", "context": "Ada wrote it.", "id": "7"}, "here") == expected
    assert task.read_input("Who?\tAda wrote it.", "here") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Who wrote it?", "here: expected a question and its context separated by a tab, or a table with question and context"),
        (["Who?", "Ada."], "here: expected a table with question and context, got list ['Who?', 'Ada.']"),
        ({"question": "Who?"}, "here: context must be a text that is not empty, got nothing"),
        ({"question": "Who?", "context": 3}, "here: context must be a text that is not empty, got 3"),
        ("\tAda wrote it.", "here: question must be a text that is not empty, got ''"),
        ({"questoin": "Who?", "context": "Ada."}, "here: unknown key 'questoin' (did you mean question?); an input has question, context and optionally id"),
    ],
    ids=["no-tab", "list", "no-context", "not-text", "empty-question", "misspelt"],
)
def test_bad_inputs(task, value, message):
    with pytest.raises(FtrunError) as error:
        task.read_input(value, "here")
    assert str(error.value) == message


def test_a_bad_predict_example_in_a_manifest(config_of, ftrun_config):
    with pytest.raises(FtrunError) as error:
        ftrun_config(
            {
                "task": TASK_NAME,
                "model": {"config": TINY_BERT},
                "data": {"train_file": "t.jsonl", "eval_file": "e.jsonl"},
                "predict": {"examples": [{"question": "Who?", "context": "Ada."}, {"question": "Who?"}]},
            },
            PLUGIN,
        )
    assert str(error.value) == "run.toml: predict.examples[2]: context must be a text that is not empty, got nothing"


def test_the_example_input_and_usage(task, config_of):
    config = config_of()
    example = task.example_input(config)
    assert set(example) == {"question", "context"}
    code = task.usage("DIR", config)
    assert 'AutoModelForQuestionAnswering.from_pretrained("DIR")' in code and "max_length=384" in code and "tril(29)" in code
    compile(code, "usage", "exec")
    assert task.format_prediction({"answer": "Denver Broncos", "score": 0.51234}) == "'Denver Broncos' (0.512)"
    assert task.format_prediction({"answer": "", "score": 0.0}) == "no answer"


# -- a whole run, checked by a scorer of its own ----------------------------------------------


def normalize(text: str) -> str:
    """SQuAD's normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1(prediction: str, reference: str) -> float:
    predicted, gold = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def answer_alone(model, tokenizer, question: str, context: str, max_length: int, stride: int, max_answer_length: int) -> str:
    """The best span over the windows of one example, each window run on its own in fp32: no batches, no padding."""
    encoded = tokenizer(
        question.lstrip(),
        context,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    best, answer = None, ""
    for k in range(len(encoded["input_ids"])):
        inputs = {name: torch.tensor([encoded[name][k]]) for name in ("input_ids", "token_type_ids", "attention_mask")}
        with torch.no_grad():
            out = model(**inputs)
        start, end = out.start_logits[0].tolist(), out.end_logits[0].tolist()
        in_context = [sequence == 1 for sequence in encoded.sequence_ids(k)]
        offsets = encoded["offset_mapping"][k]
        for i in range(len(start)):
            for j in range(i, min(i + max_answer_length, len(end))):
                if in_context[i] and in_context[j] and (best is None or start[i] + end[j] > best):
                    best, answer = start[i] + end[j], context[offsets[i][0] : offsets[j][1]]
    return answer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``ftrun --manifest``: a tiny BERT on 48 real SQuAD questions, evaluated on 24 in length-sorted batches of 4, in fp32."""
    folder = tmp_path_factory.mktemp("qa-run")
    evaluation = sample_rows("squad-eval", 24)
    manifest = {
        "task": TASK_NAME,
        "plugins": [PLUGIN],
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 1000},
        "data": {
            "train_file": str(write_jsonl(folder / "train.jsonl", sample_rows("squad-train", 48))),
            "eval_file": str(write_jsonl(folder / "eval.jsonl", evaluation)),
            "max_length": 128,
            "doc_stride": 32,
        },
        "training": {**TINY_TRAINING, "num_train_epochs": 2, "bf16": False, "per_device_eval_batch_size": 4},
        "predict": {"examples": [{"question": evaluation[0]["question"], "context": evaluation[0]["context"]}]},
    }
    (folder / "run.toml").write_text(tomli_w.dumps(manifest), encoding="utf-8")
    out = folder / "out"
    assert main(["--manifest", str(folder / "run.toml"), "--output-dir", str(out)]) == 0
    return out, evaluation


def test_a_run_scores_what_a_scorer_of_its_own_scores(trained):
    out, evaluation = trained
    results = json.loads((out / "eval_results.json").read_text())
    model = AutoModelForQuestionAnswering.from_pretrained(out).float().eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    answers = [answer_alone(model, tokenizer, row["question"], row["context"], 128, 32, 30) for row in evaluation]
    exact = [max(float(normalize(answer) == normalize(text)) for text in row["answers"]["text"]) for answer, row in zip(answers, evaluation)]
    scores = [max(f1(answer, text) for text in row["answers"]["text"]) for answer, row in zip(answers, evaluation)]
    assert sum(scores) > 0, "a run that scores nothing cannot tell orders apart"
    # torchmetrics adds up the scores in float32: equal to float32 precision, not to the last bit.
    assert results["eval_exact_match"] == pytest.approx(100 * sum(exact) / len(evaluation), rel=1e-6, abs=1e-6)
    assert results["eval_f1"] == pytest.approx(100 * sum(scores) / len(evaluation), rel=1e-6)
    # several windows per example, so that sorted batches interleave the windows of examples
    with_windows = [
        len(tokenizer(row["question"], row["context"], truncation="only_second", max_length=128, stride=32, return_overflowing_tokens=True)["input_ids"])
        for row in evaluation
    ]
    assert max(with_windows) >= 3 and sum(with_windows) > len(evaluation)


def test_predict_gives_each_input_its_own_answer(task, trained, ftrun_cli):
    out, evaluation = trained
    model = AutoModelForQuestionAnswering.from_pretrained(out).float().eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    rows = evaluation[:12]
    inputs = [json.dumps({"question": row["question"], "context": row["context"]}) for row in rows]
    result = ftrun_cli("predict", "--model", out, "--json", "--json-input", *inputs)
    assert result.code == 0, result
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [record["answer"] for record in records] == [answer_alone(model, tokenizer, row["question"], row["context"], 128, 32, 30) for row in rows]
    for record, row in zip(records, rows):
        assert record["input"] == {"question": row["question"], "context": row["context"]}
        assert row["context"][record["start"] : record["end"]] == record["answer"] and 0 < record["score"] <= 1

    stdin = "".join(f"{row['question']}\t{row['context']}\n" for row in rows[:2])
    result = ftrun_cli("predict", "--model", out, stdin=stdin)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert [line.split("\t", 1)[1] for line in lines] == [f"{row['question']}\t{row['context']}" for row in rows[:2]]
    assert [line.split("\t", 1)[0] for line in lines] == [task.format_prediction(record) for record in records[:2]]


def test_the_run_wrote_a_model_card_predictions_and_the_try_it_command(trained):
    out, evaluation = trained
    (record,) = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert record["input"] == {"question": evaluation[0]["question"], "context": evaluation[0]["context"]}
    assert evaluation[0]["context"][record["start"] : record["end"]] == record["answer"]
    card = (out / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card and "AutoModelForQuestionAnswering" in card
    assert "--json-input" in card
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]


def test_check_reports_bad_data_in_one_line(ftrun_cli, ftrun_manifest, tmp_path):
    rows = sample_rows(limit=4)
    rows[2] = {**rows[2], "id": rows[0]["id"]}
    manifest = ftrun_manifest(
        {
            "task": TASK_NAME,
            "plugins": [PLUGIN],
            "model": {"config": TINY_BERT},
            "data": {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows)), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:2]))},
        }
    )
    result = ftrun_cli("check", "--manifest", manifest)
    assert result.code == 2, result
    assert result.err.splitlines() == ["ftrun: error: run.toml: data.id_column: train.jsonl has the id '56bebba63aeaaa14008c930b' twice (rows 1 and 3)"]
