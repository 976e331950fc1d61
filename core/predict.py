"""Predictions with a trained model: the default ``Task.predict``, and the model ``ftrun predict`` loads.

``ftrun predict`` loads the model through the head stage, as a run builds it, so that a plugin
that changes the head (its class, a wrapper) is consulted at prediction too.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import TaskData, load_tokenizer
from .errors import FtrunError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .config import RunConfig
    from .plugin_manager import PluginManager
    from .task import Task

#: Inputs run through the model at once.
PREDICT_BATCH = 32


def load_trained(plugins: PluginManager, task: Task, config: RunConfig, model_dir: Path) -> tuple[PreTrainedModel, Any]:
    """The model and tokenizer of a finished run's output directory, through the head stage.

    The head stage sees ``model.name`` set to the directory (its config.json holds the labels),
    and data with the directory's tokenizer only.
    """
    if not (model_dir / "config.json").is_file():
        raise FtrunError(f"--model: {model_dir} has no config.json: not a model directory that a run wrote")
    model = config.model.model_copy(update={"name": str(model_dir), "config": None, "tokenizer": None, "revision": None})
    config = dataclasses.replace(config, model=model, source="--model", overridden=frozenset())
    data = TaskData(train=None, eval=None, tokenizer=load_tokenizer(task, config, None))
    return plugins.build_head(task, config, data), data.tokenizer


def predict_with_pipeline(task: Task, model: Any, tokenizer: Any, inputs: list[Any], **options: Any) -> list[Any]:
    """The task's transformers pipeline over the inputs; ``options`` go to its call (``return_full_text=False``)."""
    from transformers import pipeline

    # A wrapped head (a PEFT model) changes its base model in place: the pipeline takes the base.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return pipeline(task.pipeline_tag, model=base, tokenizer=tokenizer)(inputs, **options)


def predict_with_trainer(task: Task, model: Any, tokenizer: Any, inputs: list[Any], config: RunConfig) -> list[Any]:
    """The inputs (tables of the raw columns ``encode`` reads) encoded as the ``predict`` split, run, and post-processed."""
    from datasets import Dataset
    from transformers import EvalPrediction, TrainingArguments

    from .data import encode_batch
    from .training import Trainer

    if not all(isinstance(value, dict) for value in inputs):
        raise FtrunError(
            f"task {task.name} has no transformers pipeline ({task.pipeline_tag}): its read_input must give tables of the columns its encode reads"
        )
    labels = getattr(model.config, "id2label", None)
    data = TaskData(train=None, eval=None, tokenizer=tokenizer, labels=[labels[i] for i in sorted(labels)] if labels else None)
    examples = Dataset.from_list(list(inputs))
    features = examples.map(lambda batch: encode_batch(task, batch, data, config, "predict"), batched=True, remove_columns=examples.column_names)
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer wants an output directory; predict writes nothing there
        args = TrainingArguments(output_dir=scratch, report_to="none", per_device_eval_batch_size=PREDICT_BATCH)
        trainer = Trainer(model=model, args=args, processing_class=tokenizer, data_collator=task.data_collator(data, model, config))
        outputs = trainer.predict(features)
    raw = EvalPrediction(predictions=outputs.predictions, label_ids=outputs.label_ids)
    return list(task.postprocess(raw, features, examples, data, config).predictions)
