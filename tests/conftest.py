"""Fixtures: everything offline, tiny models built from a config, data files written per test."""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path

# Before any Hugging Face library is imported: never touch the network, and keep the
# datasets cache (where tokenized splits are cached) out of the user's home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="ftrun-test-datasets-"))
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402

from ftrun.cli import main  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "plugins" / "text_classification" / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"

#: Training settings small enough for a unit test: one quick epoch.
TINY_TRAINING = {
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "warmup_steps": 0,
    "learning_rate": 1e-3,
    "logging_steps": 2,
}
TINY_BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}


def sample_reviews(name: str = "imdb-train", limit: int = 48) -> list[dict]:
    """Real IMDB reviews from the package's embedded sample, shortened for speed."""
    rows = []
    with gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            rows.append({"text": row["text"][:300], "label": ["neg", "pos"][row["label"]]})
            if len(rows) == limit:
                break
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def reviews(tmp_path: Path) -> tuple[Path, Path]:
    """train.jsonl and eval.jsonl of short real reviews with string labels neg/pos."""
    return (
        write_jsonl(tmp_path / "train.jsonl", sample_reviews("imdb-train", 48)),
        write_jsonl(tmp_path / "eval.jsonl", sample_reviews("imdb-eval", 16)),
    )


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture
def write_manifest(tmp_path: Path):
    """write_manifest(tables, name=...) -> path of a TOML manifest built from a dict of tables."""

    def write(tables: dict, name: str = "run.toml") -> Path:
        lines = []
        for key, value in tables.items():
            if not isinstance(value, dict):
                lines.append(f"{key} = {toml_value(value)}")
        for key, value in tables.items():
            if isinstance(value, dict):
                lines.append(f"\n[{key}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture
def tiny_manifest(reviews, write_manifest, tmp_path):
    """A complete offline text-classification manifest that trains in a few seconds."""
    train, evaluation = reviews
    return write_manifest(
        {
            "task": "text-classification",
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
            "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
            "training": TINY_TRAINING,
            "predict": {"examples": ["A wonderful film.", "Dull and far too long."]},
        }
    )


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*args, stdin=None) -> Result(code, out, err): ftrun run in-process."""

    def call(*args: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            import io

            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    """A local 'pretrained' BERT directory (weights, config, tokenizer), built offline."""
    from transformers import BertConfig, BertModel

    from ftrun.tokenizer import train_wordpiece

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = train_wordpiece((row["text"] for row in sample_reviews(limit=200)), vocab_size=500, model_max_length=128)
    settings = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    model = BertModel(BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **settings))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def files_under(path: Path) -> dict[str, float]:
    """Every file below ``path`` with its modification time: to prove nothing was written."""
    return {str(p): p.stat().st_mtime for p in path.rglob("*") if p.is_file()}


def pytest_terminal_summary(terminalreporter):
    """Show the figures integration tests measured (accuracy, throughput) at the end of the run."""
    figures = [value for report in terminalreporter.stats.get("passed", []) for key, value in report.user_properties if key == "figure"]
    if figures:
        terminalreporter.section("measured figures")
        for figure in figures:
            terminalreporter.write_line(figure)
