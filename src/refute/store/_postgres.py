"""The store in a PostgreSQL database: ``--store postgresql://user:password@host:port/database``.

The same store as the SQLite one (`Store`: its methods, its schema, one transaction per sample),
for many processes or machines writing one store at once. The schema is derived from the SQLite
schema text (`refute.store._schema.to_postgres`), so the two cannot drift; a fresh database gets
the current schema, an older one the same migrations. Several processes may open and write the
store at once: the schema is created under an advisory lock, and each sample is one transaction
whose ``INSERT ... ON CONFLICT`` never overwrites a completed sample.

``path`` is local: ``.refute/postgresql/<host>-<port>-<database>/store`` (see
`refute._paths.store_path`); its folder holds the files written beside the store (reports,
studies, attack folders). ``location`` is the URL with its password hidden, as every message and
``repr`` shows it.

Every psycopg failure becomes a `StoreError` that says what happened; psycopg is imported only
when a PostgreSQL store is opened (``pip install 'refute[postgres]'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import urlsplit

from refute._paths import redact_url, store_path
from refute.errors import ConfigError, StoreError
from refute.store._db import Connection, Row
from refute.store._schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, tables, to_postgres
from refute.store._store import Store

__all__ = ["PgRow", "PostgresStore"]

#: Key of the advisory lock held while the schema is created or migrated (any 64-bit number).
_SCHEMA_LOCK = 0x72656675746501
_CONNECT_TIMEOUT_S = 10


class PgRow:
    """One row read from PostgreSQL: ``row["column"]`` or ``row[0]``, like `sqlite3.Row`."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                raise IndexError(f"no column {key!r}") from None
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


@lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    """``sql`` with ``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``); a ``?``
    inside a quoted string or identifier is left alone."""
    out, quote = [], ""
    for ch in sql:
        if quote:
            quote = "" if ch == quote else quote
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        else:
            out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
    return "".join(out)


class _PgConnection:
    """psycopg's connection seen as the store's `Connection`: ``?`` placeholders, `PgRow` rows."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        args = tuple(parameters)
        return self.conn.execute(_pyformat(sql) if args else sql, args or None)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any:
        cur = self.conn.cursor()
        rows = [tuple(p) for p in parameters]
        if rows:
            cur.executemany(_pyformat(sql), rows)
        return cur

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus  # deferred: psycopg is the optional postgres extra

        return bool(self.conn.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        self.conn.close()


def _row_factory(cursor: Any) -> Any:
    index = {col.name: i for i, col in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, index)


def _import_psycopg() -> Any:
    try:
        import psycopg  # deferred: the optional postgres extra, loaded only for a PostgreSQL store
    except ImportError:
        raise ConfigError("a PostgreSQL store (--store postgresql://...) needs psycopg: "
                          "pip install 'refute[postgres]'") from None
    return psycopg


class PostgresStore(Store):
    """A refute store in a PostgreSQL database; the same methods as the SQLite `Store`."""

    _dialect: ClassVar[str] = "postgresql"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        """Connect to the database ``url`` names and create or migrate its schema; ``read_only``
        refuses every write (and creates nothing)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise ConfigError(f"store {redact_url(url)}: not a postgresql:// URL")
        try:
            self._where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        except ValueError:  # a port that is not a number
            raise ConfigError(f"store {redact_url(url)}: the port is not a number; use "
                              "postgresql://user:password@host:5432/database") from None
        self._url = url
        self._password = parts.password or ""
        self.path = store_path(url)
        self.read_only = read_only
        psycopg = _import_psycopg()
        try:
            conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory,
                                   connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from None
        _load_numbers(conn)
        self._db = _PgConnection(conn)
        try:
            if read_only:
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            self._init_schema()
        except psycopg.Error as exc:
            conn.close()
            raise self._error(exc) from None
        except BaseException:
            conn.close()
            raise

    @property
    def location(self) -> str:
        return redact_url(self._url)

    # -- errors -------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _connect_error(self, exc: Exception) -> StoreError:
        text = self._redact(" ".join(str(exc).split()))
        if "password authentication failed" in text or "no password supplied" in text:
            why = f"PostgreSQL at {self._where} refused the login ({text}); check the user and password in the URL"
        elif "does not exist" in text:
            why = (f"PostgreSQL at {self._where} has no such database or role ({text}); create it "
                   "(createdb NAME) or fix the URL")
        else:
            why = f"cannot reach PostgreSQL at {self._where} ({text}); check the URL or start the server"
        return StoreError(f"store {self.location}: {why}")

    def _error(self, exc: Exception) -> StoreError:
        """What a psycopg failure while reading or writing means, and what to do about it."""
        from psycopg import OperationalError, errors  # deferred: the optional postgres extra

        text = self._redact(" ".join(str(exc).split()))
        if isinstance(exc, errors.ReadOnlySqlTransaction):
            why = "it is open read-only; open it without read_only to write"
        elif isinstance(exc, (errors.SerializationFailure, errors.DeadlockDetected)):
            why = f"a concurrent writer conflicted ({text}); try again"
        elif isinstance(exc, errors.DiskFull):
            why = f"the server's disk is full ({text}); free space and try again"
        elif isinstance(exc, OperationalError):
            why = f"lost the connection to PostgreSQL at {self._where} ({text}); check the server and try again"
        else:
            why = f"PostgreSQL failed ({text})"
        return StoreError(f"store {self.location}: {why}")

    # -- schema -------------------------------------------------------------------------------

    def _init_schema(self) -> None:
        if self.read_only:
            version = self._version()
            if version is None:
                raise StoreError(f"store {self.location}: read-only and not a refute store")
        else:
            with self._db.conn.transaction():  # one process at a time creates or migrates the schema
                self._db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
                version = self._version()
                if version is None:
                    self._db.execute(to_postgres(SCHEMA))
                    self._db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)",
                                     (str(SCHEMA_VERSION),))
                    version = SCHEMA_VERSION
                while version in MIGRATIONS and version < SCHEMA_VERSION:
                    self._db.execute(to_postgres(MIGRATIONS[version]))
                    self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version + 1),))
                    version += 1
                if version == SCHEMA_VERSION and not all(self._has_table(t) for t in tables(SCHEMA)):
                    self._db.execute(to_postgres(SCHEMA))  # tables added within this version
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"store {self.location}: schema version {version}, this refute reads version "
                f"{SCHEMA_VERSION}; use a matching refute version or another database"
            )

    def _version(self) -> int | None:
        if not self._has_table("meta"):
            return None
        rows = self._read("SELECT value FROM meta WHERE key='schema_version'")
        return None if not rows else int(rows[0]["value"])

    def _has_table(self, name: str) -> bool:
        return self._read("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0] is True

    def _distinct_list(self, column: str) -> str:
        return f"string_agg(DISTINCT {column}, ',')"

    def has_search_index(self) -> bool:
        """False: a PostgreSQL store has no full-text index; the viewer searches with LIKE."""
        return False

    # -- reads and transactions ---------------------------------------------------------------

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Row]:
        psycopg = _import_psycopg()
        try:
            return list(self._db.execute(sql, tuple(args)).fetchall())
        except psycopg.Error as exc:
            raise self._error(exc) from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; a psycopg failure inside it is rolled back and raised as `StoreError`."""
        if self.read_only:
            raise StoreError(f"store {self.location} is read-only; open it without read_only to write")
        psycopg = _import_psycopg()
        try:
            with self._db.conn.transaction():
                yield self._db
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._db.close()


def _load_numbers(conn: Any) -> None:
    """Read NUMERIC (what SUM of integers and AVG return) as int or float, as SQLite gives them, not Decimal."""
    from psycopg.adapt import Loader  # deferred: the optional postgres extra

    class NumberLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)

    conn.adapters.register_loader("numeric", NumberLoader)
