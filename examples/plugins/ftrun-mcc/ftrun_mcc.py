"""Adds the Matthews correlation coefficient (MCC) to text-classification's metrics.

A plugin that changes one stage of one built-in task and nothing else: it answers the
metric stage for text-classification and returns ``None`` for every other task, which so
keeps its own metrics. MCC stays informative when the classes are unbalanced, where
accuracy flatters a model that always says the majority class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ftrun import Metrics, RunConfig, Task, TaskData, hookimpl

#: The ftrun versions this plugin is written for: ftrun refuses to load it into any other.
ftrun_requires = ">=0.1,<0.2"


@hookimpl
def ftrun_build_metrics(task: Task, config: RunConfig, data: TaskData) -> Metrics | None:
    if task.name != "text-classification":
        return None
    from sklearn.metrics import matthews_corrcoef

    own = task.build_metrics(config, data)  # the task's metrics as the manifest configures them

    def compute(prediction: Any) -> dict[str, float]:
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {**own.compute(prediction), "mcc": float(matthews_corrcoef(prediction.label_ids, predicted))}

    return Metrics(compute=compute, best=own.best, greater_is_better=own.greater_is_better)
