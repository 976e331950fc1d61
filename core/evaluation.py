"""Evaluation in batches sorted by length, mixed into ftrun's Trainer classes.

Each evaluation batch is padded to its longest example, so the order of the eval set decides
how much of the evaluation is padding. With ``train_sampling_strategy = "group_by_length"``
the Trainer also groups eval batches by length, but only within random megabatches of at
most 50 batches, fewer for small sets. ``benchmarks/throughput.py`` measured ftrun's
evaluation of MiniLM on IMDB reviews (batches of 8, one CPU thread) at the speed of the seed
recipe's, which pads every review to 512 tokens, with the Trainer's order on 48 reviews (3.9
against 3.8 samples/s), and at 2.8x it with sorted batches on 200 (9.6 against 3.5).
The order changes no metric.
"""

from __future__ import annotations

from typing import Any

import transformers
from torch.utils.data import Sampler


class LengthSortedSampler(Sampler[int]):
    """The indices of ``lengths``, longest first (so that a batch too large fails at once)."""

    def __init__(self, lengths: list[int]) -> None:
        self.order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class SortedEvaluation:
    """Evaluates a ``datasets.Dataset`` in length-sorted batches, on a single process.

    Several processes (torchrun) keep the Trainer's own sampler, which accelerate shards.
    """

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        import datasets

        column = self.processing_class.model_input_names[0] if self.processing_class is not None else "input_ids"
        if self.args.world_size > 1 or not isinstance(eval_dataset, datasets.Dataset) or column not in eval_dataset.column_names:
            return super()._get_eval_sampler(eval_dataset)
        return LengthSortedSampler([len(ids) for ids in eval_dataset[column]])


class Trainer(SortedEvaluation, transformers.Trainer):
    """``transformers.Trainer``, evaluating in length-sorted batches."""


class Seq2SeqTrainer(SortedEvaluation, transformers.Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer``, evaluating (and generating) in length-sorted batches."""
