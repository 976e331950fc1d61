"""Predictions with a trained model: the default ``Task.predict``, and the model ``ftrun predict`` loads.

``ftrun predict`` loads the model through the head stage, as a run builds it, so that a plugin
that changes the head (its class, a wrapper) is consulted at prediction too.

A model directory is data, never code, and is checked before anything loads from it
(:func:`read_model_dir`): a run's folder against its marker (every file it wrote, at its size);
a plain model directory (downloaded, or saved by other code) has none and is loaded as it is,
its weights and processor checked as they load. Neither its ``ftrun.toml`` (``plugins``,
``trust_remote_code``) nor its config (``auto_map``) makes ftrun run code: the user allows that
(:func:`code_asked_for`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrun.stages.data import TaskData
from ftrun.util.errors import FtrunError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ftrun.api.plugin_manager import PluginManager
    from ftrun.api.task import BaseTask
    from ftrun.manifest.config import ModelConfig, RunConfig

#: Inputs run through the model at once.
PREDICT_BATCH = 32


def read_model_dir(model_dir: Path) -> dict[str, Any]:
    """The manifest of the run that wrote ``model_dir`` (``{}`` for a plain model directory), once the folder is checked against its marker.

    Nothing is loaded before: a file of the run missing or cut short, or a run stopped while
    moving its outputs into place, is one line naming it.
    """
    from ftrun.manifest.config import read_manifest
    from ftrun.stages.output import MANIFEST_NAME, RUN_SEAL, STAGING_NAME
    from ftrun.stages.training import seal_problem

    if not model_dir.is_dir():
        raise FtrunError(f"--model: {model_dir} is not a directory")
    if (model_dir / STAGING_NAME / RUN_SEAL).exists():
        raise FtrunError(f"--model: {model_dir}: its run was stopped while moving its outputs into place: run it again with --resume to finish them")
    if (model_dir / RUN_SEAL).exists():
        problem = seal_problem(model_dir, RUN_SEAL)
        if problem:
            raise FtrunError(f"--model: {model_dir}: {problem}: the folder is not as its run wrote it")
    manifest = model_dir / MANIFEST_NAME
    return read_manifest(manifest) if manifest.is_file() else {}


def code_asked_for(model_dir: Path, manifest: dict[str, Any]) -> str | None:
    """What in ``model_dir`` asks to run its own code (its run's ``trust_remote_code``, its config's ``auto_map``), or ``None``."""
    from ftrun.stages.output import MANIFEST_NAME

    if isinstance(manifest.get("model"), dict) and manifest["model"].get("trust_remote_code") is True:
        return f"{model_dir / MANIFEST_NAME}: model.trust_remote_code = true"
    for name in ("config.json", "tokenizer_config.json"):
        try:
            settings = json.loads((model_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # loading says what is wrong with it, with remote code not allowed
        if isinstance(settings, dict) and settings.get("auto_map"):
            return f"{model_dir / name}: auto_map ({json.dumps(settings['auto_map'])})"
    return None


def without_code(manifest: dict[str, Any]) -> dict[str, Any]:
    """A model directory's manifest without what would run code: its ``plugins`` and ``model.trust_remote_code`` are the user's to give."""
    manifest = copy.deepcopy(manifest)
    manifest.pop("plugins", None)
    if isinstance(manifest.get("model"), dict):
        manifest["model"].pop("trust_remote_code", None)
    return manifest


def check_plugins(plugins: PluginManager, model_dir: Path, manifest: dict[str, Any]) -> None:
    """The plugins that ``model_dir``'s run named must be loaded already (installed, ``--plugin``, the user's manifest): never on the folder's word."""
    from ftrun.stages.output import MANIFEST_NAME

    loaded = set(plugins.info) | {info.module for info in plugins.info.values()}
    named = manifest.get("plugins") if isinstance(manifest.get("plugins"), list) else []
    missing = [str(name) for name in named if name not in loaded and not plugins.is_blocked(str(name))]
    if missing:
        flags = " ".join(f"--plugin {name}" for name in missing)
        raise FtrunError(
            f"{model_dir / MANIFEST_NAME}: plugins: its run loaded {', '.join(missing)}; ftrun loads no code that a model folder names: pass {flags} to load it"
        )


def check_remote_code(config: RunConfig, model_dir: Path, manifest: dict[str, Any]) -> str | None:
    """Refuse a model directory that asks to run its own code the user did not allow; the warning to print where they did.

    ``config`` is built from the user's flags and manifest over :func:`without_code`'s: its ``trust_remote_code`` is the user's.
    """
    from ftrun.stages.preflight import remote_code_warning

    if config.model.trust_remote_code:
        return remote_code_warning(dataclasses.replace(config, model=config.model.model_copy(update={"name": str(model_dir)})))
    asked = code_asked_for(model_dir, manifest)
    if asked:
        raise FtrunError(f"{asked}: the model folder asks to run its own code, which ftrun does not unless you allow it: pass --trust-remote-code")
    return None


def load_trained(plugins: PluginManager, task: BaseTask, config: RunConfig, model_dir: Path) -> tuple[PreTrainedModel, Any]:
    """The model and processor of a finished run's output directory (or a plain model directory), through the head stage.

    The head stage sees ``model.name`` set to the directory (its config.json holds the labels),
    and data with the directory's processor only (``task.load_processor``). Weights cut short, or a tokenizer of nothing
    but special tokens (its files missing), are one line, not a model that predicts nonsense.
    """
    from safetensors import safe_open

    if not (model_dir / "config.json").is_file():
        raise FtrunError(f"--model: {model_dir} has no config.json: not a model directory that a run wrote")
    for weights in sorted(model_dir.glob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt"):
                pass
        except Exception as exc:  # safetensors' own SafetensorError, or an OSError
            raise FtrunError(f"--model: {weights}: cannot read the weights: {first_line(exc)}") from exc
    config = dataclasses.replace(config, model=model_dir_table(config.model, model_dir), source="--model", overridden=frozenset())
    processor = task.load_processor(config, None)
    specials = getattr(processor, "all_special_tokens", None)  # a processor that is no tokenizer has no vocabulary to check
    if specials is not None and len(processor) <= len(specials):
        raise FtrunError(f"--model: {model_dir}: its tokenizer has no vocabulary, only {len(processor)} special tokens: its tokenizer files are missing")
    data = TaskData(train=None, eval=None, processor=processor)
    return plugins.build_head(task, config, data), data.processor


def model_dir_table(model: ModelConfig, model_dir: Path) -> ModelConfig:
    """``[model]`` naming ``model_dir`` alone: its weights, and its processor (a text task's ``tokenizer`` key, where its table has one, unset)."""
    update = {"name": str(model_dir), "config": None, "tokenizer": None, "revision": None}
    return model.model_copy(update={key: value for key, value in update.items() if key in type(model).model_fields})


def predict_as_evaluated(task: BaseTask, model: Any, processor: Any, inputs: list[Any], config: RunConfig) -> list[Any]:
    """``task.predict`` in fp32, as the run evaluated: a model that a run's Trainer trained in mixed precision still has its forward wrapped in autocast."""
    from ftrun.util.precision import full_precision

    with full_precision(model):
        return task.predict(model, processor, inputs, config)


def predict_with_pipeline(task: BaseTask, model: Any, processor: Any, inputs: list[Any], **options: Any) -> list[Any]:
    """The task's transformers pipeline over the inputs; ``options`` go to its call (``return_full_text=False``)."""
    from transformers import pipeline

    # A wrapped head (a PEFT model) changes its base model in place: the pipeline takes the base.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return pipeline(task.pipeline_tag, model=base, **pipeline_processor(processor))(inputs, batch_size=PREDICT_BATCH, **options)


def pipeline_processor(processor: Any) -> dict[str, Any]:
    """``processor`` under the keyword ``transformers.pipeline`` takes it by: ``processor``, ``tokenizer``, ``image_processor`` or ``feature_extractor``."""
    from transformers import FeatureExtractionMixin, PreTrainedTokenizerBase, ProcessorMixin
    from transformers.image_processing_base import ImageProcessingMixin

    if processor is None:
        return {}
    for kind, keyword in (
        (ProcessorMixin, "processor"),
        (PreTrainedTokenizerBase, "tokenizer"),
        (ImageProcessingMixin, "image_processor"),
        (FeatureExtractionMixin, "feature_extractor"),
    ):
        if isinstance(processor, kind):
            return {keyword: processor}
    raise FtrunError(
        f"a {type(processor).__name__} is no processor a transformers pipeline takes (a tokenizer, image processor, feature extractor or processor)"
    )


def predict_with_trainer(task: BaseTask, model: Any, processor: Any, inputs: list[Any], config: RunConfig) -> list[Any]:
    """The inputs (tables of the raw columns ``encode`` reads) encoded as the ``predict`` split, run, and post-processed."""
    from datasets import Dataset
    from transformers import EvalPrediction, TrainingArguments

    from ftrun.stages.data import encode_batch, encode_lazily
    from ftrun.stages.training import Trainer

    if not all(isinstance(value, dict) for value in inputs):
        raise FtrunError(
            f"task {task.name} has no transformers pipeline ({task.pipeline_tag}): its read_input must give tables of the columns its encode reads"
        )
    labels = getattr(model.config, "id2label", None)
    data = TaskData(train=None, eval=None, processor=processor, labels=[labels[i] for i in sorted(labels)] if labels else None)
    examples = Dataset.from_list(list(inputs))
    if task.lazy_encoding:
        features = encode_lazily(task, examples, data, config, "predict")
    else:
        features = examples.map(lambda batch: encode_batch(task, batch, data, config, "predict"), batched=True, remove_columns=examples.column_names)
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer wants an output directory; predict writes nothing there
        args = TrainingArguments(output_dir=scratch, report_to="none", per_device_eval_batch_size=PREDICT_BATCH, remove_unused_columns=not task.lazy_encoding)
        trainer = Trainer(model=model, args=args, processing_class=processor, data_collator=task.data_collator(data, model, config))
        outputs = trainer.predict(features)
    raw = EvalPrediction(predictions=outputs.predictions, label_ids=outputs.label_ids)
    return list(task.postprocess(raw, features, examples, data, config).predictions)


#: Rows read, sorted by length and predicted at once by ``ftrun predict --input``: a window, so that a file of any size streams.
WINDOW = 1024


@dataclasses.dataclass
class BatchSummary:
    rows: int = 0
    skipped: int = 0


def predict_file(
    task: BaseTask, model: Any, processor: Any, config: RunConfig, source: Path, target: Path, *, skip_bad: bool, advance: Callable[[int], None] | None = None
) -> BatchSummary:
    """Predict every row of ``source`` (csv, json, jsonl(.gz), parquet, or what the task's ``read_file`` reads) into ``target`` (JSON lines), in the rows' order.

    The file is streamed (``datasets``' streaming mode) a window of rows at a time; each window is
    sorted by length, predicted in batches, and written back in its own order. A row the task
    cannot read is one line naming it, or, with ``skip_bad``, left out and counted. Written to a
    temporary file moved into place at the end: ``target`` is whole or untouched.
    """
    import datasets

    from ftrun.stages.data import builder_for
    from ftrun.stages.output import as_record

    rows = task.read_file(source)  # a folder or file of the task's own (images), or None
    if rows is None:
        builder, options = builder_for(source, "--input")
        rows = datasets.load_dataset(builder, data_files=str(source), split="train", streaming=True, **options)
    summary = BatchSummary()
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            window: list[dict[str, Any]] = []
            for row in _guarded_rows(rows, source):
                window.append(row)
                if len(window) == WINDOW:
                    _predict_window(task, model, processor, config, window, summary=summary, source=source, skip_bad=skip_bad, out=out, as_record=as_record)
                    if advance:
                        advance(len(window))
                    window = []
            if window:
                _predict_window(task, model, processor, config, window, summary=summary, source=source, skip_bad=skip_bad, out=out, as_record=as_record)
                if advance:
                    advance(len(window))
        if summary.rows and summary.skipped == summary.rows:
            raise FtrunError(f"--input: {source}: no row could be read (every one of {summary.rows} was bad): check the columns --set names")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return summary


def _guarded_rows(rows: Any, source: Path) -> Any:
    """The streamed rows; a file ``datasets`` cannot parse is one line naming it."""
    import datasets

    try:
        yield from rows
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        raise FtrunError(f"--input: {source}: cannot read it: {first_line(exc)}") from exc


def _predict_window(task, model, processor, config, window, *, summary, source, skip_bad, out, as_record) -> None:
    """One window of rows: read (a bad row named, or skipped), sorted longest first, predicted, written in the rows' order."""
    first = summary.rows + 1  # the window's first row, counted from 1 as in the file (a csv file's header not counted)
    summary.rows += len(window)
    columns = list(dict.fromkeys(key for row in window for key in row))
    try:
        values = task.inputs_from({key: [row.get(key) for row in window] for key in columns}, config, source)
    except (FtrunError, KeyError, TypeError, ValueError):
        values = None  # a bad row among them: read each alone, to name it
    inputs: list[tuple[Any, Any]] = []  # (the value as the file holds it, the input predict takes)
    for number, row in enumerate(window, first):
        where = f"--input: {source}: row {number}"
        try:
            value = values[number - first] if values is not None else task.inputs_from({key: [row.get(key)] for key in columns}, config, source)[0]
            inputs.append((value, task.read_input(value, where, config)))
        except (FtrunError, KeyError, TypeError, ValueError) as exc:
            if not skip_bad:
                raise (
                    exc if isinstance(exc, FtrunError) and str(exc).startswith(where) else FtrunError(f"{where}: {first_line(exc)} (columns: {', '.join(row)})")
                ) from exc
            summary.skipped += 1
    # Longest first, so that each batch is padded the least (and a batch too large fails at once).
    order = sorted(range(len(inputs)), key=lambda i: -len(str(inputs[i][1])))
    predictions = predict_as_evaluated(task, model, processor, [inputs[i][1] for i in order], config) if inputs else []
    restored: list[Any] = [None] * len(inputs)
    for position, prediction in zip(order, predictions):
        restored[position] = prediction
    for (value, _), prediction in zip(inputs, restored):
        out.write(json.dumps(as_record(value, prediction), ensure_ascii=False) + "\n")
