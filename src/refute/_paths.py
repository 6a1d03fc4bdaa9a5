"""Where refute keeps its files: the store and the user cache of converted models.

A store is a SQLite file (the default, ``.refute/refute.db``) or a PostgreSQL database named by a
``postgresql://user:password@host:port/database`` URL (``postgres://`` too). A PostgreSQL store
still needs a local folder for the files written beside a store (reports, studies, attack
folders): `store_path` gives ``.refute/postgresql/<host>-<port>-<database>/store`` for a URL, so
``store_path(url).parent`` is that database's own local folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_STORE = Path(".refute") / "refute.db"

#: URL schemes that name a PostgreSQL store.
POSTGRES_SCHEMES = ("postgresql", "postgres")


def cache_dir() -> Path:
    """The user cache: ``$REFUTE_CACHE``, else ``$XDG_CACHE_HOME/refute``, else ``~/.cache/refute``."""
    if env := os.environ.get("REFUTE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "refute"


def is_store_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``), not a path."""
    return isinstance(location, str) and location.split("://", 1)[0].lower() in POSTGRES_SCHEMES \
        and "://" in location


def store_location(explicit: str | os.PathLike[str] | None = None) -> str | Path:
    """The store as given: the explicit value, else ``$REFUTE_STORE``, else ``.refute/refute.db``;
    a PostgreSQL URL as the string it is, a path as a `Path`."""
    given: str | os.PathLike[str] | None = explicit
    if given is None or given == "":
        given = os.environ.get("REFUTE_STORE") or None
    if given is None:
        return DEFAULT_STORE
    if is_store_url(given):
        return str(given)
    return Path(given).expanduser()


def redact_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def postgres_folder(url: str) -> Path:
    """The local folder of a PostgreSQL store's side files: ``.refute/postgresql/<host>-<port>-<database>``."""
    parts = urlsplit(url)
    name = f"{parts.hostname or 'localhost'}-{parts.port or 5432}-{parts.path.lstrip('/') or 'postgres'}"
    return DEFAULT_STORE.parent / "postgresql" / re.sub(r"[^A-Za-z0-9._-]", "_", name)


def store_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The store's local path: the SQLite file (the explicit path, else ``$REFUTE_STORE``, else
    ``.refute/refute.db``), or for a PostgreSQL URL ``.refute/postgresql/<host>-<port>-<db>/store``,
    whose folder holds that database's side files. Use `store_location` to open the store."""
    location = store_location(explicit)
    return postgres_folder(location) / "store" if isinstance(location, str) else location
