"""Summarization: a document → a short summary of it (T5 on CNN/DailyMail).

A thin task on the sequence-to-sequence base (``ftrun.plugins.seq2seq``), as
``run_summarization.py``: T5's ``summarize: `` prefix, a document and a summary column (named,
or found among the Hub's summarization layouts), ROUGE-1/2/L/Lsum (rouge-score) of the
generated summaries.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from ftrun import FtrunError, RunConfig, Splits, check_text_column, hookimpl

from ..seq2seq import DEMO_T5, Seq2SeqData, Seq2SeqTask

if TYPE_CHECKING:
    from datasets import Dataset

DEMO_DIR = Path(__file__).parent / "data"

#: (document, summary) columns of the Hub's summarization datasets, as run_summarization.py's
#: ``summarization_name_mapping`` lists them: cnn_dailymail, xsum, the Gigaword and news layouts.
LAYOUTS = (("article", "highlights"), ("document", "summary"), ("text", "summary"), ("dialogue", "summary"), ("document", "headline"))


class SummarizationData(Seq2SeqData):
    text_column: str | None = Field(None, description="Column of the documents; default: found among the Hub's layouts (article, document, ...).")
    summary_column: str | None = Field(None, description="Column of their summaries; default: found among the Hub's layouts (highlights, summary, ...).")
    max_target_length: int = Field(128, gt=0, description="Truncate summaries to this many tokens; also how long generated summaries may be.")


class SummarizationTask(Seq2SeqTask):
    name = "summarization"
    description = "summarize a document in a few sentences (sequence to sequence)"
    pipeline_tag = "summarization"
    data_config = SummarizationData
    output_key = "summary_text"
    #: run_summarization.py reports all four; ROUGE-L, the longest common subsequence, picks the best checkpoint.
    default_metrics = ["rougeL", "rouge1", "rouge2", "rougeLsum"]
    #: run_summarization.py's example (t5-small on CNN/DailyMail 3.0.0, batches of 4), on 1,000
    #: of the 287,113 training articles.
    defaults = {
        "model": {"name": "t5-small", "tokenizer_lowercase": False},
        "data": {
            "dataset": "cnn_dailymail",
            "dataset_config": "3.0.0",
            "train_split": "train",
            "eval_split": "validation",
            "max_train_samples": 1000,
            "max_eval_samples": 200,
        },
        "training": {"num_train_epochs": 3, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4, "generation_num_beams": 4},
        "predict": {
            "examples": [
                "The city council voted on Tuesday to close the old bridge to cars from next month, after engineers found cracks "
                "in two of its supports. Cyclists and walkers may still cross it while a new bridge is built beside it."
            ]
        },
    }
    #: Real Reuters articles and their headlines (CoNLL-2003's text) shipped in the package, and a small T5 trained from scratch on them.
    demo = {
        "model": {
            "config": DEMO_T5,
            "tokenizer_vocab_size": 4000,
            "tokenizer_lowercase": False,
        },
        "data": {
            "train_file": str(DEMO_DIR / "reuters-train.jsonl.gz"),
            "eval_file": str(DEMO_DIR / "reuters-eval.jsonl.gz"),
            # A story's first sentence is about 35 tokens, its headline at most about 30.
            "max_source_length": 64,
            "max_target_length": 32,
        },
        "training": {
            "num_train_epochs": 10,
            "learning_rate": 3e-3,
            "warmup_steps": 0,
            "per_device_train_batch_size": 16,
            "per_device_eval_batch_size": 64,
            "generation_num_beams": 1,
        },
        "predict": {
            "examples": [
                "Shares in London rose on Tuesday as investors welcomed strong company results, with the FTSE 100 index "
                "closing 1.2 percent higher. Banks led the gains."
            ]
        },
    }

    def pairs(self, batch: dict[str, list], config: RunConfig) -> tuple[list, list]:
        text, summary = layout(list(batch), config)
        return batch[text], batch[summary]

    def columns(self, split: Dataset, config: RunConfig) -> list[str]:
        return list(layout(split.column_names, config))

    def t5_prefix(self, config: RunConfig) -> str:
        return "summarize: "

    def params_name(self, config: RunConfig) -> str:
        return "summarization"

    def check_data(self, splits: Splits, config: RunConfig) -> None:
        data: SummarizationData = config.data
        if data.max_length is not None:
            raise FtrunError(f"{config.where('data.max_length')}: summarization truncates with max_source_length and max_target_length")
        for name in ("train", "eval"):
            split = getattr(splits, name)
            text, summary = layout(split.column_names, config, name)
            resolved = dataclasses.replace(config, data=data.model_copy(update={"text_column": text, "summary_column": summary}))
            for key in ("text_column", "summary_column"):
                check_text_column(split, resolved, key, name)


def layout(columns: list[str], config: RunConfig, split: str = "train") -> tuple[str, str]:
    """The (document, summary) columns: those ``[data]`` names, else the first of the Hub's layouts that ``columns`` has."""
    data: SummarizationData = config.data
    found = next(((text, summary) for text, summary in LAYOUTS if text in columns and summary in columns), None)
    text = data.text_column or (found[0] if found else None)
    summary = data.summary_column or (found[1] if found else None)
    for key, column in (("text_column", text), ("summary_column", summary)):
        if column is None:
            known = ", ".join(f"{a}/{b}" for a, b in LAYOUTS)
            raise FtrunError(
                f"{config.where('data.' + key)}: none given, and the {split} split has none of the usual layouts ({known}): "
                f"name the columns (columns: {', '.join(columns)})"
            )
        if column not in columns:
            raise FtrunError(f"{config.where('data.' + key)}: column {column!r} not in the {split} split (columns: {', '.join(columns)})")
    return text, summary


TASK = SummarizationTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
