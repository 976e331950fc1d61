"""The files of a finished run, next to the model the Trainer saved.

``ftrun.toml`` (the effective manifest: rerun it with ``ftrun --manifest``, and
``ftrun predict`` reads the task from it), the Trainer's ``*_results.json``,
``predictions.jsonl`` and a model card ``README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from .precision import choose_precision

if TYPE_CHECKING:
    from .config import RunConfig
    from .task import Task

MANIFEST_NAME = "ftrun.toml"


def write_outputs(
    output_dir: Path,
    trainer: Any,
    task: Task,
    config: RunConfig,
    train_metrics: dict[str, float],
    eval_metrics: dict[str, float],
    examples: list[str],
    predictions: list[Any],
) -> None:
    trainer.save_metrics("train", train_metrics)
    trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()
    manifest = tomli_w.dumps(config.manifest)
    (output_dir / MANIFEST_NAME).write_text(manifest, encoding="utf-8")
    with open(output_dir / "predictions.jsonl", "w", encoding="utf-8") as out:
        for text, prediction in zip(examples, predictions):
            out.write(json.dumps(as_record(text, prediction), ensure_ascii=False) + "\n")
    (output_dir / "README.md").write_text(model_card(task, config, eval_metrics, manifest), encoding="utf-8")


def as_record(text: str, prediction: Any) -> dict[str, Any]:
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


def model_card(task: Task, config: RunConfig, eval_metrics: dict[str, float], manifest: str) -> str:
    base = config.model.name
    dataset = config.data.dataset if config.data.dataset and not config.data.train_file else None
    header = ["---", "library_name: transformers", f"pipeline_tag: {task.pipeline_tag}", "tags:", "- ftrun", f"- {task.name}"]
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
    return "\n".join(header) + f"""

# {task.name} model

Fine-tuned with [ftrun](https://pypi.org/project/ftrun/) (task `{task.name}`) from {source} on {data},
in {choose_precision(config.training)}.

## Evaluation

| metric | value |
|---|---|
{rows}

## Use

```python
from transformers import pipeline
pipe = pipeline("{task.pipeline_tag}", model="path/to/this/directory")
```

or `ftrun predict --model path/to/this/directory "some input"`.

## Manifest

Run again with `ftrun --manifest {MANIFEST_NAME}`:

```toml
{manifest}```
"""
