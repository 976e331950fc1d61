"""ftrun's own test setup: everything offline, in a throwaway datasets cache.

The ``ftrun_*`` fixtures (ftrun_cli, ftrun_manifest, ftrun_tiny_bert, ...) come from ftrun's
pytest plugin, ``ftrun.testing``, which plugin authors use too. What is text-classification's
own (real IMDB reviews from its embedded sample, a run of seconds on them) is here.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import pytest

# Before any Hugging Face library is imported: never touch the network, and keep the
# datasets cache (where tokenized splits are cached) out of the user's home. pytest imports
# ftrun.testing before this file, which is why that module imports none of them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="ftrun-test-datasets-"))
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from ftrun.testing import TINY_BERT, TINY_TRAINING, write_jsonl  # noqa: E402 - cheap, imports no Hugging Face library

# ftrun.testing is loaded through its pytest11 entry point already; named here too, so that
# ftrun's own tests keep their fixtures where entry points are not loaded
# (PYTEST_DISABLE_PLUGIN_AUTOLOAD). pytester runs the test suites of plugins written on the fly;
# forking starts the runs that tests kill (forking.py).
pytest_plugins = ["ftrun.testing", "pytester", "forking"]

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _only_ftrun_s_plugins(ftrun_no_installed_plugins):
    """ftrun's own behaviour, whatever else is installed: a plugin from another distribution (the README's
    ftrun-mcc adds a metric to every text-classification run) is blocked in every test."""


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow: the longest integration tests at full size")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only with --slow: the suite's default (and CI's) keeps their short forms."""
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def short_and_full(names: str, short: tuple, full: tuple):
    """Parametrize a test in two sizes: ``short`` by default, ``full`` (marked slow) with --slow."""
    return pytest.mark.parametrize(names, [pytest.param(*short, id="short"), pytest.param(*full, id="full", marks=pytest.mark.slow)])


def sample_reviews(name: str = "imdb-train", limit: int = 48) -> list[dict]:
    """Real IMDB reviews (labels ``neg`` / ``pos``) from text-classification's embedded sample, shortened."""
    import ftrun.plugins  # only the package's folder: the task module would import transformers

    folder = Path(ftrun.plugins.__file__).parent / "text_classification" / "data"
    rows = []
    with gzip.open(folder / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            rows.append({"text": row["text"][:300], "label": ["neg", "pos"][row["label"]]})
            if len(rows) == limit:
                break
    return rows


#: Each built-in task but text classification on its embedded sample, cut to runs of seconds:
#: its ``[data]`` (files relative to the plugins' folder, see :func:`embedded_data`) and the ``[training]`` it needs.
EMBEDDED = {
    "causal-lm": {"data": {"train_file": "causal_lm/data/captions-train.jsonl.gz", "eval_file": "causal_lm/data/captions-eval.jsonl.gz", "block_size": 32}},
    "ner": {"data": {"train_file": "ner/data/train.conll", "eval_file": "ner/data/eval.conll", "max_length": 64}},
    "question-answering": {
        "data": {
            "train_file": "question_answering/data/squad-train.jsonl.gz",
            "eval_file": "question_answering/data/squad-eval.jsonl.gz",
            "max_length": 128,
            "doc_stride": 32,
            "max_train_samples": 8,  # a SQuAD context makes several windows
        },
    },
    "summarization": {
        "data": {
            "train_file": "summarization/data/reuters-train.jsonl.gz",
            "eval_file": "summarization/data/reuters-eval.jsonl.gz",
            "max_source_length": 48,
            "max_target_length": 12,
        },
        "training": {"generation_num_beams": 1},
    },
    "multiple-choice": {
        "data": {"train_file": "multiple_choice/data/squad-mc-train.jsonl.gz", "eval_file": "multiple_choice/data/squad-mc-eval.jsonl.gz", "max_length": 128},
    },
    "translation": {
        "data": {
            "train_file": "translation/data/multi30k-train.jsonl.gz",
            "eval_file": "translation/data/multi30k-eval.jsonl.gz",
            "source_lang": "en",
            "target_lang": "de",
            "max_source_length": 32,
            "max_target_length": 16,
        },
        "training": {"generation_num_beams": 1},
    },
    # Clips of half a second cut to 0.3 s: a random stretch of each at train time.
    "audio-classification": {
        "data": {"train_file": "audio_classification/data/train", "eval_file": "audio_classification/data/eval", "max_duration_seconds": 0.3}
    },
}


def embedded_data(task: str) -> dict:
    """``EMBEDDED[task]``'s ``[data]``, its files as absolute paths."""
    import ftrun.plugins

    folder = Path(ftrun.plugins.__file__).parent
    return {key: str(folder / value) if key.endswith("_file") else value for key, value in EMBEDDED[task]["data"].items()}


@pytest.fixture
def reviews(tmp_path: Path) -> tuple[Path, Path]:
    """train.jsonl (48 rows) and eval.jsonl (16) of short real reviews, string labels neg / pos."""
    return (
        write_jsonl(tmp_path / "train.jsonl", sample_reviews("imdb-train", 48)),
        write_jsonl(tmp_path / "eval.jsonl", sample_reviews("imdb-eval", 16)),
    )


@pytest.fixture
def tiny_manifest(reviews, ftrun_manifest) -> Path:
    """A complete offline text-classification manifest that trains in a few seconds."""
    train, evaluation = reviews
    return ftrun_manifest(
        {
            "task": "text-classification",
            "model": {"config": TINY_BERT, "tokenizer_vocab_size": 500},
            "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 64},
            "training": TINY_TRAINING,
            "predict": {"examples": ["A wonderful film.", "Dull and far too long."]},
        }
    )


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished text-classification run (a checkpoint every 2 steps), trained once: copy it (shutil.copytree) to spoil it."""
    import tomli_w

    from ftrun.cli import main

    folder = tmp_path_factory.mktemp("finished-run")
    train, evaluation = (
        write_jsonl(folder / "train.jsonl", sample_reviews("imdb-train", 16)),
        write_jsonl(folder / "eval.jsonl", sample_reviews("imdb-eval", 8)),
    )
    tables = {
        "task": "text-classification",
        "model": {"config": TINY_BERT, "tokenizer_vocab_size": 300},
        "data": {"train_file": str(train), "eval_file": str(evaluation), "max_length": 32},
        "training": {**TINY_TRAINING, "save_strategy": "steps", "save_steps": 1, "eval_strategy": "steps", "eval_steps": 1},
    }
    (folder / "run.toml").write_text(tomli_w.dumps(tables), encoding="utf-8")
    assert main(["--manifest", str(folder / "run.toml"), "--output-dir", str(folder / "run")]) == 0
    return folder / "run"


def pytest_terminal_summary(terminalreporter):
    """Show the figures integration tests measured (accuracy, throughput) at the end of the run."""
    figures = [value for report in terminalreporter.stats.get("passed", []) for key, value in report.user_properties if key == "figure"]
    if figures:
        terminalreporter.section("measured figures")
        for figure in figures:
            terminalreporter.write_line(figure)


@pytest.fixture
def fails(ftrun_fails):
    """fails(*args, words, stdin=None): the test kit's ``ftrun_fails``, as ftrun's own tests have long called it."""
    return ftrun_fails
