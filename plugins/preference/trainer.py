"""TRL's ``DPOTrainer`` with ftrun's Trainer behaviour mixed in: imported only when a preference run builds its Trainer."""

from __future__ import annotations

from typing import Any

from trl import DPOTrainer

from ftrun import TrainerMixin


class PreferenceTrainer(TrainerMixin, DPOTrainer):
    """``trl.DPOTrainer`` with exact resume, a NaN check and length-sorted evaluation, on pairs ftrun's data stage encoded."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        # ftrun's data stage has encoded the pairs as TRL does (cached, and checked by the pre-flight report);
        # TRL's own preparation reads raw prompt/chosen/rejected columns.
        if "prompt_ids" in dataset.column_names:
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """None: ftrun writes the model card of the run's output, not TRL in each checkpoint."""
