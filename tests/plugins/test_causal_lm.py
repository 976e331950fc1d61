"""The causal-lm task: its tokenizer, packing, prompt and chat masking, perplexity, generation, predict, errors."""

import gzip
import json
import math
from pathlib import Path

import pytest
import tomli_w
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorWithFlattening, pipeline

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.plugins.causal_lm.task import CHATML_TEMPLATE, ftrun_after_training, isolates_packed_examples
from ftrun.stages.data import load_data
from ftrun.stages.head import build_head
from ftrun.stages.tokenizer import END_OF_TEXT
from ftrun.stages.training import build_trainer
from ftrun.testing import TINY_GPT2, TINY_TRAINING, make_config, write_jsonl
from ftrun.util.errors import FtrunError

SAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "causal_lm" / "data"
IGNORED = -100
#: GPT-2 from a config, small enough for a second, and a tokenizer trained on the data.
MODEL = {"config": TINY_GPT2, "tokenizer_vocab_size": 400, "tokenizer_lowercase": False}


def captions(name: str = "captions-train", limit: int = 48) -> list[str]:
    """Real English captions from the package's embedded sample."""
    with gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(limit))]


PAIRS = [{"prompt": f"Caption: {text}\nShort:", "completion": " " + " ".join(text.split()[:3])} for text in captions(limit=40)]
CHATS = [
    {
        "messages": [
            {"role": "system", "content": "Describe pictures."},
            {"role": "user", "content": f"What is in picture {i}?"},
            {"role": "assistant", "content": " ".join(text.split()[:6])},
            {"role": "user", "content": "Shorter?"},
            {"role": "assistant", "content": " ".join(text.split()[:2])},
        ]
    }
    for i, text in enumerate(captions(limit=24))
]


@pytest.fixture(scope="module")
def task():
    return get_plugin_manager().task("causal-lm")


def files(tmp_path: Path, rows: list[dict], evaluation: int = 8) -> dict:
    return {
        "train_file": str(write_jsonl(tmp_path / "train.jsonl", rows[evaluation:])),
        "eval_file": str(write_jsonl(tmp_path / "eval.jsonl", rows[:evaluation])),
    }


def texts(tmp_path: Path, limit: int = 48) -> dict:
    return files(tmp_path, [{"text": text} for text in captions(limit=limit)])


def config_for(tmp_path: Path, data: dict, model: dict | None = None, overrides: tuple[str, ...] = ()):
    manifest = {"task": "causal-lm", "model": model or MODEL, "data": data, "training": TINY_TRAINING}
    return make_config(manifest, base_dir=tmp_path, overrides=overrides)


def labelled(ids: list[int], labels: list[int]) -> list[int]:
    return [token for token, label in zip(ids, labels) if label != IGNORED]


# -- the tokenizer and the head of a model built from a config -----------------------


def test_a_gpt2_built_from_a_config_gets_a_byte_level_bpe_and_its_ids(task, tmp_path):
    config = config_for(tmp_path, texts(tmp_path))
    data = load_data(task, config)
    tokenizer = data.tokenizer
    text = "A Man in a RED shirt,  twice."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text  # case and spaces kept, nothing added around the text
    assert tokenizer.eos_token == tokenizer.bos_token == END_OF_TEXT and tokenizer.unk_token is None
    assert tokenizer.model_max_length == TINY_GPT2["n_positions"]  # GPT-2 calls it n_positions
    model = build_head(task, config, data)
    eos = tokenizer.eos_token_id
    assert (model.config.bos_token_id, model.config.eos_token_id, model.generation_config.eos_token_id) == (eos, eos, eos)
    assert model.config.vocab_size == len(tokenizer) < 50256  # not GPT-2's own ids


# -- packing -------------------------------------------------------------------------


def test_plain_texts_end_with_eos_and_pack_into_blocks_with_nothing_cut(task, tmp_path):
    rows = [{"text": text} for text in captions(limit=48)]
    rows[10]["text"] = "   "  # an empty text carries nothing: no lone end-of-text token
    config = config_for(tmp_path, files(tmp_path, rows), overrides=["data.block_size=16"])
    data = load_data(task, config)
    tokenizer, eos = data.tokenizer, data.tokenizer.eos_token_id
    blocks = data.train["input_ids"]
    assert all(len(block) == 16 for block in blocks[:-1]) and 0 < len(blocks[-1]) <= 16
    assert data.train["labels"] == blocks  # the loss is on every token
    expected = [token for row in rows[8:] if row["text"].strip() for token in tokenizer(row["text"])["input_ids"] + [eos]]
    assert [token for block in blocks for token in block] == expected


def test_without_packing_each_text_is_cut_and_padded_on_its_own(task, tmp_path):
    config = config_for(tmp_path, texts(tmp_path), overrides=["data.packing=false", "data.max_length=24"])
    data = load_data(task, config)
    lengths = list(map(len, data.train["input_ids"]))
    assert len(lengths) == 40 and max(lengths) == 24
    short, cut = lengths.index(min(lengths)), lengths.index(24)
    assert data.train[short]["input_ids"][-1] == data.tokenizer.eos_token_id  # a whole text ends with end-of-text
    batch = task.data_collator(data, None, config)([data.train[short], data.train[cut]])
    assert batch["input_ids"].shape == (2, 24)
    assert (batch["labels"][0][len(data.train[short]["input_ids"]) :] == IGNORED).all()


PROMPTS = {"prompt_column": "prompt", "completion_column": "completion"}


def test_packed_examples_do_not_attend_to_each_other(task, tmp_path):
    config = config_for(tmp_path, {**files(tmp_path, PAIRS), **PROMPTS})
    data = load_data(task, config)
    model = build_head(task, config, data)
    assert isolates_packed_examples(model)
    collator = task.data_collator(data, model, config)
    assert isinstance(collator, DataCollatorWithFlattening)
    examples = [data.train[i] for i in range(3)]
    batch = collator(examples)
    assert batch["input_ids"].shape == (1, sum(len(example["input_ids"]) for example in examples))  # one row, no padding
    model.eval()
    with torch.no_grad():  # without a cache, as the Trainer runs the model (training.use_cache is false)
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for example in examples:
            alone = model(input_ids=torch.tensor([example["input_ids"]]), use_cache=False).logits[0]
            assert torch.allclose(packed[start : start + len(alone)], alone, atol=1e-5)
            start += len(alone)
    unpacked = config_for(tmp_path, {**files(tmp_path, PAIRS), **PROMPTS}, overrides=["data.packing=false"])
    assert not isinstance(task.data_collator(data, model, unpacked), DataCollatorWithFlattening)


def test_a_model_that_cannot_keep_packed_examples_apart_gets_padded_batches(task, tmp_path):
    gpt1 = {"model_type": "openai-gpt", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 128}  # no packed-sequence masks
    config = config_for(tmp_path, {**files(tmp_path, PAIRS), **PROMPTS}, model={**MODEL, "config": gpt1})
    data = load_data(task, config)
    model = build_head(task, config, data)
    assert not isolates_packed_examples(model)
    metrics = get_plugin_manager().build_metrics(task, config, data)
    trainer = build_trainer(task, config, data, model, metrics, callbacks=[], output_dir=str(tmp_path / "work"))
    batch = trainer.data_collator([data.train[0], data.train[1]])
    assert batch["input_ids"].shape[0] == 2 and "position_ids" not in batch
    assert ftrun_after_training(task, config, trainer) == "packing: off, examples padded: openai-gpt lets examples packed into one row attend to each other"


# -- prompt/completion and chat masking --------------------------------------------------


def test_the_loss_is_on_the_completion_and_its_eos_only(task, tmp_path):
    data = load_data(task, config_for(tmp_path, {**files(tmp_path, PAIRS), **PROMPTS}))
    tokenizer = data.tokenizer
    for row, feature in zip(PAIRS[8:], data.train):
        assert tokenizer.decode(feature["input_ids"]) == row["prompt"] + row["completion"] + END_OF_TEXT
        assert tokenizer.decode(labelled(feature["input_ids"], feature["labels"])) == row["completion"] + END_OF_TEXT
        assert feature["labels"][0] == IGNORED


def test_the_loss_is_on_the_assistant_turns_of_a_chat_only(task, tmp_path):
    data = load_data(task, config_for(tmp_path, {**files(tmp_path, CHATS), "messages_column": "messages"}))
    tokenizer = data.tokenizer
    assert tokenizer.chat_template == CHATML_TEMPLATE  # a trained tokenizer has none of its own
    for row, feature in zip(CHATS[8:], data.train):
        turns = row["messages"]
        learnt = tokenizer.decode(labelled(feature["input_ids"], feature["labels"]))
        assert learnt == f"{turns[2]['content']}<|im_end|>\n{turns[4]['content']}<|im_end|>\n"  # each turn and its end, not its header
        assert tokenizer.decode(feature["input_ids"]) == tokenizer.apply_chat_template(turns, tokenize=False)  # nothing cut


def test_a_pretrained_tokenizer_keeps_its_chat_template_and_gets_a_pad_token(task, tmp_path, ftrun_tiny_gpt2):
    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    tokenizer = AutoTokenizer.from_pretrained(ftrun_tiny_gpt2)
    assert tokenizer.pad_token is None
    tokenizer.chat_template = template
    model_dir = tmp_path / "gpt2"
    AutoModelForCausalLM.from_pretrained(ftrun_tiny_gpt2).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = load_data(task, config_for(tmp_path, {**files(tmp_path, CHATS), "messages_column": "messages"}, model={"name": str(model_dir)}))
    assert data.tokenizer.chat_template == template and data.tokenizer.pad_token == END_OF_TEXT
    feature, turns = data.train[0], CHATS[8]["messages"]
    assert data.tokenizer.decode(labelled(feature["input_ids"], feature["labels"])) == f"{turns[2]['content']}{END_OF_TEXT}{turns[4]['content']}{END_OF_TEXT}"


# -- metrics and a whole run -------------------------------------------------------------------


def test_perplexity_is_exp_of_the_eval_loss_and_no_logits_are_gathered(task, tmp_path):
    config = config_for(tmp_path, texts(tmp_path), overrides=["data.block_size=16"])
    data = load_data(task, config)
    model = build_head(task, config, data)
    metrics = get_plugin_manager().build_metrics(task, config, data)
    trainer = build_trainer(task, config, data, model, metrics, callbacks=[], output_dir=str(tmp_path / "work"))
    loop, outputs = trainer.evaluation_loop, []
    trainer.evaluation_loop = lambda *args, **kwargs: outputs.append(loop(*args, **kwargs)) or outputs[-1]
    metrics = trainer.evaluate()
    assert outputs[0].predictions is None  # the Trainer kept only the loss of each batch, no vocabulary-sized logits
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))


def test_a_run_saves_a_model_that_generates_as_the_manifest_says(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    manifest = tmp_path / "run.toml"
    data = {**files(tmp_path, PAIRS), **PROMPTS}
    tables = {
        "task": "causal-lm",
        "model": MODEL,
        "data": data,
        "training": {**TINY_TRAINING, "num_train_epochs": 2},
        "metrics": {"names": ["perplexity", "exact_match", "chrf"], "best": "perplexity", "generate_examples": 4},
        "generation": {"max_new_tokens": 6},
        "predict": {"examples": ["Caption: A dog runs.\nShort:"]},
    }
    manifest.write_text(tomli_w.dumps(tables))
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert "packing: each batch's examples end to end in one row" in result.out
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]))
    assert 0 <= results["eval_exact_match"] <= 1 and 0 <= results["eval_chrf"] <= 100
    assert json.loads((out / "generation_config.json").read_text())["max_new_tokens"] == 6
    generated = pipeline("text-generation", model=str(out))(tables["predict"]["examples"][0], return_full_text=False)[0]["generated_text"]
    saved = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert saved["generated_text"] == generated  # greedy: the saved model generates as the run did
    predicted = ftrun_cli("predict", "--model", out, "--json", tables["predict"]["examples"][0])
    assert predicted.code == 0, predicted
    assert json.loads(predicted.out)["generated_text"] == generated


def test_a_chat_model_answers_a_text_as_a_users_turn(ftrun_cli, ftrun_manifest, tmp_path):
    data = {**files(tmp_path, CHATS), "messages_column": "messages"}
    manifest = ftrun_manifest({"task": "causal-lm", "model": MODEL, "data": data, "training": TINY_TRAINING, "generation": {"max_new_tokens": 4}})
    out = tmp_path / "out"
    assert ftrun_cli("--manifest", manifest, "--output-dir", out).code == 0
    chat = [{"role": "user", "content": "What is in picture 3?"}]
    expected = pipeline("text-generation", model=str(out))([chat], return_full_text=False)[0][0]["generated_text"]
    as_text = ftrun_cli("predict", "--model", out, "--json", chat[0]["content"])
    as_chat = ftrun_cli("predict", "--model", out, "--json", "--json-input", json.dumps({"messages": chat}))
    assert json.loads(as_text.out)["generated_text"] == json.loads(as_chat.out)["generated_text"] == expected
    bad = ftrun_cli("predict", "--model", out, "--json-input", json.dumps({"turns": chat}))
    assert bad.code == 2 and 'predicts on a text, or on {"messages": [{"role": ..., "content": ...}, ...]}' in bad.err


def test_the_demo_runs_offline_on_the_embedded_captions(ftrun_cli, tmp_path):
    out = tmp_path / "out"
    result = ftrun_cli("--task", "causal-lm", "--demo", "--output-dir", out, "--set", "training.max_steps=4")
    assert result.code == 0, result
    assert "train: 4000 examples" in result.out and "eval: 300 examples" in result.out
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]))


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "overrides", "words"),
    [
        ({"prompt_column": "prompt"}, [], ("data", "completion_column: needed as well")),
        ({"text_column": "body"}, [], ("data.text_column", "column 'body' not in the train split")),
        (PROMPTS, ["metrics.names=['rouge']"], ("metrics.names", "'rouge'", "exact_match")),
        ({}, ["metrics.names=['chrf']"], ("metrics.names", "set metrics.generate_examples")),
        ({}, ["metrics.names=['chrf']", "metrics.generate_examples=2"], ("metrics.generate_examples", "prompt/completion or chat")),
    ],
)
def test_bad_settings_are_one_line(ftrun_cli, ftrun_manifest, tmp_path, data, overrides, words):
    rows = files(tmp_path, PAIRS) if "prompt_column" in data else texts(tmp_path)
    manifest = ftrun_manifest({"task": "causal-lm", "model": MODEL, "data": {**rows, **data}})
    result = ftrun_cli("check", "--manifest", manifest, *(arg for override in overrides for arg in ("--set", override)))
    assert result.code == 2, result
    line = result.err.strip()
    assert len(line.splitlines()) == 1 and all(word in line for word in words), line


@pytest.mark.parametrize(("rows", "hint"), [(PAIRS, "set data.prompt_column and data.completion_column"), (CHATS, "set data.messages_column")])
def test_data_of_another_form_gets_a_hint(task, tmp_path, rows, hint):
    with pytest.raises(FtrunError, match=rf"data.text_column: column .text. not in the train split .*: for .*, {hint}"):
        load_data(task, config_for(tmp_path, files(tmp_path, rows)))


def test_a_bad_chat_row_is_named(task, tmp_path):
    rows = [dict(chat) for chat in CHATS]
    rows[10] = {"messages": [{"role": "user", "content": "Hello?"}]}
    with pytest.raises(FtrunError, match=r"data.messages_column: row 3 of .*train.jsonl has no assistant turn to learn"):
        load_data(task, config_for(tmp_path, {**files(tmp_path, rows), "messages_column": "messages"}))


def test_the_generation_table_belongs_to_causal_lm(ftrun_cli, tmp_path):
    result = ftrun_cli("check", "--task", "text-classification", "--demo", "--set", "generation.max_new_tokens=5")
    assert result.code == 2, result
    assert "generation: read by the tasks that generate with a causal LM (causal-lm, preference)" in result.err
