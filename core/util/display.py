"""What the terminal shows during a run: rich progress bars and the closing summary.

The runner makes one ``Display`` current for the length of a run; the stages report
through :func:`bar` and stay silent when no display is current (tests, library use). The
Trainer's progress reaches it through ``ftrun.stages.training.RichProgressCallback``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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

    def bar(self, description: str, total: int | None) -> Callable[[int], None]:
        task_id = self.progress.add_task(description, total=total, note="")
        return lambda n: self.progress.advance(task_id, n)

    def print(self, *objects, **kwargs) -> None:
        self.console.print(*objects, **kwargs)


def bar(description: str, total: int) -> Callable[[int], None] | None:
    """A progress bar on the current display; ``None`` when nothing is displayed."""
    display = _current.get()
    return display.bar(description, total) if display else None
