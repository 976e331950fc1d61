"""The translation task: prefix, truncation, padding, generation, metrics, errors, a whole run, predict."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, EvalPrediction, Seq2SeqTrainer

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.cli import main
from ftrun.manifest.config import build_config, read_manifest
from ftrun.stages.data import load_data
from ftrun.stages.head import build_head
from ftrun.stages.tokenizer import T5_SENTINELS, train_tokenizer
from ftrun.stages.training import build_trainer
from ftrun.testing import TINY_T5, TINY_TRAINING, files_under, write_jsonl

SAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "translation" / "data"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi30k.toml"
TINY_BART = {
    "model_type": "bart",
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 128,
}
EN_DE = {"source_lang": "en", "target_lang": "de"}


def sample_pairs(name: str = "multi30k-train", limit: int = 48) -> list[dict]:
    """Real Multi30k English-German pairs from the package's embedded sample."""
    with gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(limit))]


@pytest.fixture(scope="module")
def task():
    return get_plugin_manager().task("translation")


@pytest.fixture
def pair_files(tmp_path) -> dict:
    """train_file and eval_file of real pairs in the Hub's {"translation": {"en": ..., "de": ...}} form."""
    return {
        "train_file": str(write_jsonl(tmp_path / "train.jsonl", sample_pairs("multi30k-train", 48))),
        "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", sample_pairs("multi30k-eval", 16))),
    }


def config_for(task, tmp_path: Path, data: dict, model: dict | None = None, **tables):
    manifest = {"task": task.name, "model": model or {"config": TINY_T5, "tokenizer_vocab_size": 400}, "data": {**EN_DE, **data}, **tables}
    return build_config(task, manifest, source="test.toml", base_dir=tmp_path)


def english(data, index: int = 0) -> str:
    return data.raw.train[index]["translation"]["en"]


# -- data stage -------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["config", "pretrained"])
def test_t5_models_get_the_task_prefix(task, tmp_path, pair_files, ftrun_tiny_t5, source):
    model = {"config": TINY_T5, "tokenizer_vocab_size": 400} if source == "config" else {"name": str(ftrun_tiny_t5)}
    data = load_data(task, config_for(task, tmp_path, pair_files, model=model))
    expected = data.tokenizer("translate English to German: " + english(data))["input_ids"]
    assert data.train[0]["input_ids"] == expected
    assert data.tokenizer.decode(expected, skip_special_tokens=True).lower().startswith("translate english to german: ")


def test_other_models_get_no_prefix(task, tmp_path, pair_files):
    data = load_data(task, config_for(task, tmp_path, pair_files, model={"config": TINY_BART, "tokenizer_vocab_size": 400}))
    assert data.train[0]["input_ids"] == data.tokenizer(english(data))["input_ids"]


@pytest.mark.parametrize("model", [TINY_T5, TINY_BART], ids=["t5", "bart"])
def test_source_prefix_is_configurable(task, tmp_path, pair_files, model):
    data = load_data(task, config_for(task, tmp_path, {**pair_files, "source_prefix": "en-de: "}, model={"config": model}))
    assert data.train[0]["input_ids"] == data.tokenizer("en-de: " + english(data))["input_ids"]
    none = load_data(task, config_for(task, tmp_path, {**pair_files, "source_prefix": ""}, model={"config": model}))
    assert none.train[0]["input_ids"] == none.tokenizer(english(none))["input_ids"]


def test_flat_source_and_target_columns(task, tmp_path):
    rows = [{"english": pair["translation"]["en"], "german": pair["translation"]["de"]} for pair in sample_pairs(limit=12)]
    files = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows)), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:4]))}
    data = load_data(task, config_for(task, tmp_path, {**files, "source_column": "english", "target_column": "german", "source_prefix": ""}))
    assert data.train[3]["input_ids"] == data.tokenizer(data.raw.train[3]["english"])["input_ids"]
    assert data.train[3]["labels"] == data.tokenizer(text_target=data.raw.train[3]["german"])["input_ids"]


def test_sources_and_targets_are_truncated_separately(task, tmp_path):
    rows = [{"translation": {"en": "a man " * (1 + 20 * i), "de": "ein Mann " * (1 + 20 * i)}} for i in range(4)]
    files = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows)), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows))}
    data = load_data(task, config_for(task, tmp_path, {**files, "source_prefix": "", "max_source_length": 24, "max_target_length": 16}))
    sources, targets = list(data.train["input_ids"]), list(data.train["labels"])
    assert max(map(len, sources)) == 24 and min(map(len, sources)) < 24  # padded only per batch, by the collator
    assert max(map(len, targets)) == 16 and min(map(len, targets)) < 16
    eos = data.tokenizer.eos_token_id
    assert all(ids[-1] == eos for ids in sources + targets)  # truncation keeps the closing </s>


def test_collator_pads_labels_with_minus_100(task, tmp_path, pair_files):
    config = config_for(task, tmp_path, pair_files)
    data = load_data(task, config)
    examples = [data.train[i] for i in range(8)]
    batch = task.data_collator(data, None, config)(examples)
    lengths = [len(example["labels"]) for example in examples]
    assert batch["labels"].shape == (8, max(lengths))
    for row, length in zip(batch["labels"].tolist(), lengths):
        assert row[length:] == [-100] * (max(lengths) - length) and -100 not in row[:length]
    shortest = min(range(8), key=lambda i: len(examples[i]["input_ids"]))
    assert batch["input_ids"][shortest].tolist()[-1] == data.tokenizer.pad_token_id == 0
    assert batch["attention_mask"][shortest].tolist()[-1] == 0


def test_a_column_without_language_pairs_is_refused(task, tmp_path):
    from ftrun import FtrunError

    rows = [{"english": "A dog.", "german": "Ein Hund."}] * 4
    files = {"train_file": str(write_jsonl(tmp_path / "train.jsonl", rows)), "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows))}
    with pytest.raises(FtrunError, match=r"^test.toml: data.translation_column: row 1 of train.jsonl holds a text in 'english', not \{language: text\} pairs$"):
        load_data(task, config_for(task, tmp_path, {**files, "translation_column": "english"}))


def test_max_length_is_refused_in_favour_of_source_and_target_lengths(task, tmp_path, pair_files):
    from ftrun import FtrunError

    with pytest.raises(FtrunError, match=r"^test.toml: data.max_length: translation truncates with max_source_length and max_target_length$"):
        load_data(task, config_for(task, tmp_path, {**pair_files, "max_length": 32}))


# -- the trained T5 tokenizer -------------------------------------------------------------


@pytest.fixture(scope="module")
def t5_tokenizer():
    texts = [text for pair in sample_pairs(limit=500) for text in pair["translation"].values()]
    return train_tokenizer(texts, model_type="t5", vocab_size=600, model_max_length=128, lowercase=False)


def test_t5_tokenizer_has_t5s_special_tokens_and_sentinels(t5_tokenizer):
    tokenizer = t5_tokenizer
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == ("<pad>", "</s>", "<unk>")
    assert len(tokenizer) == 700 and tokenizer.extra_special_tokens == T5_SENTINELS
    # As T5's: the sentinels close the vocabulary, <extra_id_0> last.
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == 699
    assert tokenizer.convert_tokens_to_ids("<extra_id_99>") == 600
    ids = tokenizer("Ein Hund <extra_id_0> im Schnee.")["input_ids"]
    assert 699 in ids and ids[-1] == 1  # a sentinel stays one token; </s> closes the sequence


def test_t5_tokenizer_round_trips_and_reloads(t5_tokenizer, tmp_path):
    texts = ["A man is riding a bike.", "Zwei große Hunde spielen im  Schnee."]
    for text in texts:
        assert t5_tokenizer.decode(t5_tokenizer(text)["input_ids"], skip_special_tokens=True) == " ".join(text.split())
    assert t5_tokenizer.convert_ids_to_tokens(t5_tokenizer("«")["input_ids"]) == ["▁", "<unk>", "</s>"]  # as T5's: no byte fallback
    t5_tokenizer.save_pretrained(tmp_path / "tok")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert [reloaded(text)["input_ids"] for text in texts] == [t5_tokenizer(text)["input_ids"] for text in texts]
    assert reloaded.extra_special_tokens == T5_SENTINELS and reloaded.pad_token_id == 0


def test_t5_family_trains_a_unigram_tokenizer_and_others_wordpiece():
    texts = ["A Man rides.", "Ein Mann fährt."] * 50
    assert train_tokenizer(texts, "mt5", 100, 64).backend_tokenizer.model.__class__.__name__ == "Unigram"
    assert train_tokenizer(texts, "bert", 100, 64).backend_tokenizer.model.__class__.__name__ == "WordPiece"
    lowercased = train_tokenizer(texts, "t5", 100, 64, lowercase=True)
    assert lowercased.decode(lowercased("A Man")["input_ids"], skip_special_tokens=True) == "a man"


# -- head, metric and trainer stages --------------------------------------------------------


def test_t5_from_a_config_takes_its_token_ids_from_the_tokenizer(task, tmp_path, pair_files):
    import torch

    config = config_for(task, tmp_path, pair_files)
    data = load_data(task, config)
    model = build_head(task, config, data)
    assert (model.config.pad_token_id, model.config.eos_token_id, model.config.decoder_start_token_id) == (0, 1, 0)
    assert model.config.vocab_size == len(data.tokenizer)
    assert model.config.task_specific_params == {"translation_en_to_de": {"prefix": "translate English to German: "}}
    batch = task.data_collator(data, model, config)([data.train[i] for i in range(4)])
    assert torch.isfinite(model(**batch).loss)


def test_generation_length_follows_max_target_length(task, tmp_path, pair_files):
    config = config_for(task, tmp_path, {**pair_files, "max_target_length": 48})
    data = load_data(task, config)
    model = build_head(task, config, data)
    trainer = build_trainer(task, config, data, model, task.build_metrics(config, data), callbacks=[], output_dir=str(tmp_path / "out"))
    assert isinstance(trainer, Seq2SeqTrainer) and trainer.args.predict_with_generate
    assert trainer.args.generation_max_length == 48 and trainer.args.generation_num_beams == 4
    # The saved model generates the same way (not the 20-token default).
    assert (model.generation_config.max_length, model.generation_config.num_beams) == (48, 4)


def test_generation_settings_are_manifest_keys(task, tmp_path, pair_files):
    config = config_for(task, tmp_path, pair_files, training={"generation_max_length": 100, "generation_num_beams": 2})
    data = load_data(task, config)
    model = build_head(task, config, data)
    trainer = build_trainer(task, config, data, model, task.build_metrics(config, data), callbacks=[], output_dir=str(tmp_path / "out"))
    assert (trainer.args.generation_max_length, trainer.args.generation_num_beams) == (100, 2)
    assert (model.generation_config.max_length, model.generation_config.num_beams) == (100, 2)


def test_postprocess_decodes_generated_ids_and_takes_the_raw_targets_as_references(task, tmp_path, pair_files):
    config = config_for(task, tmp_path, pair_files)
    data = load_data(task, config)
    labels = [data.eval[i]["labels"] for i in range(4)]
    width = max(map(len, labels))
    padded = np.array([ids + [-100] * (width - len(ids)) for ids in labels])  # as the Trainer pads across batches
    examples = data.raw.eval.select(range(4))
    out = task.postprocess(EvalPrediction(predictions=padded, label_ids=padded), data.eval.select(range(4)), examples, data, config)
    assert [p["translation"] for p in out.predictions] == [t.strip() for t in data.tokenizer.batch_decode(labels, skip_special_tokens=True)]
    assert [p["tokens"] for p in out.predictions] == [len(ids) - 1 for ids in labels]  # </s> aside
    assert out.label_ids == [row["translation"]["de"].strip() for row in examples]
    eos = data.tokenizer.eos_token_id
    padded_with_eos = np.where(padded == -100, eos, padded)  # as beam search pads finished translations
    again = task.postprocess(EvalPrediction(predictions=padded_with_eos, label_ids=padded), None, examples, data, config)
    assert again.predictions == out.predictions
    # predict has no references
    assert task.postprocess(EvalPrediction(predictions=padded, label_ids=None), None, None, data, config).label_ids is None


def test_metrics_score_generated_text(task, tmp_path, pair_files):
    config = config_for(task, tmp_path, pair_files)
    data = load_data(task, config)
    metrics = task.build_metrics(config, data)
    assert metrics.best == "bleu" and metrics.greater_is_better
    references = [row["translation"]["de"] for row in data.raw.eval.select(range(4))]
    perfect = metrics.compute(EvalPrediction(predictions=[{"translation": t, "tokens": 3} for t in references], label_ids=references))
    assert perfect == {"bleu": pytest.approx(100), "chrf": pytest.approx(100), "gen_len": 3.0}
    wrong = metrics.compute(EvalPrediction(predictions=[{"translation": t, "tokens": 3} for t in references[::-1]], label_ids=references))
    assert wrong["bleu"] < 50 and wrong["chrf"] < 50


# -- bad input, through the command line ----------------------------------------------------


def manifest_with(ftrun_manifest, files: dict, data: dict | None = None, training: dict | None = None) -> Path:
    return ftrun_manifest(
        {
            "task": "translation",
            "model": {"config": TINY_T5, "tokenizer_vocab_size": 300},
            "data": {**files, **EN_DE, **(data or {})},
            "training": {**TINY_TRAINING, **(training or {})},
        }
    )


@pytest.mark.parametrize(
    "data, training, message",
    [
        pytest.param(
            {"target_lang": "fr"},
            None,
            "data.target_lang: language 'fr' not in column 'translation' of the train split (languages: de, en)",
            id="unknown-language",
        ),
        pytest.param(
            {"translation_column": "pairs"},
            None,
            "data.translation_column: column 'pairs' not in the train split (columns: translation)",
            id="missing-translation-column",
        ),
        pytest.param({"target_lang": "en"}, None, "data.target_lang: the same language as source_lang ('en')", id="same-language"),
        pytest.param(
            {"source_column": "english"},
            None,
            "data.target_column: needed as well when texts come from flat columns",
            id="flat-column-alone",
        ),
        pytest.param(
            {"source_column": "english", "target_column": "german"},
            None,
            "data.source_column: column 'english' not in the train split (columns: translation)",
            id="missing-flat-column",
        ),
        pytest.param(
            None,
            {"predict_with_generate": False},
            "training.predict_with_generate: task translation needs predict_with_generate = true",
            id="no-generation",
        ),
    ],
)
def test_bad_settings_fail_in_one_line_naming_the_key(ftrun_cli, ftrun_manifest, pair_files, tmp_path, data, training, message):
    manifest = manifest_with(ftrun_manifest, pair_files, data, training)
    before = files_under(tmp_path)
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 2, result
    assert result.err.strip() == f"ftrun: error: run.toml: {message}"
    assert "Traceback" not in result.err
    assert files_under(tmp_path) == before and not (tmp_path / "out").exists()


def test_rows_missing_a_language_fail_in_one_line(ftrun_cli, ftrun_manifest, pair_files, tmp_path):
    rows = sample_pairs("multi30k-eval", 6)
    del rows[4]["translation"]["de"]
    write_jsonl(Path(pair_files["eval_file"]), rows)
    manifest = manifest_with(ftrun_manifest, pair_files)
    before = files_under(tmp_path)
    message = "ftrun: error: run.toml: data.target_lang: row 5 of eval.jsonl has no 'de' text (null or missing)"
    for result in (ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out"), ftrun_cli("check", "--manifest", manifest)):
        assert result.code == 2, result
        assert result.err.strip() == message
    assert files_under(tmp_path) == before and not (tmp_path / "out").exists()


# -- a whole run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny T5 trained through the command line on real pairs (one epoch, seconds)."""
    folder = tmp_path_factory.mktemp("translation")
    train = write_jsonl(folder / "train.jsonl", sample_pairs("multi30k-train", 64))
    evaluation = write_jsonl(folder / "eval.jsonl", sample_pairs("multi30k-eval", 16))
    manifest = folder / "run.toml"
    settings = {
        "task": "translation",
        "model": {"config": TINY_T5, "tokenizer_vocab_size": 400},
        "data": {"train_file": str(train), "eval_file": str(evaluation), **EN_DE, "max_target_length": 24},
        "training": {**TINY_TRAINING, "per_device_train_batch_size": 16, "learning_rate": 3e-3},
        "predict": {"examples": ["A man is riding a bike.", "Two dogs play in the snow."]},
    }
    manifest.write_text(tomli_w.dumps(settings), encoding="utf-8")
    assert main(["--manifest", str(manifest), "--output-dir", str(folder / "out")]) == 0
    return folder / "out"


def test_run_writes_metrics_predictions_and_a_seq2seq_model(trained):
    metrics = json.loads((trained / "eval_results.json").read_text())
    assert {"eval_bleu", "eval_chrf", "eval_gen_len", "eval_loss"} <= set(metrics)
    assert 0 < metrics["eval_gen_len"] <= 24
    config = json.loads((trained / "config.json").read_text())
    assert config["architectures"] == ["T5ForConditionalGeneration"]
    assert config["task_specific_params"] == {"translation_en_to_de": {"prefix": "translate English to German: "}}
    generation = json.loads((trained / "generation_config.json").read_text())
    assert (generation["max_length"], generation["num_beams"], generation["decoder_start_token_id"]) == (24, 4, 0)
    predictions = [json.loads(line) for line in (trained / "predictions.jsonl").read_text().splitlines()]
    assert [p["input"] for p in predictions] == ["A man is riding a bike.", "Two dogs play in the snow."]
    assert all(isinstance(p["translation"], str) for p in predictions)
    card = (trained / "README.md").read_text()
    assert "pipeline_tag: translation" in card
    # The card's code translates with the saved directory (transformers 5 has no translation pipeline).
    code = card.split("```python\n")[1].split("```")[0].replace("path/to/this/directory", str(trained))
    exec(compile(code, "README.md", "exec"), {})


def test_predict_prints_translations(ftrun_cli, trained):
    result = ftrun_cli("predict", "--model", trained, "A man is riding a bike.", "Two dogs play in the snow.")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["A man is riding a bike.", "Two dogs play in the snow."]
    as_json = ftrun_cli("predict", "--model", trained, "--json", "A man is riding a bike.")
    assert json.loads(as_json.out) == {"input": "A man is riding a bike.", "translation": lines[0].split("\t")[0]}


def test_saved_directory_translates_with_plain_transformers(ftrun_cli, trained):
    """What transformers 5 offers instead of the removed translation pipeline: tokenize, generate, decode.

    The prefix comes from the saved config's task_specific_params and the generation
    settings from its generation_config.json, as transformers 4's
    ``pipeline("translation_en_to_de", model=DIR)`` took them.
    """
    import transformers

    with pytest.raises(KeyError, match="translation_en_to_de has been removed"):
        transformers.pipeline("translation_en_to_de", model=str(trained))
    tokenizer = AutoTokenizer.from_pretrained(trained)
    model = AutoModelForSeq2SeqLM.from_pretrained(trained)
    prefix = model.config.task_specific_params["translation_en_to_de"]["prefix"]
    inputs = tokenizer([prefix + "A man is riding a bike."], return_tensors="pt")
    translation = tokenizer.decode(model.generate(**inputs)[0], skip_special_tokens=True)
    ours = ftrun_cli("predict", "--model", trained, "A man is riding a bike.").out.split("\t")[0]
    assert translation.strip() == ours


# -- defaults, demo, example ------------------------------------------------------------------


def test_defaults_are_run_translations_t5_small_on_wmt16_en_ro(task, tmp_path):
    # A prefix given: otherwise settling the config reads t5-small's config.json from the Hub, to know its family.
    config = build_config(task, {}, source="--task translation", base_dir=tmp_path, overrides=["data.source_prefix=''"])
    assert config.model.name == "t5-small"
    assert (config.data.dataset, config.data.dataset_config, config.data.eval_split) == ("wmt16", "ro-en", "validation")
    assert (config.data.source_lang, config.data.target_lang) == ("en", "ro")
    assert config.training["predict_with_generate"] is True
    assert config.metrics.best == "bleu"


def test_offline_without_a_named_source_falls_back_to_the_demo(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli(
        "--task", "translation", "--output-dir", out,
        "--set", "training.max_steps=2", "--set", "training.generation_num_beams=1", "--set", "training.generation_max_length=8",
        "--set", "predict.examples=['A dog.']",
    )  # fmt: skip
    assert result.code == 0, result
    first = result.out.splitlines()[0]
    assert first.startswith("ftrun: the Hugging Face Hub is unreachable and model t5-small and dataset wmt16 are not cached")
    assert "embedded translation demo" in first
    assert "train: 3000 examples" in result.out and "eval: 200 examples" in result.out
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token_id == 1 and len(tokenizer.extra_special_tokens) == 100
    assert json.loads((out / "config.json").read_text())["task_specific_params"] == {"translation_en_to_de": {"prefix": "translate English to German: "}}


def test_example_manifest_validates():
    manifest = read_manifest(EXAMPLE)
    config = build_config(get_plugin_manager().task(manifest["task"]), manifest, source=EXAMPLE.name, base_dir=EXAMPLE.parent)
    assert config.task == "translation"
    assert (config.data.source_lang, config.data.target_lang) == ("en", "de")
    assert (config.data.dataset, config.data.train_split, config.data.eval_split) == ("bentrevett/multi30k", "train", "validation")
    assert (config.data.source_column, config.data.target_column) == ("en", "de")
    assert config.model.config["model_type"] == "t5"
