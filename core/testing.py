"""ftrun's pytest plugin: fixtures to test ftrun plugins, and ftrun itself, offline.

Registered through the ``pytest11`` entry point, so the tests of any project in an
environment with ftrun installed can ask for these fixtures by name (docs/plugins.md). Each
name starts with ``ftrun_``, so that none clashes with a project's own ``cli`` or ``config``:

- ``ftrun_cli``: ``ftrun ARGS`` run in-process → :class:`Result` (exit code, output, output directory);
- ``ftrun_fails``: ``ftrun ARGS`` must refuse bad input as ftrun does: one line, exit code 2, nothing written;
- ``ftrun_config``: a validated :class:`~ftrun.manifest.config.RunConfig` from a dict of tables, as a run builds it;
- ``ftrun_plugin_manager``: a fresh plugin manager with extra plugin modules or objects;
- ``ftrun_plugin_module``: write a plugin module from source and make it importable;
- ``ftrun_no_installed_plugins``: block the plugins installed from other distributions, for tests of ftrun's own behaviour;
- ``ftrun_manifest``: a TOML manifest from a dict of tables;
- ``ftrun_tiny_bert``, ``ftrun_tiny_t5``, ``ftrun_tiny_gpt2``: small "pretrained" model directories
  with tokenizers trained on :data:`TINY_CORPUS`, English text of no task in particular;
- ``ftrun_tiny_vit``: a small "pretrained" ViT image encoder with its image processor (no tokenizer).

Outside a fixture, :func:`make_config` builds a config as ``ftrun_config`` does. A plugin's
tests bring their own rows (:func:`write_jsonl`; :data:`TINY_ROWS` has a few of each built-in
task's, to start from) and settings small enough to train in seconds (:data:`TINY_BERT`,
:data:`TINY_T5`, :data:`TINY_GPT2`, :data:`TINY_VIT`, :data:`TINY_TRAINING`).

pytest imports this module before any ``conftest.py``, in every test session of an
environment where ftrun is installed, even for projects that have nothing to do with
ftrun. So importing it must stay cheap and change nothing: it sets no environment
variable, and nothing here imports torch, transformers or datasets until a fixture runs.
That leaves a project's ``conftest.py`` free to set ``HF_HUB_OFFLINE`` and
``HF_DATASETS_CACHE`` first, which the Hugging Face libraries read once, when imported.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from ftrun.api.plugin_manager import PluginManager
    from ftrun.manifest.config import RunConfig
    from ftrun.runner import RunResult

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
#: A ``[model] config`` for a GPT-2 decoder small enough to train in a second.
TINY_GPT2: dict[str, Any] = {"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 128}
#: A ``[model] config`` for a ViT image encoder (32×32 RGB images in 8×8 patches) small enough to train in a second.
TINY_VIT: dict[str, Any] = {
    "model_type": "vit",
    "image_size": 32,
    "patch_size": 8,
    "num_channels": 3,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
#: A few good rows of each built-in task's data, as JSON lines hold them (``write_jsonl``): what a test spoils, row by row.
TINY_ROWS: dict[str, list[dict[str, Any]]] = {
    "text-classification": [{"text": "A film.", "label": "pos"}, {"text": "Dull.", "label": "neg"}] * 2,
    "ner": [{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}, {"tokens": ["Peter"], "ner_tags": ["B-PER"]}] * 2,
    "translation": [{"translation": {"en": "A dog.", "de": "Ein Hund."}}, {"translation": {"en": "A cat.", "de": "Eine Katze."}}] * 2,
    "question-answering": [
        {"id": f"q{i}", "question": question, "context": context, "answers": {"text": [answer], "answer_start": [context.index(answer)]}}
        for i, (question, context, answer) in enumerate([("Who wrote it?", "It was written by Ada.", "Ada"), ("Where is it?", "It is in Rome.", "Rome")] * 2, 1)
    ],
}
#: Plain English sentences of no task in particular, which the tiny models' tokenizers are
#: trained on: every letter in both cases, every digit and the common punctuation occur, so
#: that a vocabulary of a few hundred pieces spells any English text without unknown tokens.
TINY_CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "Pack my box with five dozen liquor jugs; then zip it, quickly.",
    "Jackdaws love my big sphinx of quartz?",
    "How vexingly quick daft zebras jump: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9.",
    "We met at 10:30 on 2024-06-15 (a Saturday) and walked 7.5 km.",
    'She said, "It\'s not far - only 3 stops."',
    "Prices rose by 12% in a year: a loaf now costs $2.49, or about 2 euros.",
    "Email me at name@example.com, or call +1 (555) 010-2938.",
    "The meeting moved from room 4B to room 12A; please don't be late.",
    "Rivers carry water from the hills to the sea, and rain fills them again.",
    "A small town sat between two mountains, far from any city.",
    "My neighbour grows tomatoes, beans, peppers and herbs in her garden.",
    "The train leaves at 6:45 a.m. and arrives just after noon.",
    "Children played in the park while their parents talked on the benches.",
    "He read the letter twice, folded it, and put it back in the envelope.",
    "Open the window, will you? It's warm in here.",
    "Our team finished the project on time & under budget.",
    "The library opens at nine; the museum opens at ten.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Why would anyone wait in the rain for a bus that never comes?",
    "The recipe needs 2 cups of flour, 1 egg, and a pinch of salt.",
    "Birds flew south over the quiet valley as winter came.",
    "I can't find my keys; have you seen them anywhere?",
    "In 1969, people watched the first landing on the Moon.",
    "The doctor asked her to rest for a week and drink more water.",
    "Turn left at the bridge, then right at the old church.",
    "Questions, answers, notes and numbers filled the whole page.",
    "Every morning he jogs 5 miles, rain or shine.",
    "The shop sells fresh bread, cheese, fruit and vegetables.",
    "Yesterday was cold and windy; today is bright and calm.",
    "You'll need a ticket, a passport and a little patience.",
    "Zoe, Xavier, Quentin and Yusuf joined the club in July.",
    "Kim wrote 3/4 of the report; Ivan wrote the rest.",
    "The old clock in the hall struck twelve at midnight.",
    "Good ideas often start as small, simple questions.",
    "Write clearly, check your work, and ask for help when you need it.",
    "The company hired 250 new workers across 8 offices.",
    "A cat slept on the warm windowsill all afternoon.",
    "Is it true that the road is closed until Friday?",
    "Volunteers cleaned the beach and collected 40 bags of rubbish.",
    "Go to page 17, section 2.3, for the full list of rules.",
    "Order #305 shipped; use * for emphasis and [brackets], {braces} or <angles> for notes.",
    "Sums like 2 + 2 = 4, x^2 and a_b | c are common; ~5 means about five.",
    "Files live in C:\\Users\\docs or /home/docs, and `code` goes in backticks.",
    "It’s “quoted” text — with curly quotes… and a long dash.",
)


def files_under(path: Path) -> dict[str, float]:
    """Every file below ``path`` with its modification time: to prove nothing was written."""
    return {str(p): p.stat().st_mtime for p in path.rglob("*") if p.is_file()}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON lines, one of the local data formats a manifest can name."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def make_config(
    tables: dict[str, Any],
    *plugins: str | object,
    base_dir: str | Path | None = None,
    overrides: Iterable[str] = (),
    blocked: Iterable[str] = (),
    source: str = "run.toml",
) -> RunConfig:
    """The validated RunConfig a run builds from a manifest holding ``tables``; FtrunError if it is bad.

    As ``ftrun run`` does: the manifest's ``plugins`` and ``plugins`` (module names or objects
    with hook implementations) join a fresh plugin manager without the ``blocked`` names,
    ``tables["task"]`` names the task, whose defaults the tables and the ``overrides``
    (``section.key=value``, as ``--set`` takes them) are laid over, and every table is
    validated. Relative paths are resolved against ``base_dir`` (the current directory by
    default); errors name ``source``, as they would a manifest file of that name.
    """
    from ftrun.api.load import load_run

    manifest = tomllib.loads(tomli_w.dumps(tables))  # what a manifest file of these tables gives a run
    _, config = load_run(manifest=manifest, overrides=overrides, plugins=plugins, blocked=blocked, source=source, base_dir=base_dir)
    return config


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
def ftrun_cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """ftrun_cli(*args, stdin=None) -> Result: ``ftrun ARGS`` run in this process, its output captured."""
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
def ftrun_fails(ftrun_cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """ftrun_fails(*args, words, stdin=None) -> the line: ``ftrun ARGS`` refuses with one ``ftrun: error:`` line holding every word.

    What ftrun promises of bad input: exit code 2, no traceback, that one line on stderr, and
    nothing written or changed under ``tmp_path``, which is the working directory (so a
    default output directory would land there too).
    """
    monkeypatch.chdir(tmp_path)

    def call(*args: Any, words: Iterable[str], stdin: str | None = None) -> str:
        before = files_under(tmp_path), sorted(tmp_path.rglob("*"))
        result = ftrun_cli(*args, stdin=stdin)
        assert result.code == 2, result
        assert "Traceback" not in result.err and "Traceback" not in result.out, result
        lines = result.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ftrun: error: "), result
        for word in words:
            assert word in lines[0], (word, lines[0])
        assert (files_under(tmp_path), sorted(tmp_path.rglob("*"))) == before, "files or folders written or changed"
        return lines[0]

    return call


@pytest.fixture
def ftrun_config(tmp_path: Path) -> Callable[..., RunConfig]:
    """ftrun_config(tables, *plugins, overrides=(), blocked=()) -> the validated RunConfig of a run.

    :func:`make_config`, with relative paths resolved against ``tmp_path`` (where
    ``ftrun_manifest`` writes): the config a task's ``encode``, ``build_metrics`` or any
    stage receives in a run of a manifest holding ``tables``. Bad tables are a FtrunError.
    """

    def build(tables: dict[str, Any], *plugins: str | object, overrides: Iterable[str] = (), blocked: Iterable[str] = ()) -> RunConfig:
        return make_config(tables, *plugins, base_dir=tmp_path, overrides=overrides, blocked=blocked)

    return build


@pytest.fixture
def ftrun_plugin_manager() -> Callable[..., PluginManager]:
    """ftrun_plugin_manager(*plugins, blocked=()) -> a fresh plugin manager, as a run builds it.

    It holds ftrun's default stages, every installed plugin but the ``blocked`` names, and
    ``plugins``: module names (as ``--plugin`` takes them) or objects with hook implementations.
    """
    from ftrun.api.plugin_manager import get_plugin_manager

    def make(*plugins: str | object, blocked: Iterable[str] = ()) -> PluginManager:
        return get_plugin_manager(plugins=plugins, blocked=blocked)

    return make


def plugins_of_other_distributions() -> list[str]:
    """The names of the installed ``ftrun`` entry points that another distribution than ftrun provides."""
    from importlib.metadata import entry_points

    from ftrun.api.plugin_manager import ENTRY_POINT_GROUP

    return sorted({point.name for point in entry_points(group=ENTRY_POINT_GROUP) if not point.dist or point.dist.metadata["Name"] != "ftrun"})


@pytest.fixture
def ftrun_no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Blocks, for one test, every plugin installed from a distribution other than ftrun; gives their names.

    For tests of ftrun's own behaviour, which another installed plugin changes (ftrun-mcc adds its
    metric to every text-classification run): they add their names to ``FTRUN_NO_PLUGINS``, which
    every plugin manager reads. A plugin package's own tests leave it out: they want their entry
    point loaded. Plugins installed during the test (a fake distribution on ``sys.path``) still load.
    """
    others = plugins_of_other_distributions()
    if others:
        monkeypatch.setenv("FTRUN_NO_PLUGINS", ",".join(filter(None, [os.environ.get("FTRUN_NO_PLUGINS", ""), *others])))
    return others


@pytest.fixture
def ftrun_plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """ftrun_plugin_module(name, source) -> name: writes an importable module (for ``--plugin NAME``)."""
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
def ftrun_manifest(tmp_path: Path) -> Callable[..., Path]:
    """ftrun_manifest(tables, name="run.toml") -> path of a TOML manifest holding ``tables``."""

    def write(tables: dict[str, Any], name: str = "run.toml") -> Path:
        path = tmp_path / name
        path.write_text(tomli_w.dumps(tables), encoding="utf-8")
        return path

    return write


def save_tiny_pretrained(directory: Path, settings: dict[str, Any], processor: Any, auto_model: type) -> Path:
    """Save a randomly initialised model of ``settings`` (a ``[model] config``) with ``processor`` (a tokenizer sizes its vocabulary)."""
    from transformers import AutoConfig, PreTrainedTokenizerBase

    vocabulary = {"vocab_size": len(processor), "pad_token_id": processor.pad_token_id} if isinstance(processor, PreTrainedTokenizerBase) else {}
    auto_model.from_config(AutoConfig.for_model(**settings, **vocabulary)).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def ftrun_tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local "pretrained" BERT encoder directory (weights, config, WordPiece tokenizer), built offline."""
    from transformers import AutoModel

    from ftrun.stages.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(TINY_CORPUS, model_type="bert", vocab_size=500, model_max_length=128)
    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-bert"), TINY_BERT, tokenizer, AutoModel)


@pytest.fixture(scope="session")
def ftrun_tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local "pretrained" T5 encoder-decoder directory (weights, config, Unigram tokenizer), built offline."""
    from transformers import AutoModelForSeq2SeqLM

    from ftrun.stages.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(TINY_CORPUS, model_type="t5", vocab_size=500, model_max_length=128)
    # As T5's checkpoints say (its config class leaves them to them): decoding starts from the pad token.
    ids = {"eos_token_id": tokenizer.eos_token_id, "decoder_start_token_id": tokenizer.pad_token_id}
    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-t5"), {**TINY_T5, **ids}, tokenizer, AutoModelForSeq2SeqLM)


@pytest.fixture(scope="session")
def ftrun_tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local "pretrained" GPT-2 decoder directory (weights, config, byte-level BPE tokenizer), built offline.

    As GPT-2's own: ``<|endoftext|>`` begins and ends texts, and there is no pad token.
    """
    from transformers import AutoModelForCausalLM

    from ftrun.stages.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(TINY_CORPUS, model_type="gpt2", vocab_size=500, model_max_length=128, lowercase=False)
    tokenizer.pad_token = None
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-gpt2"), {**TINY_GPT2, **ids}, tokenizer, AutoModelForCausalLM)


@pytest.fixture(scope="session")
def ftrun_tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local "pretrained" ViT image encoder directory (weights, config, an image processor sized to it), built offline: no tokenizer."""
    from transformers import AutoModel, ViTImageProcessor

    size = TINY_VIT["image_size"]
    processor = ViTImageProcessor(size={"height": size, "width": size})
    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-vit"), TINY_VIT, processor, AutoModel)
