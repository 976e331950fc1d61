"""The data stage: load the splits (Hub or local files), check them, get the task's processor, encode (cached, or lazily).

:func:`load_data` is the stage as ftrun's default plugin runs it; the rest are its parts, and
the helpers tasks use to check their columns and name a bad row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import importlib.metadata
import inspect
import json
import logging
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrun.manifest.config import looks_like_path
from ftrun.util import display
from ftrun.util.errors import FtrunError, first_line

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from ftrun.api.task import BaseTask, Task
    from ftrun.manifest.config import RunConfig

#: csv and tsv cells are read as they are written. pandas by default reads an empty cell (the only
#: way a csv writes an empty text) and texts such as "NA", "null" or "nan" as missing values, which
#: no text column can hold; so an empty cell is an empty text, and an empty label is refused.
CSV_OPTIONS: dict[str, Any] = {"na_filter": False}

#: File suffixes, the `datasets` builder that reads them, and its options.
BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", CSV_OPTIONS),
    ".tsv": ("csv", {**CSV_OPTIONS, "delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".json.gz": ("json", {}),
    ".jsonl.gz": ("json", {}),
    ".parquet": ("parquet", {}),
}


@dataclasses.dataclass
class Splits:
    """The raw train and eval splits, before any tokenization."""

    train: Dataset
    eval: Dataset


@dataclasses.dataclass(init=False)
class TaskData:
    """What the data stage returns: encoded splits and what the head needs to know."""

    train: Any
    eval: Any
    processor: Any
    """What ``task.load_processor`` returned: a tokenizer, an image processor, a feature extractor, a multimodal processor."""
    labels: list[str] | None
    raw: Splits | None
    stats: dict[str, TokenizeStats]

    def __init__(
        self,
        train: Any,
        eval: Any,
        processor: Any = None,
        labels: list[str] | None = None,
        raw: Splits | None = None,
        stats: dict[str, TokenizeStats] | None = None,
        *,
        tokenizer: Any = None,
    ) -> None:
        # ``tokenizer=`` is what a text task's code (and its tests) wrote before there were other processors.
        self.train, self.eval, self.processor = train, eval, processor if processor is not None else tokenizer
        self.labels, self.raw, self.stats = labels, raw, stats if stats is not None else {}

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The processor, as text code names it: a text task's processor is its tokenizer."""
        return self.processor

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels or [])}


def load_data(
    task: BaseTask, config: RunConfig, sample: int | None = None, labels: list[str] | None = None, encode: tuple[str, ...] = ("train", "eval")
) -> TaskData:
    """Load and check the splits, get the task's processor, encode both splits (cached on disk, or as they are read where the task encodes lazily).

    With ``sample`` (``ftrun check``), only that many examples of each split are encoded, to
    fail now what would fail at tokenization: the result then holds no encoded splits, and its
    ``stats`` count the features those examples became. ``ftrun eval`` encodes the eval split
    alone (``encode``), with a trained model's ``labels`` in its order rather than the train split's.
    """
    splits = load_splits(config, task.read_file)
    found = task.check_data(splits, config)
    labels = labels if labels is not None and found is not None else found
    data = TaskData(train=None, eval=None, processor=task.load_processor(config, splits), labels=labels, raw=splits)
    # The task's code is part of the key: a changed encode never reuses stale features.
    key = repr((code_identity(task), processor_fingerprint(data.processor), config.data.model_dump(), labels))
    for name in encode:
        split = getattr(splits, name)
        if sample is None and task.lazy_encoding:
            setattr(data, name, encode_lazily(task, split, data, config, name))
            data.stats[name] = TokenizeStats(len(split), len(split), 0.0, cached=False, lazy=True)
        elif sample is None:
            encoded, data.stats[name] = tokenize(
                split, lambda batch, name=name: encode_batch(task, batch, data, config, name), key=key, desc=f"Tokenizing {name}"
            )
            setattr(data, name, encoded)
        else:
            start, count = time.perf_counter(), min(sample, len(split))
            features = encode_batch(task, split.select(range(count))[:], data, config, name)
            data.stats[name] = TokenizeStats(count, len(next(iter(features.values()), ())), time.perf_counter() - start, cached=False)
    return data


def load_tokenizer(task: Task, config: RunConfig, splits: Splits | None) -> PreTrainedTokenizerBase:
    """A text task's processor: the named tokenizer, the model's own, or one trained on the training texts; then the task's own check of it."""
    from transformers import AutoTokenizer

    from ftrun.stages.head import check_local, model_config_of
    from ftrun.stages.tokenizer import cached_tokenizer, train_tokenizer

    model = config.model
    source = model.tokenizer or model.name
    key = "model.tokenizer" if model.tokenizer else "model.name"
    if source is None:
        # The config object, not its dict: it maps each family's name for the length (GPT-2's n_positions).
        model_config = model_config_of(config)
        tokenizer = cached_tokenizer(
            splits.train,
            (task.name, model.model_dump(), config.data.model_dump()),
            lambda: train_tokenizer(
                task.text_of(splits.train, config),
                model_type=model_config.model_type,
                vocab_size=model.tokenizer_vocab_size,
                model_max_length=getattr(model_config, "max_position_embeddings", None) or 512,
                lowercase=model.tokenizer_lowercase,
            ),
            where=config.where("model.tokenizer"),
        )
    else:
        check_local(config, key, source)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=model.revision, trust_remote_code=model.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where(key)}: cannot load tokenizer {source!r}: {first_line(exc)}") from exc
    task.check_tokenizer(tokenizer, config, config.where(key))
    return tokenizer


def encode_batch(task: BaseTask, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
    """The task's ``encode``, with a failure reported as one line naming the task and the split."""
    try:
        return task.encode(batch, data, config, split)
    except (FtrunError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # BaseException: a Rust tokenizer's panic (pyo3's PanicException) is not an Exception
        raise FtrunError(f"{config.where('data')}: task {task.name} cannot encode the {split} split: {type(exc).__name__}: {first_line(exc)}") from exc


def encode_lazily(task: BaseTask, split: Dataset, data: TaskData, config: RunConfig, name: str) -> Dataset:
    """``split`` encoded as its rows are read (``datasets``' ``with_transform``), for a task with ``lazy_encoding``: nothing encoded is stored.

    Every read encodes anew, so a training batch draws its augmentation afresh each epoch. The
    transform keeps through ``select`` and ``shuffle``, which sorted evaluation and the samplers use.
    """
    return split.with_transform(lambda batch: encode_batch(task, batch, data, config, name))


def code_identity(task: BaseTask) -> tuple[str, ...]:
    """The task's name, its distribution's version and a hash of its code, for the encoded-split cache key.

    The code is the source of each module defining the task's class and its bases, but for
    ftrun's task API (``ftrun.api``) that every task shares; a module in a package brings every ``.py`` file of its folder, where
    helpers of the task's ``encode`` usually live.
    """
    digest = hashlib.sha256()
    for name in sorted({cls.__module__ for cls in type(task).__mro__[:-1] if not cls.__module__.startswith("ftrun.api.")}):
        module = sys.modules.get(name)
        path = Path(getattr(module, "__file__", None) or "")
        in_package = bool(getattr(module, "__package__", None)) and path.is_file()
        files = sorted(path.parent.rglob("*.py")) if in_package else [path] if path.is_file() else []
        for file in files:
            digest.update(file.read_bytes())
        if not files:  # defined without a file of its own (exec, a notebook): its source where inspect finds it
            try:
                digest.update(inspect.getsource(type(task)).encode())
            except (OSError, TypeError):
                digest.update(type(task).__qualname__.encode())
    dists = sorted(set(importlib.metadata.packages_distributions().get(type(task).__module__.partition(".")[0], [])))
    return (task.name, *(f"{dist} {importlib.metadata.version(dist)}" for dist in dists), digest.hexdigest()[:16])


def builder_for(path: Path, where: str) -> tuple[str, dict[str, Any]]:
    builder = _builder_of(path)
    if builder is None:
        raise FtrunError(f"{where}: {path.name}: unsupported file type (use {', '.join(BUILDERS)})")
    return builder


def _builder_of(path: Path) -> tuple[str, dict[str, Any]] | None:
    name = path.name.lower()
    return next((BUILDERS[suffix] for suffix in sorted(BUILDERS, key=len, reverse=True) if name.endswith(suffix)), None)


def check_file(config: RunConfig, key: str, value: str) -> Path:
    """``data.KEY``'s file: it exists, is a file, and is not empty."""
    path = Path(value)
    where = config.where(f"data.{key}")
    if not path.exists():
        raise FtrunError(f"{where}: {path} does not exist")
    if path.is_dir():
        raise FtrunError(f"{where}: {path} is a directory, not a data file")
    if path.stat().st_size == 0:  # datasets fails on it without naming the file
        raise FtrunError(f"{where}: {path} is empty")
    return path


#: A task's reader for file formats of its own: returns ``None`` for files it does not read.
FileReader = Callable[[Path], "Dataset | None"]


def load_splits(config: RunConfig, reader: FileReader | None = None) -> Splits:
    """Load the train and eval splits named by ``[data]``, then shuffle and subset them.

    Local files (``train_file`` / ``eval_file``) win over ``dataset``; ``dataset`` is a
    Hub id, a local folder of data files, or a folder written by ``save_to_disk``.
    ``reader`` lets a task read formats of its own (e.g. CoNLL text files, or a folder of images).
    """
    data = config.data
    if data.train_file or data.eval_file:
        if not (data.train_file and data.eval_file):
            missing = "eval_file" if data.train_file else "train_file"
            raise FtrunError(f"{config.where('data.' + missing)}: needed as well when local files are used")
        train, evaluation = _load_file(config, "train_file", reader), _load_file(config, "eval_file", reader)
        where_train, where_eval = config.where("data.train_file"), config.where("data.eval_file")
    elif data.dataset:
        loaded = _guarded(config.where("data.dataset"), lambda: _load_dataset(config))
        for key, split in (("train_split", data.train_split), ("eval_split", data.eval_split)):
            if split not in loaded:
                raise FtrunError(f"{config.where('data.' + key)}: split {split!r} not in {data.dataset} (splits: {', '.join(loaded)})")
        train, evaluation = loaded[data.train_split], loaded[data.eval_split]
        where_train = where_eval = config.where("data.dataset")
    else:
        raise FtrunError(f"{config.where('data')}: name a dataset, or train_file and eval_file")
    for split, where, name in ((train, where_train, "train"), (evaluation, where_eval, "eval")):
        if len(split) == 0:
            raise FtrunError(f"{where}: the {name} split is empty")
    splits = Splits(
        train=subset(train, data.max_train_samples, data.shuffle_seed),
        eval=subset(evaluation, data.max_eval_samples, data.shuffle_seed),
    )
    for name, where in (("train", where_train), ("eval", where_eval)):
        _check_utf8(config, getattr(splits, name), name, where)
    return splits


def _load_file(config: RunConfig, key: str, reader: FileReader | None) -> Dataset:
    """One local file as a split; each file is read on its own so an error names it."""
    import datasets

    given = Path(getattr(config.data, key))
    # A task's reader may take a folder (images in one subfolder per class); any other path must be a data file.
    path = given if reader and given.is_dir() else check_file(config, key, str(given))
    where = f"{config.where(f'data.{key}')}: {path.name}"
    split = _guarded(where, lambda: reader(path)) if reader else None
    if split is None and path.is_dir():
        check_file(config, key, str(path))  # says it is a folder, not a data file
    if split is not None:
        return split
    builder, options = builder_for(path, config.where(f"data.{key}"))
    if builder in ("csv", "json"):
        problem = nul_byte_problem(path)
        if problem:
            raise FtrunError(f"{where}: cannot load data: {problem}")
    with quiet_readers():
        return _guarded(
            where,
            lambda: datasets.load_dataset(builder, data_files=str(path), split="train", **options),
            explain=lambda: text_file_problem(path, builder),
        )


@contextlib.contextmanager
def quiet_readers() -> Iterator[None]:
    """Keep the file readers of ``datasets`` from logging an error they raise: ftrun reports it, in one line naming the file."""
    readers = logging.getLogger("datasets.packaged_modules")
    level = readers.level
    readers.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        readers.setLevel(level)


def _guarded(where: str, load: Callable[[], Any], explain: Callable[[], str | None] = lambda: None) -> Any:
    """Run a `datasets` load, turning its errors into one line that says where.

    ``explain`` says what is wrong where the library's message does not (or names only a byte
    offset, or a row of a block): it runs only once the load has failed.
    """
    import datasets

    try:
        return load()
    # zlib.error and EOFError: a corrupt or truncated .gz file.
    # StopIteration: the JSON reader found no first row to learn the columns from.
    except (OSError, ValueError, EOFError, StopIteration, zlib.error, datasets.exceptions.DatasetGenerationError) as exc:
        cause = exc.__cause__ if isinstance(exc, datasets.exceptions.DatasetGenerationError) and exc.__cause__ else exc  # what it wraps says more
        raise FtrunError(f"{where}: cannot load data: {explain() or first_line(cause)}") from exc


def _load_dataset(config: RunConfig):
    import datasets

    name = config.data.dataset
    path = Path(name)
    if path.is_file():
        raise FtrunError(f"{config.where('data.dataset')}: {name} is a file: name it with train_file and eval_file")
    if path.exists():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            states = [path / "state.json"] if (path / "state.json").exists() else sorted(path.glob("*/state.json"))
            empty = [state.parent for state in states if not json.loads(state.read_text(encoding="utf-8")).get("_data_files", True)]
            if empty:  # datasets itself fails on it with an IndexError
                raise FtrunError(f"{config.where('data.dataset')}: {empty[0]} was saved with no rows, which datasets cannot load")
            loaded = datasets.load_from_disk(str(path))
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
        return datasets.load_dataset(str(path), config.data.dataset_config)

    if looks_like_path(name):
        raise FtrunError(f"{config.where('data.dataset')}: {name} does not exist")
    return datasets.load_dataset(name, config.data.dataset_config)


# -- what is wrong with a data file, and where ------------------------------------------------


def text_lines(path: Path) -> Iterator[str]:
    """The lines of a text file (gunzipped when its name ends in ``.gz``), decoded as UTF-8.

    A line that is not UTF-8 is a ValueError naming the line and column (the libraries' own
    readers name a byte offset in a block, if anything); so is a gzip file truncated or not one.
    """
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    yield line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    column = len(line[: exc.start].decode("utf-8")) + 1
                    raise ValueError(f"line {number}: not UTF-8 (byte 0x{line[exc.start]:02x} at column {column}); save the file as UTF-8") from exc
    except EOFError as exc:
        raise ValueError("the gzip file is truncated (it ends before its end-of-stream marker)") from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"not a valid gzip file ({first_line(exc)})") from exc


#: How much of a text file is read for a NUL byte before its reader gets it.
NUL_SCAN = 64 * 1024


def nul_byte_problem(path: Path) -> str | None:
    """A NUL byte in the start of a csv or JSON file (gunzipped), which no UTF-8 text has: a binary, zeroed or sparse file.

    Only its start is read: the readers would read all of a large one (a 1 GB sparse file took minutes) to fail without a word.
    A file that is not UTF-8 before its first NUL (UTF-16 with its byte-order mark) is left to :func:`text_lines` to name.
    """
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
            start = handle.read(NUL_SCAN)
    except (OSError, EOFError, zlib.error):
        return None  # a broken .gz: the reader's failure says so
    at = start.find(b"\0")
    if at < 0:
        return None
    try:
        before = start[:at].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = before.split("\n")
    return f"line {len(lines)}: a NUL byte at column {len(lines[-1]) + 1}: not a text file (a binary or empty sparse file?); save the data as UTF-8 text"


def text_file_problem(path: Path, builder: str) -> str | None:
    """What is wrong with a csv or JSON file its reader refused, naming the line; ``None`` for other files, or if nothing is found."""
    if builder not in ("csv", "json"):
        return None
    try:
        lines = list(text_lines(path))
    except ValueError as exc:
        return str(exc)
    rows = lines[1:] if builder == "csv" else lines
    if not any(line.strip() for line in rows):
        return "no rows under its header" if builder == "csv" else "no rows, only blank lines"
    return json_problem(lines) if builder == "json" else None


def json_problem(lines: list[str]) -> str | None:
    """The first line of a JSON Lines file that is not a JSON object, or where a JSON document is not valid JSON.

    A file whose first line is a JSON object on its own is JSON Lines; any other is one document.
    """
    lines = [lines[0].lstrip("\ufeff"), *lines[1:]]  # a byte-order mark, which the readers skip
    first = next(line for line in lines if line.strip())
    try:
        json_lines = isinstance(json.loads(first), dict)
    except ValueError:
        json_lines = False
    if not json_lines:
        try:
            document = json.loads("".join(lines))
        except ValueError as exc:
            return f"line {exc.lineno}: {_not_json(exc)}"
        return "no rows (an empty JSON list)" if document == [] else None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            return f"line {number}: {_not_json(exc)}"
        if not isinstance(value, dict):
            return f"line {number}: holds {describe_value(value)}, not a JSON object (one row per line)"
    return None


def _not_json(exc: json.JSONDecodeError) -> str:
    at = "" if exc.msg.endswith(" at") else " at"  # "Unterminated string starting at" already ends so
    return f"not valid JSON ({exc.msg}{at} column {exc.colno})"


def _check_utf8(config: RunConfig, split: Dataset, name: str, where: str) -> None:
    """Text that is not UTF-8 fails at once, naming its line or row.

    pyarrow's JSON reader and parquet files keep such bytes, which would fail only when their
    row is read, deep in training a tokenizer or tokenizing. Checking the rows a run uses takes
    one pass over them in Arrow.
    """
    found = invalid_text_row(split)
    if found is None:
        return
    row, column = found
    file = Path(getattr(config.data, f"{name}_file") or "")
    builder = _builder_of(file)
    problem = text_file_problem(file, builder[0]) if builder else None
    if problem:
        raise FtrunError(f"{where}: {file.name}: cannot load data: {problem}")
    raise FtrunError(f"{where}: {where_row(config, split, name, row)}: column {column!r} holds text that is not UTF-8")


def invalid_text_row(split: Dataset) -> tuple[int, str] | None:
    """The first row of ``split`` (and its column) whose text is not valid UTF-8, if any."""
    import pyarrow as pa

    table = split.with_format("arrow")[:]
    for column in table.column_names:
        values = table.column(column)
        try:
            values.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        first, last = 0, len(values)  # pyarrow only says that some row is invalid: bisect to the first
        while last - first > 1:
            middle = (first + last) // 2
            try:
                values.slice(first, middle - first).validate(full=True)
                first = middle
            except pa.ArrowInvalid:
                last = middle
        return first, column
    return None


def split_source(config: RunConfig, name: str) -> str:
    """Split ``name`` (``train`` or ``eval``) as a message names it: its file, or the dataset's split."""
    data = config.data
    file = data.train_file if name == "train" else data.eval_file
    if file:
        return Path(file).name
    if data.dataset:
        return f"{data.dataset}'s {data.train_split if name == 'train' else data.eval_split!r} split"
    return f"the {name} split"  # splits that a plugin or a test made


def source_row(split: Dataset, index: int) -> int:
    """The row (counted from 1) of the loaded data that row ``index`` of ``split`` is, through any shuffle and subset."""
    indices = split._indices  # datasets' map from a shuffled or selected split to the rows of its table
    return (indices.column(0)[index].as_py() if indices is not None else index) + 1


def where_row(config: RunConfig, split: Dataset, name: str, index: int, what: str = "row") -> str:
    """Where row ``index`` of split ``name`` is in the user's data, e.g. ``row 3 of train.csv``.

    Rows are counted from 1, a csv file's header not counted, and named as in the file or
    dataset that was loaded, not as in the shuffled subset of ``max_train_samples``.
    """
    return f"{what} {source_row(split, index)} of {split_source(config, name)}"


def describe_value(value: Any) -> str:
    """A value a column holds, in words: ``null``, ``the number 3``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return {str: "a text", list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def describe_feature(feature: Any) -> str:
    """A column's type in words: ``int64``, ``lists of string``, ``tables``, ``values of several types``."""
    from datasets import ClassLabel, Json, Value

    if isinstance(feature, Value):
        return "only nulls" if feature.dtype == "null" else feature.dtype
    if isinstance(feature, ClassLabel):
        return "class labels"
    if getattr(feature, "feature", None) is not None:
        return f"lists of {describe_feature(feature.feature)}"
    if isinstance(feature, dict):
        return "tables"
    if isinstance(feature, Json):
        return "values of several types"
    return type(feature).__name__


def check_text_column(split: Dataset, config: RunConfig, key: str, name: str) -> None:
    """Every row of the column that ``data.KEY`` names holds a text: else one line naming the first row that does not.

    An empty text is a text (an input may be empty; an empty csv cell is one); null, or a
    key missing from a JSON row, is no text.
    """
    import pyarrow.compute as pc
    from datasets import Json

    column = getattr(config.data, key)
    where = config.where(f"data.{key}")
    feature = split.features[column]
    if getattr(feature, "dtype", None) in ("string", "large_string"):
        row = pc.index(pc.is_null(split.with_format("arrow")[column]), True).as_py()
        if row >= 0:
            raise FtrunError(f"{where}: {where_row(config, split, name, row)} has no {column!r} (null or missing)")
        return
    if not isinstance(feature, Json):  # one type in every row: the column is not text
        raise FtrunError(f"{where}: column {column!r} holds {describe_feature(feature)}, not text")
    values = split.select_columns([column])[:][column]
    row, value = next(((i, value) for i, value in enumerate(values) if not isinstance(value, str)), (None, None))
    if row is None:
        return
    what = "has no" if value is None else f"holds {describe_value(value)} in"
    raise FtrunError(f"{where}: {where_row(config, split, name, row)} {what} {column!r}" + ("" if value is None else ", not a text"))


def subset(split: Dataset, limit: int | None, seed: int) -> Dataset:
    """The seed recipe's ``shuffle(seed).select(range(n))``; the whole split when no limit."""
    if limit is None:
        return split
    return split.shuffle(seed=seed).select(range(min(limit, len(split))))


def require_columns(split: Dataset, columns: dict[str, str | None], config: RunConfig, name: str) -> None:
    """Fail with one line naming the manifest key when a configured column is absent."""
    for key, column in columns.items():
        if column is not None and column not in split.column_names:
            raise FtrunError(f"{config.where('data.' + key)}: column {column!r} not in the {name} split (columns: {', '.join(split.column_names)})")


def processor_fingerprint(processor: Any) -> str:
    """A stable hash of a processor's full definition: a fast tokenizer's vocabulary, rules and special tokens, an image processor's or feature extractor's settings."""
    backend = getattr(processor, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str() + repr(sorted(processor.special_tokens_map.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    from datasets.fingerprint import Hasher

    return Hasher.hash(processor)


@dataclasses.dataclass
class TokenizeStats:
    """How a split was tokenized: for the run summary and for benchmarks."""

    examples: int
    features: int
    """Rows after encoding: more than ``examples`` where one example becomes several features."""
    seconds: float
    cached: bool
    lazy: bool = False
    """Encoded as it is read (the task's ``lazy_encoding``), not now: ``seconds`` counts nothing."""


def tokenize(
    split: Dataset,
    encode: Callable[[dict[str, list]], dict[str, list]],
    *,
    key: str,
    desc: str,
) -> tuple[Dataset, TokenizeStats]:
    """Map ``encode`` over ``split`` in batches, cached on disk next to the split's own cache.

    ``key`` must change whenever the output would (task code, tokenizer, lengths, columns): together
    with the split's fingerprint it names the cache file, so an identical second run
    loads the tokenized split instead of tokenizing again.
    """
    from datasets.fingerprint import Hasher

    from ftrun.stages.tokenizer import cache_dir_of

    start = time.perf_counter()
    fingerprint = Hasher.hash((split._fingerprint, key))
    folder = cache_dir_of(split)
    cache_file = str(folder / f"ftrun-tokenized-{fingerprint}.arrow") if folder else None
    cached = cache_file is not None and Path(cache_file).exists()
    advance = None if cached else display.bar(desc, len(split))

    def encode_batch(batch: dict[str, list]) -> dict[str, list]:
        out = encode(batch)
        if advance:
            advance(len(next(iter(batch.values()))))
        return out

    result = split.map(
        encode_batch,
        batched=True,
        remove_columns=split.column_names,
        cache_file_name=cache_file,
        load_from_cache_file=True,
        new_fingerprint=fingerprint,
        desc=desc,
    )
    return result, TokenizeStats(len(split), len(result), time.perf_counter() - start, cached)
