"""The built-in implementation of every stage: call the task's own method.

Registered ``trylast``, so any plugin implementing a stage hook runs first and wins
when it returns something; returning ``None`` leaves the stage to the task.
"""

from __future__ import annotations

from . import hookimpl


@hookimpl(trylast=True)
def ftrun_load_data(task, config):
    return task.load_data(config)


@hookimpl(trylast=True)
def ftrun_build_head(task, config, data):
    return task.build_head(config, data)


@hookimpl(trylast=True)
def ftrun_build_metrics(task, config, data):
    return task.build_metrics(config, data)


@hookimpl(trylast=True)
def ftrun_build_trainer(task, config, data, model, metrics, callbacks, output_dir):
    return task.build_trainer(config, data, model, metrics, callbacks, output_dir)
