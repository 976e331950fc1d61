"""Translation: a text in one language → its translation in another (T5 on WMT16 English→Romanian).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, TranslationData, TranslationTask, ftrun_register_tasks

__all__ = ["TASK", "TranslationData", "TranslationTask", "ftrun_register_tasks"]
