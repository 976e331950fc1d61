"""The PNGs of a run's ``plots/``: its curves (training loss and each eval metric against the step), and the task's own.

Drawn with matplotlib on its headless Agg backend, imported on first use (listing tasks or
checking a manifest draws nothing). A task adds figures through ``Task.plots``, with the
helpers here for the usual ones (a confusion matrix, a score per class, generated lengths
against the references').
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ftrun.api.task import BaseTask
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData

#: Logged values that are no metric of the model: the Trainer's bookkeeping.
BOOKKEEPING = ("runtime", "samples_per_second", "steps_per_second", "epoch", "model_preparation_time", "flos")


def figure(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (6.4, 4.0)) -> tuple[Figure, Any]:
    """A new figure with one set of axes, titled and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")  # not pyplot: no global state, nothing to close
    axes = fig.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return fig, axes


def training_curves(log_history: list[dict[str, Any]], best_step: int | None) -> dict[str, Figure]:
    """``loss``: the training (and eval) loss against the step; one figure per other eval metric, with its parts; the best checkpoint's step marked."""
    # Up to the training's summary: the final evaluation after it (of the best checkpoint, at the last step) is the run's result, not a point of its curve.
    end = next((i for i, entry in enumerate(log_history) if "train_runtime" in entry), len(log_history))
    log_history = log_history[:end]
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evaluations = [entry for entry in log_history if any(key.startswith("eval_") for key in entry) and "step" in entry]
    names = sorted({key[5:] for entry in evaluations for key in entry if key.startswith("eval_") and not key[5:].endswith(BOOKKEEPING)})
    figures = {}
    if train or "loss" in names:
        fig, axes = figure("Loss", "step", "loss")
        if train:
            axes.plot(*zip(*train), label="training loss", color="tab:blue")
        mark(axes, evaluations, "loss", best_step, "eval loss", "tab:orange")
        axes.legend()
        figures["loss"] = fig
    # A metric's value per part (NER's ``LOC_f1`` beside ``f1``) is a line of the metric's figure, not a figure of its own.
    parts = {name: [other for other in names if other.endswith(f"_{name}")] for name in names if name != "loss"}
    grouped = {other for members in parts.values() for other in members}
    for name in names:
        if name not in parts or name in grouped:
            continue
        fig, axes = figure(f"Eval {name}", "step", name)
        for other in parts[name]:
            points = [(entry["step"], entry[f"eval_{other}"]) for entry in evaluations if f"eval_{other}" in entry]
            axes.plot(*zip(*points), marker=".", linewidth=1, alpha=0.8, label=other[: -len(name) - 1])
        mark(axes, evaluations, name, best_step, f"eval {name}" + (" (all)" if parts[name] else ""), "black" if parts[name] else "tab:green")
        axes.legend(fontsize="small")
        figures[f"eval_{name}"] = fig
    return figures


def mark(axes: Any, evaluations: list[dict[str, Any]], name: str, best_step: int | None, label: str, color: str) -> None:
    """The eval metric ``name`` at each evaluation, and the best checkpoint's evaluation ringed."""
    points = [(entry["step"], entry[f"eval_{name}"]) for entry in evaluations if f"eval_{name}" in entry]
    if not points:
        return
    axes.plot(*zip(*points), marker="o", label=label, color=color)
    best = [point for point in points if point[0] == best_step]
    if best:
        axes.scatter(*zip(*best), s=160, facecolors="none", edgecolors="black", linewidths=1.5, zorder=3, label=f"best checkpoint (step {best_step})")


def confusion_matrix(references: Sequence[str], predictions: Sequence[str], labels: Sequence[str]) -> Figure:
    """How often each true label (rows) was predicted as each label (columns), counts in the cells."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 3.2 + 0.5 * len(labels)
    fig, axes = figure("Confusion matrix (eval split)", "predicted label", "true label", size=(size, size))
    axes.grid(False)
    ConfusionMatrixDisplay.from_predictions(references, predictions, labels=list(labels), ax=axes, colorbar=False, xticks_rotation=45)
    axes.set_title("Confusion matrix (eval split)")
    return fig


def scores_per_class(scores: dict[str, float], title: str, xlabel: str, ylabel: str) -> Figure:
    """One bar per class (an entity type, a label), its score written above it."""
    fig, axes = figure(title, xlabel, ylabel, size=(max(4.0, 1.0 + 0.8 * len(scores)), 4.0))
    bars = axes.bar(list(scores), list(scores.values()), color="tab:blue")
    axes.bar_label(bars, fmt="%.2f")
    axes.set_ylim(0, 1.05)
    return fig


def lengths(generated: Sequence[int], references: Sequence[int], unit: str = "tokens") -> Figure:
    """Each generated text's length against its reference's, with the line where they are equal."""
    fig, axes = figure("Generated against reference lengths (eval split)", f"reference length ({unit})", f"generated length ({unit})", size=(5.0, 5.0))
    axes.scatter(references, generated, alpha=0.5, s=14, color="tab:blue")
    top = max([*generated, *references, 1])
    axes.plot([0, top], [0, top], color="gray", linestyle="--", label="equal length")
    axes.legend()
    return fig


def run_figures(task: BaseTask, trainer: Any, data: TaskData, config: RunConfig) -> dict[str, Figure]:
    """A finished run's figures: its curves, and the task's plots of its final evaluation; drawn by the main process alone."""
    if not trainer.is_world_process_zero():
        return {}
    best = trainer.state.best_model_checkpoint
    return {**training_curves(trainer.state.log_history, int(best.rsplit("-", 1)[1]) if best else None), **task_figures(task, trainer, data, config)}


def task_figures(task: BaseTask, trainer: Any, data: TaskData, config: RunConfig) -> dict[str, Figure]:
    """The task's plots of the trainer's latest evaluation, post-processed as its metrics saw it (none where the Trainer kept no outputs)."""
    outputs = getattr(trainer, "eval_outputs", None)
    if outputs is None or outputs.predictions is None or data.raw is None:
        return {}
    return task.plots(task.postprocess(outputs, data.eval, data.raw.eval, data, config), data, config)


def file_name(name: str) -> str:
    """A figure's or metric's name as a flat, portable file name: TRL logs ``rewards/accuracies``, which would be a folder."""
    return re.sub(r"[^\w.-]", "_", name)


def save(figures: dict[str, Figure], folder: Path) -> list[Path]:
    """Each figure as ``folder/NAME.png``, its name made a safe file name (:func:`file_name`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = folder / f"{file_name(name)}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
