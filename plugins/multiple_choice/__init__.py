"""Multiple choice: a context, a question and N choices → the right choice (RoBERTa on SWAG).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, MultipleChoiceData, MultipleChoiceTask, ftrun_register_tasks

__all__ = ["TASK", "MultipleChoiceData", "MultipleChoiceTask", "ftrun_register_tasks"]
