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


class _Rate(ProgressColumn):
    """Samples completed in this session over the time elapsed: batches finish in bursts, so a
    windowed speed overstates the rate right after each burst."""

    def __init__(self, done: int) -> None:
        super().__init__()
        self._done = done

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        n = task.completed - self._done
        if not elapsed or n <= 0:
            return Text("-- samples/s", style="cyan")
        return Text(f"{n / elapsed:.2f} samples/s", style="cyan")


class _Null:
    def advance(self, n: int = 1) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


@contextmanager
def progress_bar(description: str, total: int, done: int = 0, enabled: bool = True) -> Iterator[ProgressSink]:
    if not enabled:
        yield _Null()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(done),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )
    with progress:
        task_id = progress.add_task(description, total=total, completed=done)
        yield _Bar(progress, task_id)
