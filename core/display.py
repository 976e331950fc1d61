"""What the terminal shows during a run: rich progress bars and the closing summary.

The runner makes one ``Display`` current for the length of a run; the stages report
through :func:`bar` and stay silent when no display is current (tests, library use).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

_current: contextvars.ContextVar[Display | None] = contextvars.ContextVar("ftrun_display", default=None)


class Display:
    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        # soft_wrap: a message is one line however narrow the terminal, so it can be grepped and piped.
        # quiet: the other processes of a distributed run show nothing; the main one shows the run.
        self.console = console or Console(soft_wrap=True, quiet=quiet)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
        )

    @contextlib.contextmanager
    def active(self) -> Iterator[Display]:
        token = _current.set(self)
        self.progress.start()
        try:
            yield self
        finally:
            self.progress.stop()
            _current.reset(token)

    def bar(self, description: str, total: int) -> Callable[[int], None]:
        task_id = self.progress.add_task(description, total=total, note="")
        return lambda n: self.progress.advance(task_id, n)

    def print(self, *objects, **kwargs) -> None:
        self.console.print(*objects, **kwargs)


def bar(description: str, total: int) -> Callable[[int], None] | None:
    """A progress bar on the current display; ``None`` when nothing is displayed."""
    display = _current.get()
    return display.bar(description, total) if display else None


class RichProgressCallback(TrainerCallback):
    """The Trainer's progress as rich bars, instead of its default tqdm bars."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.train_id = None
        self.eval_id = None

    @property
    def progress(self) -> Progress:
        return self.display.progress

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_id = self.progress.add_task("Training", total=state.max_steps, note="")

    def on_train_end(self, args, state, control, **kwargs):
        self.train_id = None

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update(self.train_id, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.train_id is not None and logs and "loss" in logs:
            self.progress.update(self.train_id, note=f"loss {logs['loss']:.4f}  epoch {state.epoch:.2f}")

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.eval_id is None:
            total = len(eval_dataloader) if eval_dataloader is not None and hasattr(eval_dataloader, "__len__") else None
            self.eval_id = self.progress.add_task("Evaluating", total=total, note="")
        self.progress.advance(self.eval_id)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.eval_id is not None:
            self.progress.remove_task(self.eval_id)
            self.eval_id = None
        if self.train_id is None:
            return  # the final evaluation: the run's summary table shows it
        shown = {
            k[5:]: v for k, v in (metrics or {}).items() if k.startswith("eval_") and isinstance(v, float) and "runtime" not in k and "per_second" not in k
        }
        self.display.print(f"epoch {state.epoch:.2f}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))
