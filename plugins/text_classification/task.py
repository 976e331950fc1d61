"""Text classification: one text or a text pair → one of N named labels (BERT on IMDB).

Registered through the ``ftrun`` entry-point group, exactly as a third-party plugin is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field

from ftrun import FtrunError, RunConfig, Splits, Task, TaskData, TextDataConfig, check_text_column, hookimpl, require_columns

from ..classification import OneLabelPerExample
from ..demo import small_bert
from ..labels import LabelNames

DEMO_DIR = Path(__file__).parent / "data"


class TextClassificationData(TextDataConfig):
    text_column: str = Field("text", description="Column holding the text.")
    text_pair_column: str | None = Field(None, description="Second text column, for text-pair tasks (NLI, paraphrase, ...).")
    label_column: str = Field("label", description="Column holding the label: a ClassLabel, strings, or integers.")
    label_names: LabelNames = Field(None, description="Names of integer labels 0..N-1, when the data has none.")


class TextClassificationTask(OneLabelPerExample, Task):
    name = "text-classification"
    description = "classify a text or a text pair into named labels"
    pipeline_tag = "text-classification"
    data_config = TextClassificationData
    #: The seed recipe: BERT fine-tuned on 1000 IMDB reviews with the Trainer.
    defaults = {
        "model": {"name": "bert-base-uncased"},
        "data": {
            "dataset": "imdb",
            "train_split": "train",
            "eval_split": "test",
            "max_train_samples": 1000,
            "max_eval_samples": 200,
        },
        "training": {
            "num_train_epochs": 3,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "warmup_steps": 500,
            "weight_decay": 0.01,
        },
        "metrics": {"names": ["accuracy", "f1"], "best": "accuracy"},
        "predict": {
            "examples": [
                "I loved this movie! The acting was great and the story kept me hooked.",
                "This was a terrible film. I want my two hours back.",
            ]
        },
    }

    #: A real IMDB sample shipped in the package and a small BERT trained from scratch on it.
    demo = {
        "model": {
            "config": small_bert(max_positions=256),
            "tokenizer_vocab_size": 4000,
        },
        "data": {
            "train_file": str(DEMO_DIR / "imdb-train.jsonl.gz"),
            "eval_file": str(DEMO_DIR / "imdb-eval.jsonl.gz"),
            "label_names": ["neg", "pos"],
            "max_length": 256,
        },
        # A model trained from scratch wants a higher rate and no long warmup.
        "training": {"num_train_epochs": 4, "learning_rate": 1e-3, "warmup_steps": 0, "per_device_train_batch_size": 16},
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    # -- data stage --------------------------------------------------------------------

    def check_data(self, splits: Splits, config: RunConfig) -> list[str]:
        data: TextClassificationData = config.data
        columns = {"text_column": data.text_column, "text_pair_column": data.text_pair_column, "label_column": data.label_column}
        require_columns(splits.train, columns, config, "train")
        require_columns(splits.eval, columns, config, "eval")
        for key in ("text_column", "text_pair_column"):
            for name in ("train", "eval") if getattr(data, key) else ():
                check_text_column(getattr(splits, name), config, key, name)
        return self.check_labels(splits, config)

    def text_of(self, split: Any, config: RunConfig) -> Iterable[str]:
        columns = [c for c in (config.data.text_column, config.data.text_pair_column) if c]
        for row in split.select_columns(columns).iter(batch_size=1000):
            for column in columns:
                yield from row[column]

    def inputs_of(self, split: Any, config: RunConfig) -> list[tuple[str, ...]]:
        columns = [c for c in (config.data.text_column, config.data.text_pair_column) if c]
        texts = split.select_columns(columns)[:]  # as lists: a Column reads row by row
        return list(zip(*(texts[column] for column in columns)))

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        settings: TextClassificationData = config.data
        pairs = batch[settings.text_pair_column] if settings.text_pair_column else None
        encoded = data.tokenizer(batch[settings.text_column], pairs, truncation=True, max_length=settings.max_length)
        encoded["labels"] = self.label_ids(batch[settings.label_column], data, config)
        return encoded

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> str | dict[str, str]:
        """A text, or a text pair as ``{"text": ..., "text_pair": ...}`` (what the pipeline takes)."""
        if isinstance(value, str):
            return value
        if (
            not isinstance(value, dict)
            or set(value) - {"text", "text_pair"}
            or not all(isinstance(value.get(key, ""), str) for key in ("text", "text_pair"))
            or "text" not in value
        ):
            raise FtrunError(f"{where}: expected a text, or a table with a text and an optional text_pair, got {value!r}")
        return value

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[str | dict[str, str]]:
        """Each row's text, or its text pair as ``read_input`` takes one."""
        settings: TextClassificationData = config.data
        texts = batch[settings.text_column]
        if not settings.text_pair_column:
            return list(texts)
        return [{"text": text, "text_pair": pair} for text, pair in zip(texts, batch[settings.text_pair_column])]


TASK = TextClassificationTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
