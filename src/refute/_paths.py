"""Where refute keeps its files: the store and the user cache of converted models."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORE = Path(".refute") / "refute.db"


def cache_dir() -> Path:
    """The user cache: ``$REFUTE_CACHE``, else ``$XDG_CACHE_HOME/refute``, else ``~/.cache/refute``."""
    if env := os.environ.get("REFUTE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "refute"


def store_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite store: the explicit path, else ``$REFUTE_STORE``, else ``.refute/refute.db``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if env := os.environ.get("REFUTE_STORE"):
        return Path(env).expanduser()
    return DEFAULT_STORE
