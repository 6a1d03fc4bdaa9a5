"""Progress on stderr: a bar with samples/s and ETA (data stays on stdout)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["ProgressSink", "progress_bar"]


class ProgressSink(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None:
        """Done before the total: the total becomes what was done (no ETA for work skipped)."""

    def describe(self, text: str) -> None:
        """Replace the bar's description (for figures that change as work goes on, such as a loss)."""


class _Rate(ProgressColumn):
    """Samples completed in this session over the time elapsed: batches finish in bursts, so a
    windowed speed overstates the rate right after each burst."""

    def __init__(self, done: int, unit: str = "samples") -> None:
        super().__init__()
        self._done, self._unit = done, unit

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        n = task.completed - self._done
        if not elapsed or n <= 0:
            return Text(f"-- {self._unit}/s", style="cyan")
        return Text(f"{n / elapsed:.2f} {self._unit}/s", style="cyan")


class _Null:
    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def finish(self) -> None:
        task = next(t for t in self._progress.tasks if t.id == self._task)
        self._progress.update(self._task, total=task.completed)

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)


@contextmanager
def progress_bar(description: str, total: int, done: int = 0, enabled: bool = True,
                 unit: str = "samples") -> Iterator[ProgressSink]:
    if not enabled:
        yield _Null()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(done, unit),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )
    with progress:
        task_id = progress.add_task(description, total=total, completed=done)
        yield _Bar(progress, task_id)
