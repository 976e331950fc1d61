"""Audio classification: a sound clip → one of N named labels (wav2vec2 on keyword spotting).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""

from .task import TASK, AudioClassificationData, AudioClassificationTask, ftrun_build_head, ftrun_register_tasks

__all__ = ["TASK", "AudioClassificationData", "AudioClassificationTask", "ftrun_build_head", "ftrun_register_tasks"]
