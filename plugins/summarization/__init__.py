"""Summarization: a document → a short summary of it (T5 on CNN/DailyMail).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, SummarizationData, SummarizationTask, ftrun_register_tasks

__all__ = ["TASK", "SummarizationData", "SummarizationTask", "ftrun_register_tasks"]
