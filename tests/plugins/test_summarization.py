"""The summarization task, and the sequence-to-sequence base a third-party task builds on."""

import gzip
import json
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from ftrun import FtrunError, RunConfig
from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.plugins.metrics import generation_metrics
from ftrun.stages.data import load_data
from ftrun.stages.head import build_head
from ftrun.testing import TINY_T5, TINY_TRAINING, make_config, write_jsonl

SAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "summarization" / "data"
MODEL = {"config": TINY_T5, "tokenizer_vocab_size": 400, "tokenizer_lowercase": False}
TINY = {"max_source_length": 64, "max_target_length": 16}


def stories(name: str = "reuters-train", limit: int = 40) -> list[dict]:
    """Real Reuters stories and their headlines from the package's embedded sample."""
    with gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(limit))]


def files(tmp_path: Path, rows: list[dict]) -> dict:
    return {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[8:])), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:8]))}


def config_for(tmp_path: Path, data: dict, model: dict | None = None) -> RunConfig:
    return make_config({"task": "summarization", "model": model or MODEL, "data": {**TINY, **data}, "training": TINY_TRAINING}, base_dir=tmp_path)


@pytest.fixture(scope="module")
def task():
    return get_plugin_manager().task("summarization")


@pytest.mark.parametrize(("text", "summary"), [("document", "summary"), ("article", "highlights")])
def test_the_hubs_layouts_are_found(task, tmp_path, text, summary):
    rows = [{text: row["document"], summary: row["summary"]} for row in stories()]
    data = load_data(task, config_for(tmp_path, files(tmp_path, rows)))
    tokenizer = data.tokenizer
    assert data.train[0]["input_ids"] == tokenizer("summarize: " + rows[8][text], max_length=64, truncation=True)["input_ids"]
    assert data.train[0]["labels"] == tokenizer(text_target=rows[8][summary], max_length=16, truncation=True)["input_ids"]


def test_named_columns_and_the_errors_of_a_layout(task, tmp_path):
    rows = [{"body": row["document"], "title": row["summary"]} for row in stories()]
    data = load_data(task, config_for(tmp_path, {**files(tmp_path, rows), "text_column": "body", "summary_column": "title"}))
    assert len(data.train) == 32
    with pytest.raises(FtrunError, match=r"data.text_column: none given, and the train split has none of the usual layouts .*\(columns: body, title\)"):
        load_data(task, config_for(tmp_path, files(tmp_path, rows)))
    with pytest.raises(FtrunError, match=r"data.summary_column: column 'summary' not in the train split \(columns: body, title\)"):
        load_data(task, config_for(tmp_path, {**files(tmp_path, rows), "text_column": "body", "summary_column": "summary"}))
    broken = [dict(row) for row in stories()]
    broken[12]["summary"] = None
    with pytest.raises(FtrunError, match=r"data.summary_column: row 5 of .*train.jsonl"):
        load_data(task, config_for(tmp_path, files(tmp_path, broken)))
    with pytest.raises(FtrunError, match="data.max_length: summarization truncates with max_source_length and max_target_length"):
        load_data(task, config_for(tmp_path, {**files(tmp_path, stories()), "max_length": 32}))


def test_t5_gets_the_summarize_prefix_and_generates_up_to_the_target_length(task, tmp_path):
    config = config_for(tmp_path, files(tmp_path, stories()))
    assert config.data.source_prefix == "summarize: " and config.training["generation_max_length"] == 16
    assert config.manifest["data"]["source_prefix"] == "summarize: "  # written into the run's ftrun.toml
    model = build_head(task, config, load_data(task, config))
    assert model.config.task_specific_params == {"summarization": {"prefix": "summarize: "}}
    bart = {"model_type": "bart", "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2}
    assert config_for(tmp_path, files(tmp_path, stories()), model={**MODEL, "config": bart}).data.source_prefix == ""


def test_rouge_is_rouge_scores_mean_f_measure_with_a_sentence_a_line_for_lsum():
    texts = ["The cats sat on the mat. It was warm.", "Stocks fell."]
    references = ["The cat sat on the mat. It was cold.", "Stocks rose sharply on Monday."]
    scores = generation_metrics(["rouge1", "rouge2", "rougeL", "rougeLsum"], where="test")(texts, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for kind in ("rouge1", "rouge2", "rougeL"):
        assert scores[kind] == pytest.approx(50 * sum(scorer.score(r, t)[kind].fmeasure for t, r in zip(texts, references)))
    lines = [text.replace(". ", ".\n") for text in texts], [text.replace(". ", ".\n") for text in references]
    assert scores["rougeLsum"] == pytest.approx(50 * sum(scorer.score(r, t)["rougeLsum"].fmeasure for t, r in zip(*lines)))


def test_a_run_and_ftrun_predict_write_the_same_summaries(ftrun_cli, ftrun_manifest, tmp_path):
    example = stories("reuters-eval", 1)[0]["document"]
    tables = {
        "task": "summarization",
        "model": MODEL,
        "data": {**TINY, **files(tmp_path, stories())},
        "training": {**TINY_TRAINING, "generation_num_beams": 1},
        "predict": {"examples": [example]},
    }
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", ftrun_manifest(tables), "--output-dir", out)
    assert result.code == 0, result
    metrics = json.loads((out / "eval_results.json").read_text())
    assert {"eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rougeLsum", "eval_gen_len"} <= set(metrics)
    assert json.loads((out / "generation_config.json").read_text())["max_length"] == 16
    saved = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    predicted = ftrun_cli("predict", "--model", out, "--json", example)
    assert predicted.code == 0, predicted
    assert json.loads(predicted.out)["summary_text"] == saved["summary_text"]


#: A third-party task on the base, as its package would hold it: a sentence → another wording of it.
PARAPHRASE = """
from ftrun import hookimpl
from ftrun.plugins.seq2seq import Seq2SeqTask


class Paraphrase(Seq2SeqTask):
    name = "paraphrase"
    output_key = "paraphrase"
    default_metrics = ["chrf"]

    def pairs(self, batch, config):
        return batch["sentence"], batch["other"]

    def columns(self, split, config):
        return ["sentence", "other"]

    def t5_prefix(self, config):
        return "paraphrase: "

    def params_name(self, config):
        return "paraphrase"

    def check_data(self, splits, config):
        return None


@hookimpl
def ftrun_register_tasks(register):
    register(Paraphrase())
"""


def test_a_third_party_seq2seq_task_is_a_few_methods_on_the_base(ftrun_cli, ftrun_manifest, ftrun_plugin_module, tmp_path):
    module = ftrun_plugin_module("paraphrase_plugin", PARAPHRASE)
    rows = [{"sentence": row["summary"], "other": row["summary"].lower()} for row in stories()]
    tables = {"task": "paraphrase", "plugins": [module], "model": MODEL, "data": {**TINY, **files(tmp_path, rows)}, "training": TINY_TRAINING}
    out = tmp_path / "out"
    result = ftrun_cli("--manifest", ftrun_manifest(tables), "--output-dir", out, "--set", "predict.examples=['Shares rose.']")
    assert result.code == 0, result
    assert "eval_chrf" in json.loads((out / "eval_results.json").read_text())
    assert json.loads((out / "config.json").read_text())["task_specific_params"] == {"paraphrase": {"prefix": "paraphrase: "}}
    assert "paraphrase" in json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
