"""Manifests: read TOML, layer defaults, manifest and ``--set`` overrides, validate.

Everything is checked here, before any model or dataset loads, and every problem is
reported as ``SOURCE: section.key: what is wrong``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import FtrunError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from .task import Task


class Section(BaseModel):
    """A manifest table: unknown keys and wrong types are errors, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ModelConfig(Section):
    """``[model]``: pretrained weights by ``name``, or a fresh model built from ``config``."""

    name: str | None = Field(None, description="Hub id or local directory of a pretrained model.")
    config: dict[str, Any] | str | None = Field(
        None, description="Build the model from this config (a table, or a config.json path) instead of weights."
    )
    tokenizer: str | None = Field(
        None, description="Hub id or directory of the tokenizer; default: the model's, or one trained on the data."
    )
    tokenizer_vocab_size: int = Field(8000, gt=0, description="Vocabulary size when a tokenizer is trained.")
    tokenizer_lowercase: bool = Field(True, description="Lowercase text in a trained tokenizer (keep case for names: false).")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of the model.")
    trust_remote_code: bool = Field(False, description="Allow code from the model repository to run.")


class DataConfig(Section):
    """``[data]``: where the splits come from and how much of them to use. Tasks add their columns."""

    dataset: str | None = Field(None, description="Hub id or local path of a dataset.")
    dataset_config: str | None = Field(None, description="Configuration name of a Hub dataset.")
    train_file: str | None = Field(None, description="Local csv, json, jsonl, jsonl.gz or parquet file.")
    eval_file: str | None = Field(None, description="Local csv, json, jsonl, jsonl.gz or parquet file.")
    train_split: str = "train"
    eval_split: str = "test"
    max_train_samples: int | None = Field(None, gt=0)
    max_eval_samples: int | None = Field(None, gt=0)
    max_length: int | None = Field(None, gt=0, description="Truncate inputs to this many tokens.")
    shuffle_seed: int = Field(42, description="Seed of the shuffle before max_*_samples are taken.")


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

TOP_LEVEL_KEYS = ("task", "model", "data", "training", "metrics", "predict", "plugins", "output_dir", "resume", "nproc")


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
    resume: bool | str = False
    """Continue from the newest complete checkpoint of the output directory (``True``) or from this one."""
    nproc: int | None = None
    """Processes to train in on this machine, started with torchrun (``--nproc`` wins over it)."""

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
    """Parse ``--set section.key=value``; the value is TOML, or a plain string when it is not."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise FtrunError(f"--set {text}: expected section.key=value")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # bare words such as model.name=bert-base-uncased
    return key.split("."), parsed


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


def _validate_section(where: Origin, name: str, model: type[Section], value: Any) -> Section:
    if not isinstance(value, dict):
        raise FtrunError(f"{where(name)}: expected a table, got {_type_name(value)}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join([name, *(str(part) for part in error["loc"])])
        if error["type"] == "extra_forbidden":
            hint = did_you_mean(str(error["loc"][-1]), model.model_fields)
            raise FtrunError(f"{where(key)}: unknown key{hint}") from None
        if error["type"] == "value_error":  # a task's own validator: its message as it wrote it
            message = str(error["ctx"]["error"])
        else:
            message = error["msg"][:1].lower() + error["msg"][1:]
        got = f", got {error['input']!r}" if error["loc"] else ""  # not the whole table, for a check across keys
        raise FtrunError(f"{where(key)}: {message}{got}") from None


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer", float: "a float"}.get(
        type(value), type(value).__name__
    )


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits a TrainingArguments annotation; unknown kinds are left to the dataclass."""
    if isinstance(annotation, str):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple) or annotation in (list, tuple):
        return isinstance(value, list)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type) and issubclass(annotation, str):  # str-valued enums
        return isinstance(value, str)
    return True


#: ``[training]`` keys where 0 is as absurd as a negative number: nothing would be trained or logged.
POSITIVE = frozenset(
    ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "logging_steps", "eval_steps", "save_steps")
)


#: Where a TrainingArguments annotation says less than the field takes: ``fsdp`` is typed
#: ``str`` (its older strategy names), but ``fsdp = true`` is how FSDP is turned on now.
ANNOTATION_FIXES: dict[str, Any] = {"fsdp": bool | str | None}


def training_annotations(args_class: type) -> dict[str, Any]:
    """The type of each field of a TrainingArguments class, as manifest values are checked against it."""
    return {**typing.get_type_hints(args_class), **ANNOTATION_FIXES}


def _validate_training(where: Origin, training: Any, args_class: type) -> dict[str, Any]:
    if not isinstance(training, dict):
        raise FtrunError(f"{where('training')}: expected a table, got {_type_name(training)}")
    fields = {f.name: f for f in dataclasses.fields(args_class) if f.init}
    hints = training_annotations(args_class)
    for key, value in training.items():
        if key == "output_dir":
            raise FtrunError(f"{where('training.output_dir')}: set the output directory with --output-dir or a top-level output_dir")
        if key not in fields:
            raise FtrunError(f"{where('training.' + key)}: unknown key{did_you_mean(key, fields)}")
        annotation = hints.get(key, fields[key].type)
        if not _accepts(annotation, value):
            expected = getattr(annotation, "__name__", annotation)  # float, not <class 'float'>
            raise FtrunError(f"{where('training.' + key)}: expected {expected}, got {_type_name(value)} {value!r}")
        if key in POSITIVE and isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise FtrunError(f"{where('training.' + key)}: must be greater than 0, got {value}")
        default = fields[key].default
        may_be_negative = key in ("seed", "data_seed") or (isinstance(default, (int, float)) and default < 0)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0 and not may_be_negative:
            raise FtrunError(f"{where('training.' + key)}: must not be negative, got {value}")
    return dict(training)


def _validate_model_config(where: Origin, settings: dict[str, Any]) -> None:
    """``[model] config`` keys must be the model family's: a config class keeps a misspelt one as an unused attribute."""
    import dataclasses

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


def manifest_plugins(manifest: dict[str, Any], where: Callable[[str], str]) -> list[str]:
    """The manifest's ``plugins = [...]``: needed before the task can be known, so read early."""
    plugins = manifest.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise FtrunError(f"{where('plugins')}: expected an array of module names")
    return plugins


def build_config(
    task: Task,
    manifest: dict[str, Any],
    *,
    source: str,
    base_dir: Path,
    overrides: list[str] = (),
    demo: bool = False,
) -> RunConfig:
    """Layer the task's defaults (or its demo), the manifest and the overrides, then validate.

    Relative paths in the manifest are resolved against ``base_dir`` (the manifest's folder).
    """
    manifest = apply_overrides(manifest, list(overrides))
    where = Origin(source, frozenset(".".join(parse_override(text)[0]) for text in overrides))
    for key in manifest:
        if key not in TOP_LEVEL_KEYS:
            raise FtrunError(f"{where(key)}: unknown key{did_you_mean(key, TOP_LEVEL_KEYS)}")
    resolve_paths(manifest, base_dir)
    defaults = drop_replaced_sources(merge({"training": TRAINING_DEFAULTS}, task.demo() if demo else task.defaults), manifest)
    effective = merge(defaults, manifest)
    effective["task"] = task.name
    plugins = manifest_plugins(effective, where)
    output_dir = effective.get("output_dir")
    if output_dir is not None and not isinstance(output_dir, str):
        raise FtrunError(f"{where('output_dir')}: expected a string, got {_type_name(output_dir)}")
    resume = effective.get("resume", False)
    if not isinstance(resume, (bool, str)):
        raise FtrunError(f"{where('resume')}: expected true, false or a checkpoint path, got {_type_name(resume)}")
    if isinstance(resume, str):
        resume = str(base_dir / Path(resume).expanduser())  # a checkpoint, relative to the manifest's folder
    nproc = effective.get("nproc")
    if nproc is not None and (not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1):
        raise FtrunError(f"{where('nproc')}: expected a positive number of processes, got {nproc!r}")
    training = _validate_training(where, effective.get("training", {}), task.training_arguments_class)
    for who, required in ((f"task {task.name}", task.required_training), ("ftrun", REQUIRED_TRAINING)):
        for key, value in required.items():
            if key in training and training[key] != value:
                raise FtrunError(f"{where('training.' + key)}: {who} needs {key} = {tomli_w.dumps({'v': value})[4:].strip()}")
    effective["training"] = training = {**training, **REQUIRED_TRAINING, **task.required_training}
    predict = _validate_section(where, "predict", PredictConfig, effective.get("predict", {}))
    for number, example in enumerate(predict.examples, 1):
        task.read_input(example, f"{where('predict.examples')}[{number}]")
    model = _validate_section(where, "model", ModelConfig, effective.get("model", {}))
    if isinstance(model.config, dict):
        _validate_model_config(where, model.config)
    return RunConfig(
        task=task.name,
        model=model,
        data=_validate_section(where, "data", task.data_config, effective.get("data", {})),
        training=training,
        metrics=_validate_section(where, "metrics", task.metrics_config, effective.get("metrics", {})),
        predict=predict,
        plugins=plugins,
        output_dir=output_dir,
        source=source,
        manifest=effective,
        overridden=where.overridden,
        training_defaults=frozenset(training) - set(manifest.get("training", {})),
        demo=demo,
        resume=resume,
        nproc=nproc,
    )


#: Per table: the keys that name a source of its own, and every key describing the default
#: source. A manifest that names its own model or data inherits none of the defaults' source
#: keys: not the default model's name, nor the default dataset's splits and subset sizes.
SOURCES = {
    "model": (("name", "config"), ("name", "config", "tokenizer")),
    "data": (
        ("dataset", "train_file", "eval_file"),
        ("dataset", "dataset_config", "train_file", "eval_file", "train_split", "eval_split", "max_train_samples", "max_eval_samples"),
    ),
}


def drop_replaced_sources(defaults: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Remove the defaults' source keys from every table where the manifest names its own source."""
    for section, (naming, describing) in SOURCES.items():
        given = manifest.get(section)
        if isinstance(given, dict) and any(key in given for key in naming) and section in defaults:
            for key in describing:
                defaults[section].pop(key, None)
    return defaults


#: Keys whose values are always local paths, and those that may be a path or a Hub id.
PATH_KEYS = {("data", "train_file"), ("data", "eval_file")}
PATH_OR_HUB_KEYS = {("data", "dataset"), ("model", "name"), ("model", "tokenizer"), ("model", "config")}


def resolve_paths(manifest: dict[str, Any], base_dir: Path) -> None:
    """Make relative local paths absolute against the manifest's folder, in place."""
    for section, key in PATH_KEYS | PATH_OR_HUB_KEYS:
        table = manifest.get(section)
        if not isinstance(table, dict) or not isinstance(table.get(key), str):
            continue
        value = Path(table[key]).expanduser()
        candidate = value if value.is_absolute() else base_dir / value
        if (section, key) in PATH_KEYS or candidate.exists() or looks_like_path(table[key]):
            table[key] = str(candidate)


def looks_like_path(value: str) -> bool:
    """A Hub id is ``name`` or ``owner/name``; anything else with a separator is a local path."""
    return value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value
