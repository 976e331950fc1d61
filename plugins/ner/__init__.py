"""Named-entity recognition: a tag per word (B-PER, I-PER, O, ...) → entity spans (BERT on CoNLL-2003).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, NerData, NerTask, ftrun_register_tasks

__all__ = ["TASK", "NerData", "NerTask", "ftrun_register_tasks"]
