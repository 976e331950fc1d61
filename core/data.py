"""Loading splits from the Hub or local files, subsetting them, and cached tokenization."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import display
from .errors import FtrunError, first_line

if TYPE_CHECKING:
    from datasets import Dataset

    from .config import RunConfig

#: File suffixes, the `datasets` builder that reads them, and its options.
BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
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


def builder_for(path: Path, where: str) -> tuple[str, dict[str, Any]]:
    name = path.name.lower()
    for suffix in sorted(BUILDERS, key=len, reverse=True):
        if name.endswith(suffix):
            return BUILDERS[suffix]
    raise FtrunError(f"{where}: {path.name}: unsupported file type (use {', '.join(BUILDERS)})")


def _check_file(config: RunConfig, key: str, value: str) -> Path:
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
    ``reader`` lets a task read formats of its own (e.g. CoNLL text files).
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
                raise FtrunError(
                    f"{config.where('data.' + key)}: split {split!r} not in {data.dataset} (splits: {', '.join(loaded)})"
                )
        train, evaluation = loaded[data.train_split], loaded[data.eval_split]
        where_train = where_eval = config.where("data.dataset")
    else:
        raise FtrunError(f"{config.where('data')}: name a dataset, or train_file and eval_file")
    for split, where, name in ((train, where_train, "train"), (evaluation, where_eval, "eval")):
        if len(split) == 0:
            raise FtrunError(f"{where}: the {name} split is empty")
    return Splits(
        train=subset(train, data.max_train_samples, data.shuffle_seed),
        eval=subset(evaluation, data.max_eval_samples, data.shuffle_seed),
    )


def _load_file(config: RunConfig, key: str, reader: FileReader | None) -> Dataset:
    """One local file as a split; each file is read on its own so an error names it."""
    import datasets

    path = _check_file(config, key, getattr(config.data, key))
    where = config.where(f"data.{key}")
    split = _guarded(f"{where}: {path.name}", lambda: reader(path)) if reader else None
    if split is not None:
        return split
    builder, options = builder_for(path, where)
    return _guarded(f"{where}: {path.name}", lambda: datasets.load_dataset(builder, data_files=str(path), split="train", **options))


def _guarded(where: str, load: Callable[[], Any]) -> Any:
    """Run a `datasets` load, turning its errors into one line that says where."""
    import datasets

    try:
        return load()
    # zlib.error and EOFError: a corrupt or truncated .gz file.
    except (OSError, ValueError, EOFError, zlib.error, datasets.exceptions.DatasetGenerationError) as exc:
        raise FtrunError(f"{where}: cannot load data: {first_line(exc.__cause__ or exc)}") from exc


def _load_dataset(config: RunConfig):
    import datasets

    name = config.data.dataset
    path = Path(name)
    if path.exists():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = datasets.load_from_disk(str(path))
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
        return datasets.load_dataset(str(path), config.data.dataset_config)
    from .config import looks_like_path

    if looks_like_path(name):
        raise FtrunError(f"{config.where('data.dataset')}: {name} does not exist")
    return datasets.load_dataset(name, config.data.dataset_config)


def subset(split: Dataset, limit: int | None, seed: int) -> Dataset:
    """The seed recipe's ``shuffle(seed).select(range(n))``; the whole split when no limit."""
    if limit is None:
        return split
    return split.shuffle(seed=seed).select(range(min(limit, len(split))))


def require_columns(split: Dataset, columns: dict[str, str | None], config: RunConfig, name: str) -> None:
    """Fail with one line naming the manifest key when a configured column is absent."""
    for key, column in columns.items():
        if column is not None and column not in split.column_names:
            raise FtrunError(
                f"{config.where('data.' + key)}: column {column!r} not in the {name} split "
                f"(columns: {', '.join(split.column_names)})"
            )


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A stable hash of a tokenizer's full definition (vocabulary, rules, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str() + repr(sorted(tokenizer.special_tokens_map.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    from datasets.fingerprint import Hasher

    return Hasher.hash(tokenizer)


def cache_dir_of(split: Dataset) -> Path | None:
    """The folder of a split's own Arrow cache, where derived files are cached too.

    ``None`` for an in-memory split or a read-only folder: then nothing is cached.
    """
    if not split.cache_files:
        return None
    folder = Path(split.cache_files[0]["filename"]).parent
    return folder if os.access(folder, os.W_OK) else None


@dataclasses.dataclass
class TokenizeStats:
    """How a split was tokenized: for the run summary and for benchmarks."""

    examples: int
    features: int
    """Rows after encoding: more than ``examples`` where one example becomes several features."""
    seconds: float
    cached: bool


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
