"""Shared CLI plumbing: consoles, the store option, and turning RefuteError into a clean exit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from refute.errors import RefuteError
from refute.store import Store, open_store

out = Console()  # data: stdout
err = Console(stderr=True)  # progress and messages: stderr

StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help="SQLite store (default: $REFUTE_STORE or .refute/refute.db).",
                 show_default=False),
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Print a RefuteError as one clear line and exit 1 (no traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RefuteError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: every completed sample is stored; "
                      "finish with `refute run --resume RUN_ID`")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def store_from(path: Path | None) -> Iterator[Store]:
    store = open_store(path)
    try:
        yield store
    finally:
        store.close()
