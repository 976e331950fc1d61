"""Media files as data: what the image-classification and audio-classification tasks share.

Their data comes in the same layouts, whatever the file kind (an image, a sound clip):

- a folder with one subfolder per class, read with ``datasets``' folder builders
  (``imagefolder``, ``audiofolder``): the subfolders' names are the labels, and the rows hold
  the files' paths, never their content, so that the cache stays small;
- a table (csv, json(l), parquet) whose column holds paths relative to the table file, or the
  files' bytes;
- a Hub dataset (or a local folder of split subfolders) with an ``Image`` or ``Audio`` feature.

A :class:`MediaKind` says what one kind of file is: its folder builder, its ``datasets``
feature, and how a file is opened (which fails on a file that is not one). The rest is here
once: reading a folder, resolving a table's relative paths, checking every file before training
(one line naming the file and the row), and reading the inputs to predict on.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrun import FtrunError, RunConfig, first_line, require_columns, where_row

if TYPE_CHECKING:
    from datasets import Dataset

#: A file as a row holds it: a path (absolute once resolved), or the file's bytes.
Source = str | bytes


@dataclasses.dataclass(frozen=True)
class MediaKind:
    """One kind of media file, as the shared code needs to know it."""

    name: str
    """``image`` or ``audio``: the column a folder's files are in, and the word messages use."""
    folder_builder: str
    """The ``datasets`` builder that reads a folder with one subfolder per class (``imagefolder``)."""
    feature: str
    """The ``datasets`` feature of such a column (``Image``, ``Audio``): cast undecoded, so that rows hold paths or bytes."""
    open: Callable[[Any], Any]
    """A file (a path, or a binary file object) → its content (a PIL image, a waveform); raises on a file that is not one."""

    @property
    def column_key(self) -> str:
        """The ``[data]`` key naming the column: ``image_column``."""
        return f"{self.name}_column"


def read_folder(path: Path, kind: MediaKind) -> Dataset | None:
    """A folder of files as one split (column ``kind.name``, and ``label`` where they are in one subfolder per class); ``None`` for a file.

    The task's ``read_file``: ``data.train_file`` and ``data.eval_file`` may name a folder with a
    subfolder per class, and ``ftrun predict --input`` any folder of files.
    """
    import datasets

    if not path.is_dir():
        return None
    classes = sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    # The files as their paths (a column of strings), not as the kind's feature: datasets stores an Audio
    # feature through torchcodec, which needs the system's FFmpeg libraries, even where it holds only a path.
    features = {kind.name: datasets.Value("string"), **({"label": datasets.ClassLabel(names=classes)} if classes else {})}
    return datasets.load_dataset(kind.folder_builder, data_dir=str(path), split="train", features=datasets.Features(features))


def undecoded(split: Dataset, column: str, kind: MediaKind) -> Dataset:
    """``split`` with a column of ``kind``'s feature left undecoded: each row a ``{"path", "bytes"}`` table, read only when encoded."""
    import datasets

    feature = split.features.get(column)
    if type(feature).__name__ != kind.feature or not getattr(feature, "decode", False):
        return split
    return split.cast_column(column, getattr(datasets, kind.feature)(decode=False))


def base_folder(config: RunConfig, name: str) -> Path | None:
    """The folder that relative paths in split ``name`` (``train``, ``eval``) are relative to: its table file's, or the local dataset's."""
    file = getattr(config.data, f"{name}_file", None)
    if file:
        return Path(file) if Path(file).is_dir() else Path(file).parent
    dataset = config.data.dataset
    return Path(dataset) if dataset and Path(dataset).is_dir() else None


def source_of(value: Any, base: Path | None) -> Source | None:
    """What a row's cell holds, as a file to open: a path (resolved against ``base``), its bytes, or ``None`` where it holds none."""
    if isinstance(value, dict):  # an undecoded Image or Audio feature
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() or base is None else base / path)
    return None


def as_file(source: Source) -> str | io.BytesIO:
    """A file as its path, or its bytes as a binary file object: what the decoders open."""
    return io.BytesIO(source) if isinstance(source, bytes) else source


def open_source(source: Source, kind: MediaKind) -> Any:
    """A file's content, by ``kind``'s ``open``: from its path or its bytes."""
    return kind.open(as_file(source))


def content_of(value: Any, base: Path | None, kind: MediaKind) -> Any:
    """A row's file, opened by ``kind``: from its path (resolved against ``base``) or bytes, or as ``datasets`` decoded it already (a Hub dataset's ``Image`` feature)."""
    source = source_of(value, base)
    return value if source is None and value is not None else open_source(source, kind)


def check_files(split: Dataset, config: RunConfig, name: str, kind: MediaKind) -> None:
    """Every row of split ``name`` holds a file of ``kind`` that opens: else one line naming the row and the file, before any training."""
    column = getattr(config.data, kind.column_key)
    require_columns(split, {kind.column_key: column}, config, name)
    where = config.where(f"data.{kind.column_key}")
    base = base_folder(config, name)
    values = undecoded(split, column, kind).select_columns([column])[:][column]
    for row, value in enumerate(values):
        source = source_of(value, base)
        if source is None:
            raise FtrunError(f"{where}: {where_row(config, split, name, row)} has no {kind.name} (a path or the file's bytes): {value!r}")
        shown = "its bytes" if isinstance(source, bytes) else source
        if isinstance(source, str) and not Path(source).is_file():
            raise FtrunError(f"{where}: {where_row(config, split, name, row)}: {shown} does not exist")
        try:
            open_source(source, kind)
        except Exception as exc:  # the decoders raise many kinds of error for a file that is not one
            raise FtrunError(f"{where}: {where_row(config, split, name, row)}: {shown} is not an {kind.name} file ({first_line(exc)})") from exc


def read_media_input(value: Any, where: str, kind: MediaKind) -> str:
    """One input to predict on → a text ``ftrun.toml`` can store and the pipeline reads: a file's absolute path, a URL, or a ``data:`` URI of its bytes.

    A file is checked here (it exists, and opens as ``kind``), so that a bad one is named before the model loads; a URL is left to the pipeline.
    """
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return value
    if isinstance(value, str) and value.startswith("data:"):
        try:
            source: Source | None = base64.b64decode(value.partition(",")[2], validate=True)
        except ValueError as exc:
            raise FtrunError(f"{where}: a data: URI whose base64 is not valid ({first_line(exc)})") from exc
    else:
        source = source_of(value, None)
    if source is None:
        raise FtrunError(f"{where}: expected the path of an {kind.name} file, got {value!r}")
    if isinstance(source, str):
        path = Path(source).resolve()
        if not path.is_file():
            raise FtrunError(f"{where}: {source} does not exist")
        source = str(path)
    try:
        open_source(source, kind)
    except Exception as exc:  # as check_files
        shown = "its bytes are" if isinstance(source, bytes) else f"{source} is"
        raise FtrunError(f"{where}: {shown} not an {kind.name} file ({first_line(exc)})") from exc
    return data_uri(source, kind) if isinstance(source, bytes) else source


def data_uri(content: bytes, kind: MediaKind) -> str:
    """A file's bytes as a ``data:`` URI, which transformers' ``load_image`` reads: an input that JSON holds."""
    return f"data:{kind.name}/*;base64,{base64.b64encode(content).decode()}"


def media_inputs(batch: dict[str, list], config: RunConfig, source: Path | None, kind: MediaKind) -> list[str]:
    """The files of a batch of ``ftrun predict --input`` rows: the column ``[data]`` names (a folder's: ``kind.name``), its paths relative to the table's folder."""
    column = getattr(config.data, kind.column_key)
    folder = source is not None and source.is_dir()
    if folder:
        column = kind.name  # a folder of files, as read_folder reads it
    if column not in batch:
        raise FtrunError(f"--input: {source}: no column {column!r} (data.{kind.column_key}; columns: {', '.join(batch)})")
    base = source if folder else source.parent if source is not None else None
    inputs = []
    for value in batch[column]:
        found = source_of(value, base)
        inputs.append(data_uri(found, kind) if isinstance(found, bytes) else found if found is not None else value)
    return inputs
