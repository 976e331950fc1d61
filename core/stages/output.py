"""The files of a finished run: the model and its processor, and what ftrun adds next to them.

``ftrun.toml`` (the effective manifest: rerun it with ``ftrun --manifest``, and
``ftrun predict`` reads the task from it), the Trainer's ``*_results.json`` and
``trainer_state.json``, ``predictions.jsonl``, the figures of ``plots/``, a model card ``README.md``,
and ``ftrun-run.json``: the run's marker and seal, which lists every file it wrote with its size,
and what the run was (task, model, training data).

Everything is written to a staging folder first, flushed and sealed, and then moved into place
file by file, the marker last: a run that dies while saving never leaves a half-written model
file, a folder holding a valid marker holds a complete run, and only the files a marker lists
are ever replaced or deleted by a later run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from huggingface_hub import EvalResult, ModelCardData

from ftrun.stages import plots
from ftrun.stages.training import save_state, seal
from ftrun.util.errors import FtrunError, first_line
from ftrun.util.precision import choose_precision

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ftrun.api.plugin_manager import PluginManager
    from ftrun.api.task import BaseTask
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData

MANIFEST_NAME = "ftrun.toml"
#: A finished run's marker, written by ftrun alone, last: the files the run wrote (their sizes) and what the run was.
RUN_SEAL = "ftrun-run.json"
#: The run's figures (PNG), inside the output directory.
PLOTS_DIR = "plots"


#: Where the final files are written before they are moved into the output directory.
STAGING_NAME = ".ftrun-staging"


@dataclasses.dataclass
class RunOutputs:
    """What a finished run writes: its trained model (in ``trainer``), results, predictions and figures."""

    task: BaseTask
    config: RunConfig
    trainer: Any
    train_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    predictions: list[Any]
    """The task's predictions on ``config.predict.examples``, in their order."""
    warnings: Sequence[object] = ()
    """The pre-flight's warnings, for the model card."""
    data: TaskData | None = None
    """The data stage's: its raw splits' ``datasets`` fingerprints go into the model card's provenance."""
    figures: dict[str, Figure] = dataclasses.field(default_factory=dict)


def write_outputs(output_dir: Path, outputs: RunOutputs, plugins: PluginManager) -> None:
    """Save the model through the ``ftrun_save_model`` hook, then ftrun's files, all staged, then publish them.

    The data's fingerprints go into the model card with the plugins that ran, so that a result
    can be traced to the data and code that made it.
    """
    task, config, trainer = outputs.task, outputs.config, outputs.trainer
    train_metrics, eval_metrics = outputs.train_metrics, outputs.eval_metrics
    staging = output_dir / STAGING_NAME
    main = trainer.is_world_process_zero()
    if main and staging.exists():  # left by a run that died while saving
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    plugins.save_model(task, config, trainer, staging)  # by every process: FSDP and DeepSpeed gather the shards; the main one writes
    if not main:
        return
    # The Trainer's save_metrics and save_state write to its own output_dir: the same files, staged.
    results = {"train": train_metrics, "eval": eval_metrics, "all": {**train_metrics, **eval_metrics}}
    for split, metrics in results.items():
        (staging / f"{split}_results.json").write_text(json.dumps(metrics, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    save_state(trainer.state, staging / "trainer_state.json")
    manifest = tomli_w.dumps(config.manifest)
    with open(staging / "predictions.jsonl", "w", encoding="utf-8") as out:
        for text, prediction in zip(config.predict.examples, outputs.predictions):
            out.write(json.dumps(as_record(text, prediction), ensure_ascii=False) + "\n")
    card = model_card(task, config, eval_metrics, manifest, [str(w) for w in outputs.warnings], trainer.model.config)
    if outputs.figures:
        saved = plots.save(outputs.figures, staging / PLOTS_DIR)
        card.sections["Plots"] = "\n\n".join(f"![{path.stem}]({PLOTS_DIR}/{path.name})" for path in saved)
    card.sections["Provenance"] = provenance(plugins, fingerprints(outputs.data))
    plugins.model_card(task, config, card)
    (staging / "README.md").write_text(card.render(), encoding="utf-8")
    (staging / MANIFEST_NAME).write_text(manifest, encoding="utf-8")
    seal(staging, RUN_SEAL, run=run_identity(config))  # every staged file flushed to disk, then listed
    publish(staging, output_dir)


def fingerprints(data: TaskData | None) -> dict[str, str]:
    """The raw splits' ``datasets`` fingerprints, which trace a result to its data."""
    raw = data.raw if data is not None else None
    return {name: split._fingerprint for name, split in (("train", raw.train), ("eval", raw.eval))} if raw else {}


def run_identity(config: RunConfig) -> dict[str, Any]:
    """What a run is, by the manifest keys that make it: resumed with another value of one, it would not go on where it stopped."""
    data = config.data
    identity = {
        "task": config.task,
        "model.name": config.model.name,
        "model.config": config.model.config,
        "data.train_file": data.train_file,
        "data.dataset": data.dataset,
        "data.dataset_config": data.dataset_config,
        "data.train_split": data.train_split,
    }
    return json.loads(json.dumps(identity))  # as read back from a seal


def publish(staging: Path, output_dir: Path) -> None:
    """Move the sealed files of ``staging`` into ``output_dir``, the marker last; run again after a kill, it finishes.

    First the files of an earlier run there (``--resume`` of a finished run) that this one did
    not write go, then its marker: from then on the folder holds no finished run until the new
    marker arrives, and every file of it is one the staged marker lists.
    """
    written = run_files(staging)
    for name in sorted(set(run_files(output_dir)) - set(written)):
        (output_dir / name).unlink(missing_ok=True)
    (output_dir / RUN_SEAL).unlink(missing_ok=True)
    for path in sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.name == RUN_SEAL):
        target = output_dir / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # atomic: the old file or the new one, never a mix
    shutil.rmtree(staging)


def run_files(folder: Path) -> dict[str, int]:
    """The files (relative paths) and sizes that the marker in ``folder`` lists; none without a marker.

    A marker naming a file outside its folder is refused: nothing outside the folder is ever replaced.
    """
    marker = folder / RUN_SEAL
    if not marker.exists():
        return {}
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        listed = {str(name): int(size) for name, size in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FtrunError(f"{marker}: damaged, not the list of a run's files ({first_line(exc)}); move it away to use the folder") from exc
    for name in listed:
        if Path(name).is_absolute() or ".." in Path(name).parts or not Path(name).parts:
            raise FtrunError(f"{marker}: damaged: it names {name!r}, which is not a file of its folder; move it away to use the folder")
    return listed


def as_record(text: str | dict[str, Any], prediction: Any) -> dict[str, Any]:
    """One prediction as a JSON-ready object: the pipeline's fields when it gives a dict."""
    record = {"input": text, **prediction} if isinstance(prediction, dict) else {"input": text, "prediction": prediction}
    return json_ready(record)


def json_ready(value: Any) -> Any:
    """Pipelines return numpy scalars (float32 scores, int64 offsets), which json cannot write."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value.item() if hasattr(value, "item") and callable(value.item) else value


@dataclasses.dataclass
class ModelCard:
    """The model card (README.md) of a run, before it is written: what ``ftrun_model_card`` hooks change.

    ``data`` is its metadata (rendered as the YAML header the Hub reads), ``sections`` its
    ``## title`` → markdown parts, in order, after ``intro``.
    """

    title: str
    intro: str
    data: ModelCardData
    sections: dict[str, str] = dataclasses.field(default_factory=dict)

    def render(self) -> str:
        parts = [f"---\n{self.data.to_yaml()}\n---", f"# {self.title}", self.intro.strip()]
        parts += [f"## {title}\n\n{text.strip()}" for title, text in self.sections.items()]
        return "\n\n".join(parts) + "\n"


def model_card(
    task: BaseTask, config: RunConfig, eval_metrics: dict[str, float], manifest: str, warnings: Sequence[str] = (), model_config: Any = None
) -> ModelCard:
    """The model card of a run: what it was trained from, its metrics, how to use it, the pre-flight warnings, its manifest."""
    base = config.model.name
    dataset = config.data.dataset if config.data.dataset and not config.data.train_file else None
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=task.pipeline_tag,
        tags=["ftrun", task.name],
        base_model=base if base and not Path(base).exists() else None,
        datasets=[dataset] if dataset and not Path(dataset).exists() else None,
        model_name=f"{task.name} model",
        license=config.model.license,
        eval_results=eval_results(task, config, eval_metrics) or None,
    )
    source = f"`{base}`" if base else "a model built from a config"
    trained_on = f"`{dataset}`" if dataset else f"`{config.data.train_file}`" if config.data.train_file else "local data"
    rows = "\n".join(
        f"| {key.removeprefix('eval_')} | {value:.4f} |"
        for key, value in eval_metrics.items()
        if isinstance(value, float) and not key.endswith(("runtime", "per_second"))
    )
    command = predict_command(task, config, "path/to/this/directory")
    try_it = f"\n\nor `{command}`." if command else ""
    sections = {
        "Evaluation": f"| metric | value |\n|---|---|\n{rows}",
        "Use": f"```python\n{task.usage('path/to/this/directory', config)}\n```{try_it}",
    }
    if warnings:
        cautions = "".join(f"- {line}\n" for line in warnings)
        sections["Pre-flight warnings"] = f"What ftrun's checks found before training (`ftrun check` shows the whole report):\n\n{cautions}"
    sections["Manifest"] = f"Run again with `ftrun --manifest {MANIFEST_NAME}`:\n\n```toml\n{manifest}```"
    intro = f"Fine-tuned with [ftrun](https://pypi.org/project/ftrun/) (task `{task.name}`) from {source} on {trained_on},\nin {choose_precision(config.training, model_config)}."
    return ModelCard(title=f"{task.name} model", intro=intro, data=data, sections=sections)


def eval_results(task: BaseTask, config: RunConfig, eval_metrics: dict[str, float]) -> list[EvalResult]:
    """The final evaluation as the Hub's ``model-index`` has it: one result per metric, on the eval split's dataset."""
    data = config.data
    source = data.dataset or data.eval_file or data.train_file or "local data"
    name = source if data.dataset and not Path(source).exists() else Path(source).name
    split = data.eval_split if data.dataset else "eval"
    return [
        EvalResult(
            task_type=task.pipeline_tag or task.name,
            dataset_type=name,
            dataset_name=name,
            dataset_config=data.dataset_config,
            dataset_split=split,
            metric_type=key.removeprefix("eval_"),
            metric_value=value,
        )
        for key, value in eval_metrics.items()
        if isinstance(value, float) and not key.endswith(("runtime", "per_second")) and key != "epoch"
    ]


def provenance(plugins: PluginManager, fingerprints: dict[str, str]) -> str:
    """What made the model: ftrun's version, every plugin loaded (and its package's version), the data's fingerprints."""
    from ftrun import __version__

    rows = "\n".join(f"| {name} | {info.dist or info.module} | {info.version or ''} |" for name, info in plugins.info.items())
    data = "".join(f"- {split}: `{fingerprint}`\n" for split, fingerprint in fingerprints.items())
    return (
        f"ftrun {__version__}, with these plugins:\n\n| plugin | from | version |\n|---|---|---|\n{rows}\n\n"
        f"The data's fingerprints (the `datasets` library's hash of each split as loaded: the same data gives the same one):\n\n{data}"
    )


def predict_command(task: BaseTask, config: RunConfig, model_dir: str) -> str | None:
    """The ``ftrun predict`` command that tries the saved model on the task's example input."""
    example = task.example_input(config)
    if example is None:
        return None
    given = shlex.quote(example) if isinstance(example, str) else "--json-input " + shlex.quote(json.dumps(example, ensure_ascii=False))
    plugins = "".join(f" --plugin {shlex.quote(name)}" for name in config.plugins)  # a model folder loads none of its run's
    return f"ftrun predict --model {shlex.quote(model_dir)}{plugins} {given}"
