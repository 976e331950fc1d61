"""Text classification: one text or a text pair → one of N named labels (BERT on IMDB).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, TextClassificationData, TextClassificationTask, ftrun_register_tasks

__all__ = ["TASK", "TextClassificationData", "TextClassificationTask", "ftrun_register_tasks"]
