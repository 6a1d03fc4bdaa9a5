"""Shared CLI plumbing: consoles, the store option, exit codes, output-path checks and clean errors."""

from __future__ import annotations

import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from refute.errors import (
    ConfigError,
    DatasetError,
    FindingNotFoundError,
    RefuteError,
    RunNotFoundError,
    ScorerError,
)
from refute.models import ModelBackend, load_model, parse_spec
from refute.store import Store, open_store

__all__ = [
    "BAD_INPUT_ERRORS", "ExitCode", "StoreOption", "atomic_output", "bad_input", "check_output_path",
    "err", "finite", "friendly_errors", "loaded_models", "out", "store_from", "validation_message",
]

out = Console()  # data: stdout
err = Console(stderr=True)  # progress and messages: stderr

#: A SQLite file or a postgresql:// URL, kept as text (a Path would collapse the URL's ``//``).
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Store: a SQLite file or a postgresql://user:password@host:port/db URL "
                 "(default: $REFUTE_STORE or .refute/refute.db).", show_default=False),
]

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(IntEnum):
    """What the exit status of every refute command means.

    - ``OK`` (0): done.
    - ``FAILURE`` (1): something failed while running (a model, the store, the network).
    - ``BAD_INPUT`` (2): an option, file, spec or run id is invalid; nothing ran and nothing was
      written. typer's own usage errors (an unknown option, a value that is not a number) exit 2 too.
    - ``RESTRICT`` (3) and ``PAUSE`` (4): `refute gate` blocked the deployment.
    - ``INTERRUPTED`` (130): Ctrl-C; every completed sample is stored.
    """

    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    RESTRICT = 3
    PAUSE = 4
    INTERRUPTED = 130


#: Errors that mean the user's input is wrong (exit 2) rather than that running failed (exit 1).
#: `SpecFileError` (a malformed study or policy file) is a `ConfigError`.
BAD_INPUT_ERRORS: tuple[type[RefuteError], ...] = (ConfigError, DatasetError, ScorerError, RunNotFoundError,
                                                   FindingNotFoundError)


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as located problems on one line: ``--top-p: Input should be ... (got 2.0)``.

    A field is named as the option that sets it (``top_p`` -> ``--top-p``); the CLI's options
    are named after the fields they fill.
    """
    parts: list[str] = []
    for problem in exc.errors(include_url=False):
        names = [part for part in problem["loc"] if isinstance(part, str)]
        where = f"--{names[-1].replace('_', '-')}" if names else exc.title
        message = str(problem["msg"]).removeprefix("Value error, ")
        value = problem.get("input")
        got = f" (got {_short(value)})" if isinstance(value, (int, float, str)) else ""
        parts.append(f"{where}: {message}{got}")
    return "; ".join(parts) or str(exc).splitlines()[0]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def bad_input() -> Iterator[None]:
    """Any RefuteError or pydantic error raised inside is the user's input: re-raised as a ConfigError.

    Wrap the up-front checks of a command (building its config, loading its files) in it, so that
    everything found before a model loads exits 2.
    """
    try:
        yield
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from exc
    except BAD_INPUT_ERRORS:
        raise
    except RefuteError as exc:
        raise ConfigError(str(exc)) from exc


def friendly_errors(fn: F) -> F:
    """Turn the errors a command raises into one ``error:`` line and the documented `ExitCode`.

    Bad input (`BAD_INPUT_ERRORS`, or a pydantic error building a config) exits 2; any other
    RefuteError exits 1; Ctrl-C exits 130 and names the run to resume when the engine attached it
    (``refute_run_id`` on the KeyboardInterrupt). Never a traceback for these.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            _fail(validation_message(exc), ExitCode.BAD_INPUT)
        except RefuteError as exc:
            _fail(str(exc), ExitCode.BAD_INPUT if isinstance(exc, BAD_INPUT_ERRORS) else ExitCode.FAILURE)
        except KeyboardInterrupt as exc:
            run_id = getattr(exc, "refute_run_id", None)
            hint = (f"finish with `refute run --resume {run_id}`" if run_id else
                    "rerun the command to finish (stored samples are reused), or find the run with "
                    "`refute runs list` and resume it with `refute run --resume`")
            err.print(f"[yellow]interrupted[/]: every completed sample is stored; {escape(hint)}",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: ExitCode) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


def finite(value: float | None) -> float | None:
    """Option callback: refuse NaN and infinities (typer's ``min=``/``max=`` let NaN through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def check_output_path(path: Path, option: str) -> Path:
    """Check that ``path`` can be written as a file, before anything is computed or written.

    Raises ConfigError (exit 2) naming ``option`` when the path is a directory, its folder does
    not exist or is not a folder, or the folder (or an existing file) cannot be written. The
    folder is probed by creating and removing an empty file, which also works as root, where
    permission bits do not stop writes. Returns the path.
    """
    parent = path.parent
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name inside it")
    if _special(path):  # /dev/stdout, /dev/null, a named pipe: written in place
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path}: not writable")
        return path
    if not parent.exists():
        raise ConfigError(f"{option} {path}: the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path}: the file is not writable")
    probe = parent / f".refute-write-check-{secrets.token_hex(4)}"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write in {parent} ({exc.strerror or exc})") from None
    return path


def _special(path: Path) -> bool:
    """True for an existing path that is not a regular file (a device or pipe), or a link to one."""
    return path.exists() and not path.is_file()


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A text file that replaces ``path`` only when the block succeeds; on failure ``path`` is untouched.

    Writes a temporary file beside ``path`` (same folder, so the final `os.replace` is atomic)
    and keeps an existing file's permissions. A symbolic link, a device or a pipe (``-o
    /dev/stdout``) is written in place instead, since replacing it would replace the link.
    """
    if path.is_symlink() or _special(path):
        with path.open("w", encoding="utf-8", newline="") as fh:
            yield fh
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("x", encoding="utf-8", newline="") as fh:
            yield fh
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def store_from(path: str | os.PathLike[str] | None) -> Iterator[Store]:
    """The store ``--store`` names (a SQLite path or a postgresql:// URL), closed on exit."""
    store = open_store(path)
    try:
        yield store
    finally:
        store.close()


#: Load options that a helper served by an endpoint shares with the target; local helpers get dtype.
_ENDPOINT_OPTIONS = ("base_url", "concurrency", "timeout_s", "max_retries")


@contextmanager
def loaded_models(target: str, roles: dict[str, str], options: dict[str, Any] | None = None
                  ) -> Iterator[dict[str, ModelBackend]]:
    """The target and each helper role's model, one backend per distinct spec (the target may be
    its own attacker and judge), closed on exit. ``options`` go to the target; a helper gets the
    endpoint settings when it is served by an endpoint, else the dtype."""
    options = options or {}
    backends = {target: load_model(target, **options)}
    try:
        for spec in roles.values():
            if spec not in backends:
                keep = _ENDPOINT_OPTIONS if parse_spec(spec).kind == "openai" else ("dtype",)
                backends[spec] = load_model(spec, **{k: v for k, v in options.items() if k in keep})
        yield {"target": backends[target], **{role: backends[spec] for role, spec in roles.items()}}
    finally:
        for backend in backends.values():
            backend.close()


def endpoint_urls(values: list[str] | None) -> str | list[str] | None:
    """A repeatable ``--base-url`` as `load_model` takes it: None when not given, the one value as
    text (a URL or an endpoints YAML file), several as a list."""
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)
