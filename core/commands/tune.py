"""``ftrun tune``: hyperparameter search over any task's manifest, with Optuna, in a database that outlives the process.

Each trial is an ordinary run of the manifest with the trial's values laid over it (as
``--set`` lays them), in its own folder under ``OUTPUT/trials/``. The study lives in an
SQLite file in the output directory (or any database Optuna supports, ``--storage``), so that:

- a second ``ftrun tune`` of the same manifest continues the study: finished trials stay
  finished, and a trial that Ctrl-C or SIGTERM stopped is retried from its last checkpoint;
  one whose process was killed outright is retried once its heartbeat is stale (Optuna's
  ``RetryFailedTrialCallback``);
- several ``ftrun tune`` processes, on one machine or many, on the same storage share one study.

After the trials, the best trial's model is copied into the output directory (a model directory
as any run's), its manifest written as ``best.toml``, every trial listed in ``trials.csv`` and
the model card, and Optuna's plots of the search written under ``plots/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from filelock import FileLock
from transformers import TrainerCallback

from ftrun.commands.common import config_options, load_config
from ftrun.manifest.search import SearchTable
from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    import optuna

    from ftrun.api.plugin_manager import PluginManager
    from ftrun.manifest.config import RunConfig
    from ftrun.util.display import Display

#: Seconds between a running trial's heartbeats, and without one after which it counts as dead and is retried.
HEARTBEAT_INTERVAL, GRACE_PERIOD = 10, 30
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"


def tune(
    manager: PluginManager,
    config: RunConfig,
    manifest: str | None,
    overrides: list[str],
    output_dir: Path,
    *,
    storage: str | None,
    study_name: str,
    display: Display,
) -> optuna.Study:
    """Run the study of ``config``'s ``[search]`` until it has ``trials`` finished trials, then write its results."""
    optuna = import_optuna()
    search: SearchTable = config.tables["search"]
    metric, direction = objective_of(manager, config, search)
    for key, param in search.space.items():  # a key no run takes fails now, not in the first trial
        trial_config(manager, config, manifest, overrides, {key: param.choices[0] if param.choices else param.low})
    output_dir.mkdir(parents=True, exist_ok=True)
    # Workers that start together would each create the database's tables, and all but one fail:
    # the first creates them while the others wait (filelock: a blocking lock, held briefly).
    with FileLock(output_dir / ".ftrun-study.lock"):
        study = create_study(optuna, search, storage or f"sqlite:///{(output_dir / STUDY_FILE).resolve()}", study_name, direction)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # what counts toward trials
    done = finished_trials(study)
    display.print(
        f"ftrun tune: study {study_name} ({storage or output_dir / STUDY_FILE}): {done} of {search.trials} trials finished; "
        f"{direction} {metric} over {', '.join(search.space)}"
    )
    if done < search.trials:
        objective = Objective(manager, config, manifest, overrides, output_dir, metric=metric, display=display)
        study.optimize(
            objective,
            timeout=search.timeout,
            callbacks=[optuna.study.MaxTrialsCallback(search.trials, states=finished), Progress(metric, search.trials, display)],
        )
    write_results(study, output_dir, metric, display)
    return study


def create_study(optuna: Any, search: SearchTable, storage: str, study_name: str, direction: str) -> optuna.Study:
    """The study in ``storage``, created or loaded: retrying trials whose process died (no heartbeat for ``GRACE_PERIOD`` seconds)."""
    return optuna.create_study(
        study_name=study_name,
        storage=optuna.storages.RDBStorage(
            storage,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=3),
        ),
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=search.seed) if search.sampler == "tpe" else optuna.samplers.RandomSampler(seed=search.seed),
        pruner={
            "median": optuna.pruners.MedianPruner(n_startup_trials=2),
            "successive-halving": optuna.pruners.SuccessiveHalvingPruner(),
            "none": optuna.pruners.NopPruner(),
        }[search.pruner],
        load_if_exists=True,
    )


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise FtrunError('ftrun tune needs Optuna: pip install "ftrun[tune]"') from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def objective_of(manager: PluginManager, config: RunConfig, search: SearchTable) -> tuple[str, str]:
    """The metric to optimise and its direction: the task's best metric (its metric stage says which way is better), or ``[search]``'s."""
    from ftrun.stages.preflight import CHECK_SAMPLE

    task = manager.task(config.task)
    metrics = manager.build_metrics(task, config, manager.load_data(task, config, sample=CHECK_SAMPLE))
    metric = search.metric or metrics.best
    if search.direction is not None:
        return metric, search.direction
    if metric != metrics.best:
        raise FtrunError(
            f"{config.where('search.direction')}: needed for metric {metric!r} (which way is better is known for {metrics.best!r}, the task's best metric)"
        )
    return metric, "maximize" if metrics.greater_is_better else "minimize"


def trial_config(manager: PluginManager, config: RunConfig, manifest: str | None, overrides: list[str], values: dict[str, Any]) -> RunConfig:
    """The run config of one trial: the manifest and flags, with the trial's values laid over them as ``--set`` lays them."""
    from ftrun.manifest.config import build_config, read_manifest

    task = manager.task(config.task)
    given = read_manifest(Path(manifest)) if manifest else {"task": config.task}
    sets = [f"{key}={tomli_w.dumps({'value': value}).split('=', 1)[1].strip()}" for key, value in values.items()]
    try:
        return build_config(
            task,
            given,
            source=config.source,
            base_dir=Path(manifest).parent if manifest else None,
            overrides=[*overrides, *sets],
            demo=config.demo,
            tables=manager.tables(),
        )
    except FtrunError as exc:
        keys = ", ".join(values)
        raise FtrunError(f"{config.where('search.space')}: {keys}: {exc}") from exc


class Objective:
    """One trial: an ordinary run in the trial's folder, each evaluation reported to Optuna, which may prune it."""

    def __init__(
        self, manager: PluginManager, config: RunConfig, manifest: str | None, overrides: list[str], output_dir: Path, *, metric: str, display: Display
    ) -> None:
        self.manager, self.config, self.manifest, self.overrides = manager, config, manifest, overrides
        self.output_dir, self.metric, self.display = output_dir, metric, display

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from ftrun.runner import Interrupted, run

        search: SearchTable = self.config.tables["search"]
        values = {key: param.suggest(trial, key) for key, param in search.space.items()}
        # A retried trial (user attributes are copied to the retry) goes on in the folder of the one it retries.
        folder = trial.user_attrs.get("folder") or f"trial-{trial.number}"
        trial.set_user_attr("folder", folder)
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
        trial_dir = self.output_dir / TRIALS_DIR / folder
        shown = assignments(values)
        done = finished_trials(trial.study)
        self.display.print(f"[bold]trial {trial.number}[/] ({folder}; {done} of {search.trials} finished): {shown}", highlight=False)
        config = trial_config(self.manager, self.config, self.manifest, self.overrides, values)
        report = ReportToTrial(trial, self.metric)
        try:
            result = run(config, self.manager, trial_dir, resume=trial_dir.exists(), display=self.display, callbacks=[report])
        except Interrupted:
            # Failed now, retried (in this folder, from its checkpoint) by the next ftrun tune of the study.
            frozen = next(found for found in trial.study.get_trials(deepcopy=False) if found.number == trial.number)
            optuna.storages.RetryFailedTrialCallback()(trial.study, frozen)
            raise
        value = result.eval_metrics.get(f"eval_{self.metric}")
        if value is None:
            raise FtrunError(f"{self.config.where('search.metric')}: the run reported no eval_{self.metric} (metrics: {', '.join(result.eval_metrics)})")
        if report.pruned:
            if not search.keep_pruned:
                shutil.rmtree(trial_dir, ignore_errors=True)
            self.display.print(f"trial {trial.number}: pruned at step {report.pruned} ({self.metric} {value:.4f})")
            raise optuna.TrialPruned()
        self.display.print(f"trial {trial.number}: {self.metric} {value:.4f}")
        return value


def finished_trials(study: optuna.Study) -> int:
    """Trials that count toward ``trials``: complete or pruned, by any worker."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def formatted(value: Any) -> str:
    """A parameter's value as the terminal shows it: floats short (``0.0003``, ``1e-05``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def assignments(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={formatted(value)}" for key, value in values.items())


class Progress:
    """After each trial, the study's standing in one line: finished, pruned and running trials (any worker's), and the best so far."""

    def __init__(self, metric: str, trials: int, display: Display) -> None:
        self.metric, self.trials, self.display = metric, trials, display

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.trial import TrialState

        states = [found.state for found in study.get_trials(deepcopy=False)]
        line = f"study: {finished_trials(study)} of {self.trials} trials finished ({states.count(TrialState.PRUNED)} pruned, {states.count(TrialState.RUNNING)} running)"
        if TrialState.COMPLETE in states:
            best = study.best_trial
            line += f"; best so far: trial {best.number}, {self.metric} {best.value:.4f} ({assignments(dict(sorted(best.params.items())))})"
        self.display.print(line, highlight=False)


class ReportToTrial(TrainerCallback):
    """Reports the metric of each evaluation to the trial; stops training when Optuna's pruner says the trial is unpromising."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.pruned: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is None or state.global_step == 0:
            return control
        self.trial.report(value, step=state.global_step)
        if self.trial.should_prune():
            self.pruned = state.global_step
            control.should_training_stop = True
        return control


def write_results(study: optuna.Study, output_dir: Path, metric: str, display: Display) -> None:
    """The best trial's model as the output directory's, ``best.toml``, ``trials.csv``, the card's table of trials, and the plots."""
    import optuna
    from rich.table import Table

    from ftrun.stages.output import MANIFEST_NAME, RUN_SEAL
    from ftrun.stages.training import seal

    trials = study.get_trials(deepcopy=False)
    table = Table(title=f"Trials of study {study.study_name}")
    for column in ("trial", "state", metric, *(sorted(study.trials[0].params) if trials else [])):
        table.add_column(column)
    for trial in trials:
        shown = [formatted(trial.params[key]) for key in sorted(trial.params)]
        table.add_row(str(trial.number), trial.state.name.lower(), "" if trial.value is None else f"{trial.value:.4f}", *shown)
    display.print(table)
    study.trials_dataframe().to_csv(output_dir / "trials.csv", index=False)
    complete = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        display.print("no trial completed: no best model")
        return
    best = study.best_trial
    best_dir = output_dir / TRIALS_DIR / best.user_attrs["folder"]
    copied = [item.name for item in best_dir.iterdir() if item.is_file() and item.name != RUN_SEAL]
    for name in copied:  # a standard model directory, as any run's (its checkpoints stay with the trial)
        temporary = output_dir / f".{name}.tmp"
        shutil.copy2(best_dir / name, temporary)
        os.replace(temporary, output_dir / name)
    shutil.copy2(best_dir / MANIFEST_NAME, output_dir / "best.toml")
    card = output_dir / "README.md"
    rows = "\n".join(
        f"| {trial.number} | {trial.state.name.lower()} | {'' if trial.value is None else f'{trial.value:.4f}'} | "
        + ", ".join(f"{key}={value}" for key, value in sorted(trial.params.items()))
        + " |"
        for trial in trials
    )
    card.write_text(
        card.read_text(encoding="utf-8")
        + f"\n## Hyperparameter search\n\nThis model is trial {best.number} of study `{study.study_name}` ({len(trials)} trials, "
        f"{study.direction.name.lower()} {metric}), made with `ftrun tune`; `best.toml` is its manifest.\n\n"
        f"| trial | state | {metric} | parameters |\n|---|---|---|---|\n{rows}\n",
        encoding="utf-8",
    )
    write_plots(study, output_dir / "plots", metric)
    # Sealed as a run's outputs are, the card as it is now: ftrun predict and eval check it as any run's.
    identity = json.loads((best_dir / RUN_SEAL).read_text(encoding="utf-8")).get("run")
    model_files = [output_dir / name for name in (*copied, "best.toml")] + sorted((output_dir / "plots").rglob("*"))
    seal(output_dir, RUN_SEAL, model_files, run=identity)
    display.print(f"best: trial {best.number}, {metric} {best.value:.4f}; its model is in {output_dir}, its manifest in {output_dir / 'best.toml'}")


def write_plots(study: optuna.Study, folder: Path, metric: str) -> None:
    """Optuna's plots of the metric over the trials and of each parameter's importance, as PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    folder.mkdir(exist_ok=True)
    for name, plot in (("search-history.png", plots.plot_optimization_history), ("search-importance.png", plots.plot_param_importances)):
        try:
            axes = plot(study)
        except (ValueError, RuntimeError):  # importances need two completed trials whose parameters differ
            continue
        if name == "search-history.png":
            axes.set_ylabel(metric)
        axes.figure.tight_layout()
        axes.figure.savefig(folder / name, dpi=120)
        plt.close(axes.figure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_options(parser)
    parser.add_argument("--output-dir", metavar="DIR", help="where the trials, the study and the best model go (default: ftrun-runs/TASK-tune)")
    parser.add_argument("--storage", metavar="URL", help="the study's database, any Optuna supports (default: study.db, SQLite, in the output directory)")
    parser.add_argument("--study", default="ftrun", metavar="NAME", help="the study's name in the database (default: ftrun)")


def main(args: argparse.Namespace) -> int:
    from ftrun.util.display import Display

    display = Display()
    manager, config = load_config(args, announce=display.print)
    if "search" not in config.tables:
        raise FtrunError(
            f'{config.source}: no [search] table: say what to search over, e.g. [search.space] "training.learning_rate" = {{low = 1e-5, high = 1e-3, log = true}}'
        )
    output_dir = Path(args.output_dir or config.output_dir or Path("ftrun-runs") / f"{config.task}-tune")
    tune(manager, config, args.manifest, args.overrides, output_dir, storage=args.storage, study_name=args.study, display=display)
    return 0
