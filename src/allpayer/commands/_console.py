"""Console helpers shared by the commands that run long stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: A stage's progress callback: (what it is doing, steps done, steps in all).
ProgressFn = Callable[[str, int, int], None]


@contextmanager
def stage_progress(console: Console, width: int = 60) -> Iterator[ProgressFn]:
    """A transient progress bar on `console` (stderr), yielding the callback the stages call; the
    description is cut to `width` characters so the bar keeps to one line."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def progress(description: str, done: int, total: int) -> None:
            bar.update(task, description=description[:width], completed=done, total=total)

        yield progress
