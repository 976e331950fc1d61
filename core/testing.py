"""ftrun's pytest plugin: fixtures to test ftrun plugins, and ftrun itself, offline.

Registered through the ``pytest11`` entry point, so the tests of any project in an
environment with ftrun installed can ask for these fixtures by name (docs/plugins.md):

- ``cli``: ``ftrun ARGS`` run in-process → :class:`Result` (exit code, output, output directory);
- ``make_plugin_manager``: a fresh plugin manager with extra plugin modules or objects;
- ``plugin_module``: write a plugin module from source and make it importable;
- ``write_manifest``: a TOML manifest from a dict of tables;
- ``tiny_bert``, ``tiny_t5``: small "pretrained" model directories with trained tokenizers;
- ``reviews``, ``tiny_manifest``: real review data, and a text-classification run of seconds.

pytest imports this module before any ``conftest.py``, in every test session of an
environment where ftrun is installed, even for projects that have nothing to do with
ftrun. So importing it must stay cheap and change nothing: it sets no environment
variable, and nothing here imports torch, transformers or datasets until a fixture runs.
That leaves a project's ``conftest.py`` free to set ``HF_HUB_OFFLINE`` and
``HF_DATASETS_CACHE`` first, which the Hugging Face libraries read once, when imported.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import pytest
import tomli_w

if TYPE_CHECKING:
    from .plugin_manager import PluginManager
    from .runner import RunResult

#: Training settings small enough for a unit test: one quick epoch.
TINY_TRAINING: dict[str, Any] = {
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "warmup_steps": 0,
    "learning_rate": 1e-3,
    "logging_steps": 2,
}
#: A ``[model] config`` for a BERT encoder small enough to train in a second.
TINY_BERT: dict[str, Any] = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}
#: A ``[model] config`` for a T5 encoder-decoder small enough to train in a second.
TINY_T5: dict[str, Any] = {
    "model_type": "t5",
    "d_model": 32,
    "d_ff": 64,
    "d_kv": 16,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "num_heads": 2,
}


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


def files_under(path: Path) -> dict[str, float]:
    """Every file below ``path`` with its modification time: to prove nothing was written."""
    return {str(p): p.stat().st_mtime for p in path.rglob("*") if p.is_file()}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON lines, one of the local data formats a manifest can name."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@dataclasses.dataclass(repr=False)
class Result:
    """What an in-process ``ftrun`` command gave back."""

    code: int
    out: str
    err: str
    run: RunResult | None = None
    """The run's own result (metrics, predictions, tokenized data), for the ``run`` command."""

    @property
    def output_dir(self) -> Path | None:
        """Where the run wrote the model and its results; ``None`` when nothing ran."""
        return self.run.output_dir if self.run else None

    def __repr__(self) -> str:  # what a failed ``assert result.code == 0, result`` shows
        return f"Result(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """cli(*args, stdin=None) -> Result: ``ftrun ARGS`` run in this process, its output captured."""
    import ftrun.runner
    from ftrun.cli import main

    runs: list[RunResult] = []
    real_run = ftrun.runner.run

    def recorded_run(*args: Any, **kwargs: Any) -> RunResult:
        runs.append(real_run(*args, **kwargs))
        return runs[-1]

    # The run command looks up runner.run when it starts: recording its result here gives the
    # test the run's output directory and metrics, without reading them off the terminal.
    monkeypatch.setattr(ftrun.runner, "run", recorded_run)

    def call(*args: Any, stdin: str | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        runs.clear()
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return Result(code, out, err, runs[-1] if runs else None)

    return call


@pytest.fixture
def make_plugin_manager() -> Callable[..., PluginManager]:
    """make_plugin_manager(*plugins, blocked=()) -> a fresh plugin manager, as a run builds it.

    It holds ftrun's default stages, every installed plugin but the ``blocked`` names, and
    ``plugins``: module names (as ``--plugin`` takes them) or objects with hook implementations.
    """
    from ftrun.plugin_manager import get_plugin_manager

    def make(*plugins: str | object, blocked: Iterable[str] = ()) -> PluginManager:
        return get_plugin_manager(plugins=plugins, blocked=blocked)

    return make


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """plugin_module(name, source) -> name: writes an importable module (for ``--plugin NAME``)."""
    folder = tmp_path / "plugin-modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return name

    yield write
    for name in written:  # so that another test can write a module of the same name
        sys.modules.pop(name, None)


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """write_manifest(tables, name="run.toml") -> path of a TOML manifest holding ``tables``."""

    def write(tables: dict[str, Any], name: str = "run.toml") -> Path:
        path = tmp_path / name
        path.write_text(tomli_w.dumps(tables), encoding="utf-8")
        return path

    return write


@pytest.fixture
def reviews(tmp_path: Path) -> tuple[Path, Path]:
    """train.jsonl (48 rows) and eval.jsonl (16) of short real reviews, string labels neg / pos."""
    return (
        write_jsonl(tmp_path / "train.jsonl", sample_reviews("imdb-train", 48)),
        write_jsonl(tmp_path / "eval.jsonl", sample_reviews("imdb-eval", 16)),
    )


@pytest.fixture
def tiny_manifest(reviews: tuple[Path, Path], write_manifest: Callable[..., Path]) -> Path:
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


def save_tiny_pretrained(directory: Path, settings: dict[str, Any], tokenizer: Any, auto_model: type) -> Path:
    """Save a randomly initialised model of ``settings`` (a ``[model] config``) with ``tokenizer``."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(**settings, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    auto_model.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local "pretrained" BERT encoder directory (weights, config, WordPiece tokenizer), built offline."""
    from transformers import AutoModel

    from ftrun.tokenizer import train_tokenizer

    texts = (row["text"] for row in sample_reviews(limit=200))
    tokenizer = train_tokenizer(texts, model_type="bert", vocab_size=500, model_max_length=128)
    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-bert"), TINY_BERT, tokenizer, AutoModel)


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local "pretrained" T5 encoder-decoder directory (weights, config, Unigram tokenizer), built offline."""
    from transformers import AutoModelForSeq2SeqLM

    from ftrun.tokenizer import train_tokenizer

    texts = (row["text"] for row in sample_reviews(limit=200))
    tokenizer = train_tokenizer(texts, model_type="t5", vocab_size=500, model_max_length=128)
    # As T5's checkpoints say (its config class leaves them to them): decoding starts from the pad token.
    ids = {"eos_token_id": tokenizer.eos_token_id, "decoder_start_token_id": tokenizer.pad_token_id}
    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-t5"), {**TINY_T5, **ids}, tokenizer, AutoModelForSeq2SeqLM)
