"""The files of a finished run: the model and tokenizer, and what ftrun adds next to them.

``ftrun.toml`` (the effective manifest: rerun it with ``ftrun --manifest``, and
``ftrun predict`` reads the task from it), the Trainer's ``*_results.json`` and
``trainer_state.json``, ``predictions.jsonl`` and a model card ``README.md``.

Everything is written to a staging folder first and then moved into place file by file,
``ftrun.toml`` last: a run that dies while saving never leaves a half-written model file,
and a folder holding ``ftrun.toml`` holds a complete run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from .precision import choose_precision

if TYPE_CHECKING:
    from .config import RunConfig
    from .task import Task

MANIFEST_NAME = "ftrun.toml"


#: Where the final files are written before they are moved into the output directory.
STAGING_NAME = ".ftrun-staging"


def write_outputs(
    output_dir: Path,
    trainer: Any,
    task: Task,
    config: RunConfig,
    train_metrics: dict[str, float],
    eval_metrics: dict[str, float],
    examples: list[str | dict[str, Any]],
    predictions: list[Any],
    warnings: Sequence[str] = (),
) -> None:
    staging = output_dir / STAGING_NAME
    main = trainer.is_world_process_zero()
    if main and staging.exists():  # left by a run that died while saving
        shutil.rmtree(staging)
    trainer.save_model(str(staging))  # by every process: FSDP and DeepSpeed gather the shards; the main one writes
    if not main:
        return
    # The Trainer's save_metrics and save_state write to its own output_dir: the same files, staged.
    results = {"train": train_metrics, "eval": eval_metrics, "all": {**train_metrics, **eval_metrics}}
    for split, metrics in results.items():
        (staging / f"{split}_results.json").write_text(json.dumps(metrics, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    trainer.state.save_to_json(str(staging / "trainer_state.json"))
    manifest = tomli_w.dumps(config.manifest)
    with open(staging / "predictions.jsonl", "w", encoding="utf-8") as out:
        for text, prediction in zip(examples, predictions):
            out.write(json.dumps(as_record(text, prediction), ensure_ascii=False) + "\n")
    (staging / "README.md").write_text(model_card(task, config, eval_metrics, manifest, warnings), encoding="utf-8")
    (staging / MANIFEST_NAME).write_text(manifest, encoding="utf-8")
    publish(staging, output_dir)


def publish(staging: Path, output_dir: Path) -> None:
    """Flush every staged file to disk, then move each into ``output_dir``, the manifest last."""
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.name == MANIFEST_NAME)
    for path in files:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    for path in files:
        target = output_dir / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # atomic: the old file or the new one, never a mix
    shutil.rmtree(staging)


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


def model_card(task: Task, config: RunConfig, eval_metrics: dict[str, float], manifest: str, warnings: Sequence[str] = ()) -> str:
    """The README.md of the model directory: what it was trained from, its metrics, how to use it, the pre-flight warnings, its manifest."""
    base = config.model.name
    dataset = config.data.dataset if config.data.dataset and not config.data.train_file else None
    header = ["---", "library_name: transformers", *([f"pipeline_tag: {task.pipeline_tag}"] if task.pipeline_tag else []), "tags:", "- ftrun", f"- {task.name}"]
    if base and not Path(base).exists():
        header.append(f"base_model: {base}")
    if dataset and not Path(dataset).exists():
        header += ["datasets:", f"- {dataset}"]
    header.append("---")
    source = f"`{base}`" if base else "a model built from a config"
    data = f"`{dataset}`" if dataset else f"`{config.data.train_file}`" if config.data.train_file else "local data"
    rows = "\n".join(
        f"| {key.removeprefix('eval_')} | {value:.4f} |"
        for key, value in eval_metrics.items()
        if isinstance(value, float) and not key.endswith(("runtime", "per_second"))
    )
    command = predict_command(task, config, "path/to/this/directory")
    try_it = f"\n\nor `{command}`." if command else ""
    cautions = "".join(f"- {line}\n" for line in warnings)
    if cautions:
        cautions = f"\n## Pre-flight warnings\n\nWhat ftrun's checks found before training (`ftrun check` shows the whole report):\n\n{cautions}"
    return (
        "\n".join(header)
        + f"""

# {task.name} model

Fine-tuned with [ftrun](https://pypi.org/project/ftrun/) (task `{task.name}`) from {source} on {data},
in {choose_precision(config.training)}.

## Evaluation

| metric | value |
|---|---|
{rows}

## Use

```python
{task.usage("path/to/this/directory", config)}
```{try_it}
{cautions}
## Manifest

Run again with `ftrun --manifest {MANIFEST_NAME}`:

```toml
{manifest}```
"""
    )


def predict_command(task: Task, config: RunConfig, model_dir: str) -> str | None:
    """The ``ftrun predict`` command that tries the saved model on the task's example input."""
    example = task.example_input(config)
    if example is None:
        return None
    given = shlex.quote(example) if isinstance(example, str) else "--json-input " + shlex.quote(json.dumps(example, ensure_ascii=False))
    return f"ftrun predict --model {shlex.quote(model_dir)} {given}"
