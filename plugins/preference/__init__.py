"""Preference tuning: DPO on TRL, after causal-lm's supervised fine-tuning.

The plugin registered under the ``ftrun`` entry-point group; the task is in ``task.py``, its
Trainer (which imports TRL) in ``trainer.py``.
"""

from .task import TASK, PreferenceData, PreferenceTask, ftrun_register_tasks

__all__ = ["TASK", "PreferenceData", "PreferenceTask", "ftrun_register_tasks"]
