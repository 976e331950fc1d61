"""Image classification: an image → one of N named labels (a ViT on beans, or on handwritten digits).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, ImageClassificationData, ImageClassificationTask, ftrun_register_tasks

__all__ = ["TASK", "ImageClassificationData", "ImageClassificationTask", "ftrun_register_tasks"]
