"""What the store needs of a database connection, so the SQLite and PostgreSQL stores share their
methods: rows read by name or position, cursors, and a connection that runs ``?``-placeholder SQL.

`sqlite3.Connection` is such a connection as it is; `refute.store._postgres` wraps psycopg's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

__all__ = ["Connection", "Cursor", "Row"]


class Row(Protocol):
    """One result row: ``row["column"]`` or ``row[0]``."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside a store transaction: SQL with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...
    @property
    def in_transaction(self) -> bool: ...
