"""Extractive question answering: a question and a context → the span of the context that answers it (BERT on SQuAD).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, QuestionAnsweringData, QuestionAnsweringTask, ftrun_register_tasks

__all__ = ["TASK", "QuestionAnsweringData", "QuestionAnsweringTask", "ftrun_register_tasks"]
