"""Causal language modelling on real text (needs ../shared; skipped without it).

No pretrained decoder is available offline, so a small GPT-2 is built from a config and its
byte-level BPE trained on the data: the whole causal-lm flow on real IMDB reviews (plain text
packed into blocks) and on real Multi30k pairs written as prompts and completions.
"""

import json
import math

import pytest
from conftest import SHARED, short_and_full

from ftrun.testing import write_jsonl

IMDB = SHARED / "data" / "imdb"
MULTI30K = SHARED / "data" / "multi30k"
#: 2 layers of width 128: learns in a couple of minutes on two CPU cores.
SMALL_GPT2 = {"model_type": "gpt2", "n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 256}

pytestmark = pytest.mark.integration


@pytest.mark.skipif(not IMDB.is_dir(), reason="../shared/data/imdb is absent")
def test_gpt2_from_a_config_models_imdb_reviews(ftrun_cli, ftrun_manifest, tmp_path, record_property):
    vocabulary = 4000
    manifest = ftrun_manifest(
        {
            "task": "causal-lm",
            "model": {"config": SMALL_GPT2, "tokenizer_vocab_size": vocabulary, "tokenizer_lowercase": False},
            "data": {
                "train_file": str(IMDB / "train.jsonl.gz"),
                "eval_file": str(IMDB / "dev.jsonl.gz"),
                "max_train_samples": 600,
                "max_eval_samples": 100,
                "block_size": 128,
            },
            "training": {"num_train_epochs": 2, "learning_rate": 2e-3, "warmup_steps": 0, "per_device_train_batch_size": 16},
            "predict": {"examples": ["This movie was"]},
        }
    )
    out = tmp_path / "imdb-gpt2"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    metrics = json.loads((out / "eval_results.json").read_text())
    train = json.loads((out / "train_results.json").read_text())
    record_property(
        "figure",
        f"GPT-2 (2 layers, n_embd 128) from scratch on 600 IMDB reviews in blocks of 128 tokens, 2 epochs at 2e-3: eval loss "
        f"{metrics['eval_loss']:.3f}, perplexity {metrics['eval_perplexity']:.1f} on 100 dev reviews (vocabulary {vocabulary}); "
        f"train {train['train_samples_per_second']:.1f} blocks/s",
    )
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    # Untrained, a model spreads its guesses over the vocabulary (perplexity near 4000).
    assert metrics["eval_perplexity"] < vocabulary / 10
    (prediction,) = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert prediction["generated_text"].strip()


#: Under what each size measured: perplexity 79.7 and chrF 20.2 on 6,000 pairs, 160.8 and 10.8 on 2,000 (an
#: untrained model's perplexity is near its vocabulary of 4000).
@pytest.mark.skipif(not MULTI30K.is_dir(), reason="../shared/data/multi30k is absent")
@short_and_full(("pairs", "perplexity_bound", "chrf_floor"), (2000, 250, 7), (6000, 120, 15))
def test_gpt2_from_a_config_learns_completions_of_multi30k_prompts(ftrun_cli, ftrun_manifest, tmp_path, record_property, pairs, perplexity_bound, chrf_floor):
    """English captions as prompts, their German translations as completions: the loss is on the German only."""
    files = {}
    for split, count in (("train", pairs), ("validation", 200)):
        lines = (MULTI30K / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:count]
        translations = [json.loads(line)["translation"] for line in lines]
        rows = [{"prompt": f"English: {pair['en']}\nGerman:", "completion": f" {pair['de']}"} for pair in translations]
        files[split] = str(write_jsonl(tmp_path / f"{split}.jsonl", rows))
    manifest = ftrun_manifest(
        {
            "task": "causal-lm",
            "model": {"config": SMALL_GPT2, "tokenizer_vocab_size": 4000, "tokenizer_lowercase": False},
            "data": {"train_file": files["train"], "eval_file": files["validation"], "prompt_column": "prompt", "completion_column": "completion"},
            "training": {"num_train_epochs": 2, "learning_rate": 2e-3, "warmup_steps": 0, "per_device_train_batch_size": 32},
            "metrics": {"names": ["perplexity", "chrf"], "best": "perplexity", "generate_examples": 100},
            "generation": {"max_new_tokens": 40},
            "predict": {"examples": ["English: A dog runs on the beach.\nGerman:"]},
        }
    )
    out = tmp_path / "multi30k-gpt2"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert "packing: each batch's examples end to end in one row" in result.out
    metrics = json.loads((out / "eval_results.json").read_text())
    train = json.loads((out / "train_results.json").read_text())
    record_property(
        "figure",
        f"GPT-2 (2 layers, n_embd 128) from scratch on {pairs} Multi30k en-de prompt/completion pairs, 2 epochs at 2e-3, packed: "
        f"completion loss {metrics['eval_loss']:.3f}, perplexity {metrics['eval_perplexity']:.1f} on 200 validation pairs, "
        f"chrF {metrics['eval_chrf']:.1f} of 100 greedy completions; train {train['train_samples_per_second']:.1f} samples/s",
    )
    assert metrics["eval_perplexity"] < perplexity_bound and metrics["eval_chrf"] > chrf_floor
    (prediction,) = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert prediction["generated_text"].strip()
