"""Summarization on real news (needs ../shared; skipped without it): Reuters articles and their headlines.

No summarization corpus is available offline, but CoNLL-2003's text is Reuters news of 1996 in
document order, each story as its headline, a byline perhaps, a dateline ("BRUSSELS
1996-08-22") and its sentences: the headline of a story is a one-line summary of its lead, the
pairs of the Hub's Gigaword headline-generation task. :func:`headline_pairs` recovers them
(the embedded demo sample of the summarization task was made with it), and a small T5 built
from a config learns to write them.
"""

import json
import re
from pathlib import Path

import pytest
from conftest import SHARED

from ftrun.plugins.summarization import SummarizationTask
from ftrun.testing import write_jsonl

CONLL = SHARED / "data" / "conll2003"
#: A story's dateline: a place and the date, e.g. "BRUSSELS 1996-08-22".
DATELINE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CONLL.is_dir(), reason="../shared/data/conll2003 is absent")]


def detokenize(tokens: list[str]) -> str:
    """CoNLL's tokens as running text: no space before punctuation or after an opening bracket, clitics joined."""
    text = " ".join(tokens)
    text = re.sub(r" ([.,;:!?%)])", r"\1", text)
    text = re.sub(r"([($]) ", r"\1", text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    return re.sub(r'" (.*?) "', r'"\1"', text)


def headline_pairs(path: Path, lead: int = 1) -> list[dict[str, str]]:
    """``{"document": the story's first ``lead`` sentences, "summary": its headline}`` of each story of a CoNLL-2003 file."""
    sentences = [json.loads(line)["tokens"] for line in path.read_text(encoding="utf-8").splitlines()]
    datelines = [i for i, tokens in enumerate(sentences) if i and 2 <= len(tokens) <= 8 and DATELINE.match(tokens[-1])]
    pairs = []
    for n, i in enumerate(datelines):
        headline = i - 1
        byline = sentences[headline]
        if headline and len(byline) <= 3 and all(token[:1].isupper() for token in byline) and byline[-1] not in ".!?":
            headline -= 1  # "Peter Blackburn", between the headline and the dateline
        end = datelines[n + 1] - 1 if n + 1 < len(datelines) else len(sentences)
        body = sentences[i + 1 : end][:lead]
        if body and len(sentences[headline]) >= 3:
            pairs.append({"document": " ".join(detokenize(tokens) for tokens in body), "summary": detokenize(sentences[headline])})
    return pairs


def test_t5_from_a_config_writes_reuters_headlines(ftrun_cli, ftrun_manifest, tmp_path, record_property):
    train = write_jsonl(tmp_path / "train.jsonl", headline_pairs(CONLL / "train.jsonl"))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", headline_pairs(CONLL / "validation.jsonl"))
    # The demo's model, lengths and schedule, on every story of CoNLL-2003's train and validation files.
    demo = SummarizationTask.demo
    data = {**demo["data"], "train_file": str(train), "eval_file": str(evaluation)}
    manifest = ftrun_manifest({"task": "summarization", **demo, "data": data})
    out = tmp_path / "reuters-t5"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert "train: 907 examples" in result.out and "eval: 213 examples" in result.out
    metrics = json.loads((out / "eval_results.json").read_text())
    train_results = json.loads((out / "train_results.json").read_text())
    first = next(entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "eval_rouge1" in entry)
    record_property(
        "figure",
        f"T5 (2 layers, d_model 128) from scratch on 907 Reuters stories (CoNLL-2003), first sentence → headline, 10 epochs: "
        f"ROUGE-1 {metrics['eval_rouge1']:.2f} (after epoch 1: {first['eval_rouge1']:.2f}), ROUGE-2 {metrics['eval_rouge2']:.2f}, "
        f"ROUGE-L {metrics['eval_rougeL']:.2f} of greedy headlines of the 213 validation stories (mean length {metrics['eval_gen_len']:.1f} tokens); "
        f"train {train_results['train_samples_per_second']:.1f} samples/s",
    )
    # So little data teaches a model from scratch the headlines' words, not to summarize (the first
    # 10 words of each story score ROUGE-1 37): the test holds the flow, and that it learns.
    assert metrics["eval_rouge1"] > first["eval_rouge1"]
    (prediction,) = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert prediction["summary_text"]
