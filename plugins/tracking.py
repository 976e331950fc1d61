"""Experiment tracking: ``[training] report_to`` checked before anything loads, and MLflow runs that record what made them.

The Trainer logs to TensorBoard, MLflow (and the other services it knows) itself, as
``report_to`` says; this plugin adds what a run needs around that, for every task: a service
whose package is missing is one pre-flight line saying what to install (not a traceback after
the model has loaded), and an MLflow run gets the effective manifest (``ftrun.toml``) as an
artifact and the versions of ftrun and of the installed plugins as parameters, so a run in the
tracking server can be traced to what produced it.
"""

from __future__ import annotations

import importlib.util
import os
from importlib.metadata import entry_points
from typing import Any

import tomli_w

from ftrun import __version__, hookimpl

#: The services ftrun installs through its extras: the package each needs, and the extra.
EXTRAS = {"tensorboard": ("tensorboard", "ftrun[tensorboard]"), "mlflow": ("mlflow", "ftrun[mlflow]")}
#: Other services' packages, where the package is not named as the service (the rest are).
PACKAGES = {"wandb": "wandb", "comet_ml": "comet_ml", "clearml": "clearml", "neptune": "neptune", "dvclive": "dvclive", "trackio": "trackio"}


def services(config: Any) -> list[str]:
    """The services ``training.report_to`` names (``"none"``: none)."""
    value = config.training.get("report_to", "none")
    names = [value] if isinstance(value, str) else list(value or [])
    return [name for name in names if name not in ("none", "all")]


@hookimpl
def ftrun_preflight(task, config, data, report):
    for name in services(config):
        package, extra = EXTRAS.get(name, (PACKAGES.get(name, name), PACKAGES.get(name, name)))
        if importlib.util.find_spec(package) is None:
            report.fail("training.report_to", f'"{name}" needs the {package} package: pip install "{extra}"')


@hookimpl
def ftrun_trainer_callbacks(task, config):
    if "mlflow" not in services(config):
        return None
    from transformers import TrainerCallback  # here: listing the plugins imports no Trainer

    class StartRun(TrainerCallback):
        """Starts the MLflow run as the Trainer is made, with ``ftrun.toml`` as an artifact and the versions as parameters.

        Started here, not by the Trainer's MLflow callback, the run is the run's whole: that
        callback ends a run it started when training ends, and the final evaluation would go
        to a second one. ``ftrun_after_training`` ends it.
        """

        def on_init_end(self, args, state, control, **kwargs):
            import mlflow

            if not state.is_world_process_zero or mlflow.active_run() is not None:
                return
            if os.environ.get("MLFLOW_EXPERIMENT_NAME"):  # as the Trainer's callback reads it
                mlflow.set_experiment(os.environ["MLFLOW_EXPERIMENT_NAME"])
            mlflow.start_run(run_name=args.run_name)
            mlflow.log_text(tomli_w.dumps(config.manifest), "ftrun.toml")
            mlflow.log_params(versions())

    return [StartRun()]


@hookimpl
def ftrun_after_training(task, config, trainer):
    """Ends the MLflow run once the final evaluation is in it; the summary says where it is."""
    if "mlflow" not in services(config) or not trainer.is_world_process_zero():
        return None
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return None
    mlflow.end_run()
    return f"MLflow: run {run.info.run_id} of experiment {run.info.experiment_id} at {mlflow.get_tracking_uri()}"


def versions() -> dict[str, str]:
    """ftrun's version and that of each installed plugin's package, as MLflow parameters."""
    found = {"ftrun.version": __version__}
    for point in entry_points(group="ftrun"):
        found[f"ftrun.plugin.{point.name}"] = f"{point.dist.name} {point.dist.version}" if point.dist else point.value
    return found
