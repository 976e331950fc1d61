"""Manifests: read TOML, layer defaults, manifest and ``--set`` overrides, validate.

Everything is checked here, before any model or dataset loads, and every problem is
reported as ``SOURCE: section.key: what is wrong``. A manifest is validated by one pydantic
model per task (:func:`manifest_model`), whose JSON Schema is also ``ftrun schema``'s.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WrapValidator, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ftrun.util.errors import FtrunError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from ftrun.api.task import BaseTask, Task


class Section(BaseModel):
    """A manifest table: unknown keys and wrong types are errors, never coerced (an integer is a float, as TOML's ``3`` is 3.0).

    TOML spells ``nan`` and ``inf``, which no setting means: a float must be a finite number.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ModelConfig(Section):
    """``[model]``: pretrained weights by ``name``, or a fresh model built from ``config``. Text tasks add their tokenizer's keys (:class:`TextModelConfig`)."""

    name: str | None = Field(None, description="Hub id or local directory of a pretrained model.", json_schema_extra={"path": "local-or-hub"})
    config: dict[str, Any] | str | None = Field(
        None,
        description="Build the model from this config (a table, or a config.json path) instead of weights.",
        json_schema_extra={"path": "local-or-hub"},
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of the model.")
    trust_remote_code: bool = Field(False, description="Allow code from the model repository to run.")
    license: str | None = Field(None, description="The trained model's license, for its model card's metadata (a Hub license id, e.g. apache-2.0).")


class TextModelConfig(ModelConfig):
    """``[model]`` of a task on text (``Task``'s): a model, and the tokenizer its inputs are cut into tokens with."""

    tokenizer: str | None = Field(
        None,
        description="Hub id or directory of the tokenizer; default: the model's, or one trained on the data.",
        json_schema_extra={"path": "local-or-hub"},
    )
    tokenizer_vocab_size: int = Field(8000, gt=0, description="Vocabulary size when a tokenizer is trained.")
    tokenizer_lowercase: bool = Field(True, description="Lowercase text in a trained tokenizer (keep case for names: false).")


class DataConfig(Section):
    """``[data]``: where the splits come from and how much of them to use. Tasks add their columns; text tasks subclass :class:`TextDataConfig`."""

    dataset: str | None = Field(None, min_length=1, description="Hub id or local path of a dataset.", json_schema_extra={"path": "local-or-hub"})
    dataset_config: str | None = Field(None, description="Configuration name of a Hub dataset.")
    train_file: str | None = Field(None, min_length=1, description="Local csv, json, jsonl, jsonl.gz or parquet file.", json_schema_extra={"path": "local"})
    eval_file: str | None = Field(None, min_length=1, description="Local csv, json, jsonl, jsonl.gz or parquet file.", json_schema_extra={"path": "local"})
    train_split: str = Field("train", description="Split of the dataset to train on.")
    eval_split: str = Field("test", description="Split of the dataset to evaluate on.")
    max_train_samples: int | None = Field(None, gt=0, description="Train on this many examples of the train split (shuffled first).")
    max_eval_samples: int | None = Field(None, gt=0, description="Evaluate on this many examples of the eval split (shuffled first).")
    shuffle_seed: int = Field(42, description="Seed of the shuffle before max_*_samples are taken.")


class TextDataConfig(DataConfig):
    """``[data]`` of a task on text (``Task``'s): its inputs are token sequences, cut at ``max_length``."""

    max_length: int | None = Field(None, gt=0, description="Truncate inputs to this many tokens.")


class MetricsConfig(Section):
    """``[metrics]``: what is computed at evaluation and which metric picks the best checkpoint."""

    names: list[str] = Field(default_factory=list, description="Metric names; the task's defaults when empty.")
    best: str | None = Field(None, description="Metric for the best model; the task's default when unset.")

    @field_validator("names")
    @classmethod
    def _no_scripts(cls, names: list[str]) -> list[str]:
        # A name the task does not compute goes to evaluate.load, which runs the metric's script.
        # evaluate's own (a bare name) are maintained with the library; anyone's (owner/name) or a
        # script on disk is code the manifest did not name as a plugin, and a manifest runs no other.
        for name in names:
            if "/" in name or "\\" in name or name.endswith(".py"):
                raise ValueError(
                    f"{name!r} is a metric script from outside evaluate, which a manifest may not run; "
                    "compute it in a plugin (docs/plugins.md: changing one stage of one task)"
                )
        return names


class PredictConfig(Section):
    """``[predict]``: inputs predicted on after training, as a smoke test of the saved model."""

    examples: list[str | dict[str, Any]] = Field(
        default_factory=list, description="Inputs: texts, or tables for tasks whose inputs have several fields (question and context, ...)."
    )


#: Training defaults that hold for every task; tasks add theirs on top (Task.defaults).
TRAINING_DEFAULTS: dict[str, Any] = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "load_best_model_at_end": True,
    "save_total_limit": 2,
    "logging_steps": 10,
    "report_to": "none",
    # Batches of similar lengths pad less: several times faster than random batches.
    "train_sampling_strategy": "group_by_length",
    "seed": 42,
    # The Trainer multiplies the loss by the number of processes for any model whose forward
    # takes **kwargs, expecting it to divide by the tokens of the whole distributed batch. The
    # heads of BERT and T5 take a plain mean instead: their loss and gradients would be N times
    # too large in N processes. Off, each process's mean is averaged by DDP, as in one process.
    "average_tokens_across_devices": False,
}

#: What every task's evaluation needs: its post-processing sees every output of the split at once.
REQUIRED_TRAINING: dict[str, Any] = {"eval_do_concat_batches": True, "batch_eval_metrics": False}


def required_training(task: BaseTask) -> dict[str, Any]:
    """The ``[training]`` settings ``task`` cannot run without: its ``required_training``, and for a task that encodes
    lazily ``remove_unused_columns = false``, since the Trainer would drop the raw columns its ``encode`` reads before encoding."""
    return {**({"remove_unused_columns": False} if task.lazy_encoding else {}), **task.required_training}


class Manifest(Section):
    """A whole manifest: the top-level keys of every task's. :func:`manifest_model` types a task's own tables."""

    task: str = Field(description="The task to run (see `ftrun tasks`).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    plugins: list[str] = Field(default_factory=list, description="Plugin modules to import for this run.")
    output_dir: str | None = Field(None, description="Where the results go; --output-dir wins over it.")
    resume: bool | str = Field(
        False,
        description="Continue from the newest complete checkpoint of the output directory (true), or from this checkpoint.",
        json_schema_extra={"path": "local"},
    )
    nproc: int | None = Field(None, ge=1, description="Train in this many processes on this machine, started with torchrun; --nproc wins over it.")

    @field_validator("plugins", "output_dir", "resume", "nproc", mode="wrap")
    @classmethod
    def _in_ftrun_words(cls, value: Any, handler: Callable[[Any], Any], info: Any) -> Any:
        # What each key takes, said whole: pydantic's words would list the members of a union.
        try:
            return handler(value)
        except ValidationError:
            raise _said(TOP_LEVEL_EXPECTED[info.field_name].format(kind=_type_name(value), value=value)) from None


#: What a wrong top-level value is told (``kind``: the TOML type it has, ``value``: the value).
TOP_LEVEL_EXPECTED = {
    "plugins": "expected an array of module names",
    "output_dir": "expected a string, got {kind}",
    "resume": "expected true, false or a checkpoint path, got {kind}",
    "nproc": "expected a positive number of processes, got {value!r}",
}

TOP_LEVEL_KEYS = tuple(Manifest.model_fields)


@dataclasses.dataclass
class RunConfig:
    """The validated description of one run, as every hook receives it."""

    task: str
    model: ModelConfig
    data: DataConfig
    training: dict[str, Any]
    metrics: MetricsConfig
    predict: PredictConfig
    plugins: list[str]
    output_dir: str | None
    source: str
    """Where the config came from, for messages: a manifest name or ``--task NAME``."""
    manifest: dict[str, Any]
    """The effective manifest (defaults, file and overrides merged), as written to the model card."""

    overridden: frozenset[str] = frozenset()
    """The keys given with ``--set``: errors about them name ``--set``, not the manifest."""
    training_defaults: frozenset[str] = frozenset()
    """The ``[training]`` keys neither the manifest nor ``--set`` gave: their values are defaults, which ftrun may size to the run."""
    demo: bool = False
    """Whether this is the task's embedded default (``--demo``, or the offline fallback)."""
    default_data: bool = False
    """Whether ``[data]`` is the task's default dataset (or its demo's) with its settings; else the manifest names its own, with the task's generic ``[data]`` defaults."""
    resume: bool | str = False
    """Continue from the newest complete checkpoint of the output directory (``True``) or from this one."""
    nproc: int | None = None
    """Processes to train in on this machine, started with torchrun (``--nproc`` wins over it)."""
    tables: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The plugin tables (``ftrun_register_tables``) the manifest has, validated, by name; a table it lacks is absent."""

    def where(self, key: str) -> str:
        """Prefix for an error message about ``key``: ``run.toml: training.learning_rate``."""
        return Origin(self.source, self.overridden)(key)


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where each key of a config came from, so that an error points at the right place."""

    source: str
    overridden: frozenset[str] = frozenset()

    def __call__(self, key: str) -> str:
        if any(key == k or key.startswith(k + ".") for k in self.overridden):
            return f"--set {key}"
        return f"{self.source}: {key}"


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Parse a TOML manifest; a missing or malformed file is a FtrunError naming it."""
    path = Path(path)
    if not path.exists():
        raise FtrunError(f"{path}: manifest not found")
    if path.is_dir():
        raise FtrunError(f"{path}: is a directory, not a manifest file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FtrunError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise FtrunError(f"{path}: cannot read manifest ({exc.strerror})") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FtrunError(f"{path}: invalid TOML: {exc}") from exc


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``--set section.key=value``; the key is a TOML key (``search.space."training.learning_rate"``), the value TOML or a plain string."""
    key, value = _split_override(text)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # bare words such as model.name=bert-base-uncased
    return key, parsed


def _split_override(text: str) -> tuple[list[str], str]:
    """The parts of ``--set``'s TOML key and the text of its value: the first ``=`` outside the key's quotes ends the key."""
    for at in (i for i, char in enumerate(text) if char == "="):
        try:
            table = tomllib.loads(f"{text[:at]} = 0")
        except tomllib.TOMLDecodeError:
            continue
        parts = []
        while isinstance(table, dict):
            ((part, table),) = table.items()
            parts.append(part)
        return parts, text[at + 1 :]
    raise FtrunError(f"--set {text}: expected section.key=value")


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``; tables merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(manifest: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FtrunError(f"--set {text}: {part} is not a table")
            node = child
        node[path[-1]] = value
    return out


def did_you_mean(key: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _said(message: str) -> PydanticCustomError:
    """An error whose message ftrun wrote whole: reported as it is, without the value appended."""
    return PydanticCustomError("ftrun", "{message}", {"message": message})


def _problem(where: Origin, model: type[BaseModel], exc: ValidationError) -> FtrunError:
    """The first error of a manifest's validation, as ``SOURCE: section.key: what is wrong``."""
    error = exc.errors()[0]
    parts = [str(part) for part in error["loc"]]
    loc, _ = _key_of(model, parts)
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        _, table = _key_of(model, parts[:-1])
        keys = table.model_fields if isinstance(table, type) and issubclass(table, BaseModel) else ()
        return FtrunError(f"{where(key)}: unknown key{did_you_mean(loc[-1], keys)}")
    if error["type"] in ("ftrun", "value_error"):  # ftrun's words, or a task's or plugin's own validator: its message as it wrote it
        return FtrunError(f"{where(key)}: {error['ctx']['error'] if error['type'] == 'value_error' else error['msg']}")
    if error["type"] == "model_type":
        return FtrunError(f"{where(key)}: expected a table, got {_type_name(error['input'])}")
    if error["type"] == "finite_number":
        return FtrunError(f"{where(key)}: must be a finite number, got {error['input']}")
    message = error["msg"][:1].lower() + error["msg"][1:]
    got = f", got {error['input']!r}" if len(loc) > 1 else ""  # not the whole table, for a check across its keys
    return FtrunError(f"{where(key)}: {message}{got}")


def _key_of(model: type[BaseModel], loc: list[str]) -> tuple[list[str], Any]:
    """The manifest key of a pydantic error's ``loc`` (without the union members it names: ``model.config.dict[str,any]``), and the type there.

    The type is walked through tables, the values of dict-typed tables (``search.space``), items of arrays and optional values.
    """
    kind: Any = model
    parts: list[str] = []
    for part in loc:
        if _is_union(kind):  # pydantic names the member it tried, which is no key of the manifest
            kind = Any
            continue
        parts.append(part)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            kind = kind.model_fields[part].annotation if part in kind.model_fields else Any
        elif typing.get_origin(kind) in (dict, list):
            kind = typing.get_args(kind)[-1]  # ``part`` is a key of the dict or an index of the array
        else:
            kind = Any
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and not _is_union(kind):  # ``X | None``: X
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    return parts, kind


def _is_union(kind: Any) -> bool:
    """Whether ``kind`` is a union of several types (``None`` aside), whose members pydantic's errors name."""
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and len([arg for arg in typing.get_args(kind) if arg is not type(None)]) > 1


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer", float: "a float"}.get(type(value), type(value).__name__)


# -- [training]: read from the TrainingArguments dataclass -------------------------------------


#: ``[training]`` keys where 0 is as absurd as a negative number: nothing would be trained or logged.
POSITIVE = frozenset(("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "logging_steps", "eval_steps", "save_steps"))

#: ``[training]`` numbers that may be negative though their default is not; any other may only
#: be where its default is (``max_steps = -1``: no limit).
SIGNED = frozenset(("seed", "data_seed"))

#: Where a TrainingArguments annotation says less than the field takes: ``fsdp`` is typed
#: ``str`` (its older strategy names), but ``fsdp = true`` is how FSDP is turned on now.
ANNOTATION_FIXES: dict[str, Any] = {"fsdp": bool | str | None}


@functools.cache
def training_model(args_class: type) -> type[Section]:
    """``[training]`` as a pydantic model with one field per field of a ``TrainingArguments`` dataclass.

    The one reading of the dataclass: manifests are validated against this model and the schema's
    ``[training]`` is its JSON Schema. Defaults are ftrun's (:data:`TRAINING_DEFAULTS`) where it
    has one, else the dataclass's; a task's own (``Task.defaults``) may differ again.
    """
    hints = {**typing.get_type_hints(args_class), **ANNOTATION_FIXES}
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(args_class):
        if not field.init:
            continue
        if field.name == "output_dir":  # a field only to be refused, so that it is named: the output directory is --output-dir
            fields[field.name] = (SkipJsonSchema[Annotated[Any, BeforeValidator(_refuse_output_dir)]], None)
        else:
            fields[field.name] = _training_field(field, hints[field.name])
    return create_model(args_class.__name__, __base__=Section, __cls_kwargs__={"title": f"[training]: transformers.{args_class.__name__}"}, **fields)


def _training_field(field: dataclasses.Field, annotation: Any) -> tuple[Any, FieldInfo]:
    """One dataclass field as a pydantic field: its type as TOML spells it, its bounds, default and help."""
    default = field.default
    if field.name in POSITIVE:
        bounds = {"gt": 0}
    elif field.name in SIGNED or (isinstance(default, (int, float)) and default < 0):
        bounds = {}
    else:
        bounds = {"ge": 0}
    if "choices" in field.metadata:
        kind = Literal[tuple(getattr(choice, "value", choice) for choice in field.metadata["choices"])]
    else:
        kind = toml_type(annotation, bounds)
    expected = getattr(annotation, "__name__", annotation)  # float, not <class 'float'>
    help_text = " ".join(str(field.metadata["help"]).split()) if field.metadata.get("help") else None
    default = TRAINING_DEFAULTS.get(field.name, default)
    if default is dataclasses.MISSING:
        info = Field(default_factory=field.default_factory, description=help_text)
    else:
        info = Field(default.value if isinstance(default, enum.Enum) else default, description=help_text)
    return Annotated[kind, WrapValidator(functools.partial(_in_training_words, expected))], info


def toml_type(annotation: Any, bounds: dict[str, float] | None = None) -> Any:
    """A dataclass annotation as the type a TOML value is checked against; ``Any`` where TOML cannot spell it.

    ``bounds`` (``gt``, ``ge``) constrain its numbers. TOML has no null, so ``None`` is dropped.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if any(_is_enum(arg) for arg in args):  # ``SchedulerType | str``: the str is one of the enum's values
            args = [arg for arg in args if arg is not str]
        options = [toml_type(arg, bounds) for arg in args]
        return Any if Any in options else typing.Union[tuple(options)]  # noqa: UP007 - a union built at run time
    if origin is typing.Literal or annotation in (bool, str):
        return annotation
    if annotation in (int, float):  # strict: an int is a float, a bool is neither
        return Annotated[annotation, Field(**bounds)] if bounds else annotation
    if _is_enum(annotation):
        return Literal[tuple(member.value for member in annotation)]
    if annotation is list or origin is list:
        items = typing.get_args(annotation)
        return list[toml_type(items[0]) if items else Any]
    if annotation is tuple or origin is tuple:
        return list[Any]
    if annotation is dict or origin is dict:
        return dict[str, Any]
    return Any


def _is_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _in_training_words(expected: str, value: Any, handler: Callable[[Any], Any]) -> Any:
    """Validate a ``[training]`` value, its errors in the words of the dataclass annotation ``expected``."""
    try:
        return handler(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "greater_than":  # the only bound is 0 (POSITIVE): "0", not "0.0" for a float field
            raise _said(f"must be greater than 0, got {value}") from None
        if error["type"] == "greater_than_equal":
            raise _said(f"must not be negative, got {value}") from None
        if error["type"] == "finite_number":
            raise _said(f"must be a finite number, got {value}") from None
        if error["type"] == "literal_error":
            raise  # pydantic's words list the values it takes
        raise _said(f"expected {expected}, got {_type_name(value)} {value!r}") from None


def _refuse_output_dir(value: Any) -> Any:
    raise _said("set the output directory with --output-dir or a top-level output_dir")


# -- a whole manifest ---------------------------------------------------------------------------


def manifest_model(task: BaseTask, tables: Mapping[str, type[BaseModel]] | None = None) -> type[Manifest]:
    """The model a manifest of ``task`` is validated by: :class:`Manifest` with the task's own tables and the plugins' ``tables``."""
    return _manifest_model(type(task), task.training_arguments_class, tuple(sorted((tables or {}).items())))


@functools.cache
def _manifest_model(task_class: type[Task], arguments_class: type, plugin_tables: tuple[tuple[str, type[BaseModel]], ...]) -> type[Manifest]:
    retyped = {
        "task": Literal[task_class.name],
        "model": task_class.model_config,
        "data": task_class.data_config,
        "training": training_model(arguments_class),
        "metrics": task_class.metrics_config,
    }
    fields: dict[str, Any] = {key: (kind, Manifest.model_fields[key]) for key, kind in retyped.items()}  # the field as Manifest declares it, retyped
    for name, model in plugin_tables:  # absent unless the manifest has the table: its presence turns the plugin's feature on
        fields[name] = (model, Field(None, json_schema_extra=_no_default))
    return create_model(
        f"{task_class.__name__}Manifest",
        __base__=Manifest,
        __doc__=task_class.description or None,
        __cls_kwargs__={"title": f"{task_class.name} manifest"},
        **fields,
    )


def _no_default(schema: dict[str, Any]) -> None:
    """A plugin table's default is its absence, which TOML cannot spell: the schema gives none."""
    schema.pop("default", None)


def _validate_model_config(where: Origin, settings: dict[str, Any]) -> None:
    """``[model] config`` keys must be the model family's: a config class keeps a misspelt one as an unused attribute."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import CONFIG_MAPPING, GenerationConfig

    model_type = settings.get("model_type")
    if not isinstance(model_type, str):
        return  # the head stage says that a model_type is needed
    if model_type not in CONFIG_MAPPING:
        raise FtrunError(f"{where('model.config.model_type')}: unknown model type {model_type!r}{did_you_mean(model_type, CONFIG_MAPPING.keys())}")
    config_class = CONFIG_MAPPING[model_type]
    known = {field.name for field in dataclasses.fields(config_class)} if dataclasses.is_dataclass(config_class) else set()
    # Its aliases (n_embd for hidden_size...), properties (num_labels), and the generation settings configs still take.
    known |= set(config_class().to_dict()) | set(getattr(config_class, "attribute_map", {})) | set(GenerationConfig().to_dict())
    for key in settings:
        if key not in known and not hasattr(config_class, key):
            raise FtrunError(f"{where('model.config.' + key)}: unknown key for a {model_type} config{did_you_mean(key, known)}")
    names = {name: size for size, name in getattr(config_class, "attribute_map", {}).items()}  # GPT-2's n_embd is a hidden_size
    for key, value in settings.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FtrunError(f"{where('model.config.' + key)}: must be a finite number, got {value}")
        if names.get(key, key) in MODEL_SIZES and isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            raise FtrunError(f"{where('model.config.' + key)}: must be greater than 0, got {value}")
    try:  # transformers checks each key's type (hidden_size = 3.5): its message names the key
        config_class(**{key: value for key, value in settings.items() if key != "model_type"})
    except StrictDataclassError as exc:
        key, _, problem = str(exc).partition("\n")
        field = re.search(r"'([^']+)'", key)
        problem = re.sub(r"^\w+: (Field '[^']+' )?", "", problem.strip())  # "TypeError: Field 'hidden_size' expected int, ..."
        raise FtrunError(f"{where('model.config' + (f'.{field[1]}' if field else ''))}: {problem}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a value of the wrong shape (id2label = 3) fails in the config's own code
        raise FtrunError(f"{where('model.config')}: not a valid {model_type} config: {type(exc).__name__}: {first_line(exc)}") from None


#: The sizes every model family has, by these names or its own (``attribute_map``: GPT-2's ``n_embd``, T5's ``d_model``).
#: Transformers builds a model from a config with any of them at zero or below, and fails only once it runs.
MODEL_SIZES = frozenset(
    ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "head_dim", "num_key_value_heads")
)


def manifest_plugins(manifest: dict[str, Any], where: Callable[[str], str]) -> list[str]:
    """The manifest's ``plugins = [...]``: needed before the task can be known, so read early."""
    plugins = manifest.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise FtrunError(f"{where('plugins')}: {TOP_LEVEL_EXPECTED['plugins']}")
    return plugins


def build_config(
    task: BaseTask,
    manifest: dict[str, Any],
    *,
    source: str,
    base_dir: Path,
    overrides: list[str] = (),
    demo: bool = False,
    tables: Mapping[str, type[BaseModel]] | None = None,
    finished: bool = False,
) -> RunConfig:
    """Layer the task's defaults (or its demo), the manifest and the overrides, then validate.

    Relative paths in the manifest are resolved against ``base_dir`` (the manifest's folder);
    ``tables`` are the plugins' tables (:meth:`PluginManager.tables`). The ``[predict]`` examples
    are read by the task (``read_input``) and kept as it resolved them, except where the manifest
    is a ``finished`` run's ``ftrun.toml`` (``ftrun predict``, ``ftrun eval``): that run resolved
    them, wherever it ran, and they are not read again from another folder.
    """
    manifest = apply_overrides(manifest, list(overrides))
    where = Origin(source, frozenset(".".join(parse_override(text)[0]) for text in overrides))
    model = manifest_model(task, tables)
    resolve_paths(manifest, model, base_dir)
    defaults = drop_replaced_sources(merge({"training": TRAINING_DEFAULTS}, demo_manifest(task) if demo else task.defaults), manifest)
    effective = merge(defaults, manifest)
    effective["task"] = task.name
    try:
        checked = model.model_validate(effective)
    except ValidationError as exc:
        raise _problem(where, model, exc) from None
    training = dict(effective["training"])  # as written: TrainingArguments converts the values itself
    for who, required in ((f"task {task.name}", required_training(task)), ("ftrun", REQUIRED_TRAINING)):
        for key, value in required.items():
            if key in training and training[key] != value:
                raise FtrunError(f"{where('training.' + key)}: {who} needs {key} = {tomli_w.dumps({'v': value})[4:].strip()}")
    effective["training"] = training = {**training, **REQUIRED_TRAINING, **required_training(task)}
    if isinstance(checked.model.config, dict):
        _validate_model_config(where, checked.model.config)
    plugin_tables = {name: getattr(checked, name) for name in tables or {} if getattr(checked, name) is not None}
    for name, table in plugin_tables.items():  # written whole into ftrun.toml: the run as it ran, whatever later defaults are
        effective[name] = table.model_dump(exclude_none=True)
    config = task.settle(
        RunConfig(
            task=task.name,
            model=checked.model,
            data=checked.data,
            training=training,
            metrics=checked.metrics,
            predict=checked.predict,
            plugins=checked.plugins,
            output_dir=checked.output_dir,
            source=source,
            manifest=effective,
            overridden=where.overridden,
            training_defaults=frozenset(training) - set(manifest.get("training", {})),
            demo=demo,
            default_data=not names_own_data(manifest),
            resume=checked.resume,
            nproc=checked.nproc,
            tables=plugin_tables,
        )
    )
    return config if finished else resolve_examples(task, config, where)


def resolve_examples(task: BaseTask, config: RunConfig, where: Origin) -> RunConfig:
    """``config`` with its ``[predict]`` examples as the task reads them (``read_input``), which its ``ftrun.toml`` stores."""
    resolved = []
    for number, example in enumerate(config.predict.examples, 1):
        value = task.read_input(example, f"{where('predict.examples')}[{number}]", config)
        if not isinstance(value, (str, dict)):
            raise FtrunError(f"task {task.name}: read_input returned {type(value).__name__} for predict.examples[{number}]: expected a text or a table")
        resolved.append(value)
    if resolved:
        config.manifest["predict"] = {**config.manifest.get("predict", {}), "examples": resolved}
    return dataclasses.replace(config, predict=config.predict.model_copy(update={"examples": resolved}))


def demo_manifest(task: BaseTask) -> dict[str, Any]:
    """The task's embedded default: its ``demo`` laid over its ``defaults`` as a manifest would be."""
    if task.demo is None:
        raise FtrunError(f"task {task.name} has no embedded demo")
    return merge(drop_replaced_sources(copy.deepcopy(task.defaults), task.demo), task.demo)


#: The keys by which a manifest names a source of its own, per table. ``[model]``: a manifest that
#: names its own model inherits none of the default model's keys that describe it. ``[data]``:
#: the ``[data]`` table of a task's defaults (or its demo) is its default dataset's (its Hub id,
#: splits, subset sizes, column names): a manifest that names its own data inherits none of it,
#: and gets the task's generic defaults, its data table's own (``Task.data_config``).
SOURCES = {"model": ("name", "config"), "data": ("dataset", "train_file", "eval_file")}
#: The default model's keys that a manifest naming its own model does not inherit.
DEFAULT_MODEL_KEYS = ("name", "config", "tokenizer")


def names_own_data(manifest: dict[str, Any]) -> bool:
    """Whether ``manifest`` names data of its own: the task's default dataset and its settings then do not apply."""
    given = manifest.get("data")
    return isinstance(given, dict) and any(key in given for key in SOURCES["data"])


def drop_replaced_sources(defaults: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Remove from ``defaults`` what describes the default model or dataset where the manifest names its own."""
    given = manifest.get("model")
    if isinstance(given, dict) and any(key in given for key in SOURCES["model"]) and "model" in defaults:
        for key in DEFAULT_MODEL_KEYS:
            defaults["model"].pop(key, None)
    if names_own_data(manifest):
        defaults.pop("data", None)
    return defaults


def resolve_paths(manifest: dict[str, Any], model: type[BaseModel], base_dir: Path) -> None:
    """Make relative local paths absolute against the manifest's folder, in place.

    The fields that hold paths say so (``json_schema_extra={"path": "local"}``, or
    ``"local-or-hub"`` for a Hub id or a path), so a task's own tables mark their own.
    """
    for key, field in model.model_fields.items():
        value = manifest.get(key)
        kind = field.json_schema_extra.get("path") if isinstance(field.json_schema_extra, dict) else None
        if isinstance(value, dict) and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            resolve_paths(value, field.annotation, base_dir)
        elif kind and isinstance(value, str) and value:  # an empty path is no folder's: the key's own check refuses it
            path = Path(value).expanduser()
            candidate = path if path.is_absolute() else base_dir / path
            if kind == "local" or candidate.exists() or looks_like_path(value):
                manifest[key] = str(candidate)


def looks_like_path(value: str) -> bool:
    """A Hub id is ``name`` or ``owner/name``; anything else with a separator is a local path."""
    return value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value
