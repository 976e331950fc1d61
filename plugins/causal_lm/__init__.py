"""Causal language modelling: continue a text (GPT-2 on WikiText-2): plain text, prompt/completion pairs or chats.

The plugin registered under the ``ftrun`` entry-point group; the task and its hooks are in ``task.py``.
"""

from .task import (
    TASK,
    CausalLMData,
    CausalLMTask,
    GeneratingTask,
    GenerationSettings,
    ftrun_after_training,
    ftrun_preflight,
    ftrun_register_tables,
    ftrun_register_tasks,
    generating_head,
)

__all__ = [
    "TASK",
    "CausalLMData",
    "CausalLMTask",
    "GeneratingTask",
    "GenerationSettings",
    "ftrun_after_training",
    "ftrun_preflight",
    "ftrun_register_tables",
    "ftrun_register_tasks",
    "generating_head",
]
