"""The built-in implementation of every stage: the shared stage code, run with the task's own parts.

Registered ``trylast``, so any plugin implementing a stage hook (or ``ftrun_save_model``) runs first and wins when it
returns something; returning ``None`` leaves the stage to these. ftrun refuses to block this
plugin: without it no stage has an answer.
"""

from __future__ import annotations

from ftrun import hookimpl
from ftrun.manifest.search import SearchTable
from ftrun.stages.data import load_data
from ftrun.stages.head import build_head


@hookimpl(trylast=True)
def ftrun_load_data(task, config, sample, labels, splits):
    return load_data(task, config, sample, labels=labels, encode=splits)


@hookimpl(trylast=True)
def ftrun_build_head(task, config, data):
    return build_head(task, config, data)


@hookimpl(trylast=True)
def ftrun_build_metrics(task, config, data):
    return task.build_metrics(config, data)


@hookimpl(trylast=True)
def ftrun_build_trainer(task, config, data, model, metrics, callbacks, output_dir):
    from ftrun.stages.training import build_trainer  # on first use: the Trainer imports optional libraries (peft, ...), which listing tasks must not

    return build_trainer(task, config, data, model, metrics, callbacks=callbacks, output_dir=output_dir)


@hookimpl(trylast=True)
def ftrun_save_model(task, config, trainer, output_dir):
    trainer.save_model(str(output_dir))
    return True


@hookimpl
def ftrun_register_tables(register):
    register("search", SearchTable)
