"""The SQLite store: WAL mode, one transaction per sample, so a killed run loses nothing.

`Store` is the SQLite store and the one store interface; `refute.store._postgres.PostgresStore`
is the same store in a PostgreSQL database (``--store postgresql://...``), and `open_store` opens
either from what ``--store`` or ``$REFUTE_STORE`` says.

Every SQLite failure (a lock held longer than the timeout, a full disk, a read-only file) becomes
a `StoreError` that says what happened and what to do; no ``sqlite3`` exception escapes. A store
that cannot be written (a read-only file or directory) is opened read-only: it can be listed,
shown and exported, and writing to it fails with a clear error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

from refute._paths import is_store_url, redact_url, store_location
from refute.errors import RunNotFoundError, StoreError
from refute.store._db import Connection, Row
from refute.store._exchanges import ExchangeMethods
from refute.store._findings import FindingMethods
from refute.store._labels import LabelMethods
from refute.store._process import is_alive, this_process
from refute.store._records import (
    CachedReply,
    CalibrationRecord,
    RunRecord,
    RunStatus,
    SampleRecord,
    ScoreRecord,
    utc_now,
)
from refute.store._schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, SEARCH_INDEX

__all__ = ["Store", "open_store", "utc_now"]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


_LOCK_TIMEOUT_S = 30.0


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """What a SQLite failure means for the user, and what to do about it."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        why = (f"another process held the store locked for more than {_LOCK_TIMEOUT_S:g} s; "
               "wait for it (or stop it) and try again")
    elif "full" in text:
        why = "the disk holding it is full; free space and try again"
    elif "readonly" in text or "read-only" in text:
        why = "it cannot be written (read-only file or directory); use --store with a writable path"
    else:
        why = f"SQLite failed ({text})"
    return StoreError(f"store {path}: {why}")


class Store(LabelMethods, FindingMethods, ExchangeMethods):
    """A refute store on disk. Safe to open from several processes (SQLite WAL).

    ``path`` is the store's local path: its folder holds the files written beside the store
    (reports, studies, attack folders). ``location`` is what to show a user: the path here, the
    URL (password hidden) for a PostgreSQL store.

    Its label queue and people's labels: `LabelMethods` (``queue_labels``, ``label_queue``,
    ``next_to_label``, ``queue_progress``, ``save_label``, ``labels``, ``labelled_scores``,
    ``delete_label``). The monitoring log of `refute serve`: `ExchangeMethods` (``add_exchange``,
    ``add_exchanges``, ``recent_exchanges``, ``exchange_layer_stats``)."""

    def __init__(self, path: str | PathLike[str], *, read_only: bool = False) -> None:
        """Open (or create) the store at ``path``; ``read_only`` opens an existing store for
        reading only, as happens anyway when the file or its directory cannot be written."""
        if is_store_url(path):
            raise StoreError(f"Store() opens a SQLite file, not {redact_url(str(path))}; open a PostgreSQL "
                             "store with open_store(url)")
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store {self.path} is a directory; give a file path such as "
                             f"{self.path / 'refute.db'}")
        if read_only and not self.path.is_file():
            raise StoreError(f"no store at {self.path}; check --store or $REFUTE_STORE")
        self.read_only = read_only or (self.path.exists() and not _writable(self.path))
        try:
            if self.read_only:
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                           timeout=_LOCK_TIMEOUT_S, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT_S, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._init_schema()
        except OSError as exc:
            raise StoreError(f"store {self.path}: cannot create it ({exc.strerror or exc}); "
                             "use --store with a writable path") from None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise _store_error(self.path, exc) from None
            raise StoreError(f"{self.path}: not a usable refute store ({exc})") from None

    def _init_schema(self) -> None:
        if self.read_only:
            version = self._version()
            if version is None:
                raise StoreError(f"{self.path}: read-only and not a refute store")
        else:
            # an older store is migrated before the schema's CREATEs run: they name columns
            # (runs.parent_id) that only the migration adds
            version = self._version()
            if version is None:
                self._db.executescript(SCHEMA)
                self._db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
                version = SCHEMA_VERSION
            while version in MIGRATIONS and version < SCHEMA_VERSION:
                self._db.executescript(
                    "BEGIN IMMEDIATE;" + MIGRATIONS[version]
                    + f"UPDATE meta SET value='{version + 1}' WHERE key='schema_version'; COMMIT;"
                )
                version += 1
            if version == SCHEMA_VERSION:  # tables added within this version (all IF NOT EXISTS)
                self._db.executescript(SCHEMA)
                self._ensure_search_index()
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version}, this refute reads version "
                f"{SCHEMA_VERSION}; use a matching refute version or a new --store path"
            )

    def _ensure_search_index(self) -> None:
        """Create the samples' full-text index when it is missing (and SQLite has FTS5)."""
        if self.has_search_index():
            return
        try:
            self._db.executescript("BEGIN IMMEDIATE;" + SEARCH_INDEX + "COMMIT;")
        except sqlite3.OperationalError as exc:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            if "fts5" not in str(exc):
                raise

    #: The SQL dialect of the store's database: "sqlite" or "postgresql".
    _dialect: ClassVar[str] = "sqlite"
    #: The connection: a `sqlite3.Connection` here (a psycopg wrapper in PostgresStore).
    _db: Any

    @property
    def location(self) -> str:
        """Where the store is, as a user should see it: the file, or the URL without its password."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _has_table(self, name: str) -> bool:
        return bool(self._read("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)))

    def _distinct_list(self, column: str) -> str:
        """SQL aggregating the distinct values of ``column`` as one comma-separated text."""
        return f"group_concat(DISTINCT {column})"

    def has_search_index(self) -> bool:
        """Whether the samples' full-text index (``samples_fts``, FTS5) exists in this store."""
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'samples_fts'").fetchone() is not None

    def _version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None else int(row["value"])

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Row]:
        try:
            return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[Row]:
        """Rows of one read-only SQL statement with bound ``args``, for readers that need their
        own joins (the viewer's filtered, paged samples); a SQLite failure is a `StoreError`."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise StoreError(f"store {self.location}: query() reads only (SELECT or WITH), got {sql.split()[0]!r}")
        return self._read(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; a SQLite failure inside it is rolled back and raised as
        `StoreError`."""
        if self.read_only:
            raise StoreError(f"store {self.path} is read-only; use --store with a writable path")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                with suppress(sqlite3.Error):  # the transaction is gone already (SQLite rolls back on some errors)
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _store_error(self.path, exc) from None
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, *, kind: str, name: str | None, model_spec: str, model_revision: str | None,
                   model: dict[str, Any], config: dict[str, Any], versions: dict[str, str],
                   dataset_name: str, dataset_hash: str, n_planned: int,
                   parent_id: str | None = None, role: str | None = None) -> RunRecord:
        """A new run, "running" in this process; ``parent_id`` and ``role`` link it to the run it
        belongs to (``role="capability"`` for an attack run's capability control)."""
        if parent_id is not None:
            self.get_run(parent_id)  # a link to nothing is an error, not a silent orphan
        me = this_process()
        run = RunRecord(
            id=uuid.uuid4().hex[:12], kind=kind, name=name, status="running", created_at=utc_now(),
            model_spec=model_spec, model_revision=model_revision, model=model, config=config,
            versions=versions, dataset_name=dataset_name, dataset_hash=dataset_hash,
            n_planned=n_planned, pid=me.pid, host=me.host, parent_id=parent_id, role=role,
        )
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, kind, name, status, created_at, model_spec, model_revision,"
                " model_json, config_json, versions_json, dataset_name, dataset_hash, n_planned,"
                " pid, host, proc_start, parent_id, role) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.id, kind, name, run.status, run.created_at, model_spec, model_revision,
                 _dumps(model), _dumps(config), _dumps(versions), dataset_name, dataset_hash,
                 n_planned, me.pid, me.host, me.start, parent_id, role),
            )
        return run

    def set_status(self, run_id: str, status: RunStatus) -> None:
        """Record a run's status; "running" also records this process as the one driving it."""
        finished = utc_now() if status in ("completed", "completed_with_errors", "failed") else None
        with self.transaction() as db:
            if status == "running":
                me = this_process()
                db.execute("UPDATE runs SET status=?, finished_at=NULL, pid=?, host=?, proc_start=?"
                           " WHERE id=?", (status, me.pid, me.host, me.start, run_id))
            else:
                db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?",
                           (status, finished, run_id))

    def set_model(self, run_id: str, model: dict[str, Any]) -> None:
        """Replace a run's backend details (a resumed run whose server moved records the new one)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET model_json=? WHERE id=?", (_dumps(model), run_id))

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix (at least 4 characters)."""
        rows = self._read(
            "SELECT * FROM runs WHERE id = ? OR (length(?) >= 4 AND substr(id, 1, length(?)) = ?)",
            (run_id, run_id, run_id, run_id),
        )
        if not rows:
            raise RunNotFoundError(
                f"no run '{run_id}' in store {self.location}; `refute runs list` shows the runs there"
            )
        if len(rows) > 1:
            ids = ", ".join(r["id"] for r in rows)
            raise RunNotFoundError(f"run id prefix '{run_id}' is ambiguous ({ids}); give more characters")
        return _run_from_row(rows[0])

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        if limit is not None and limit < 1:
            raise StoreError(f"list_runs: limit must be at least 1, got {limit}")
        sql = "SELECT * FROM runs ORDER BY created_at DESC, id DESC"  # id: the same order on every backend
        rows = self._read(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [_run_from_row(r) for r in rows]

    def children(self, run_id: str, role: str | None = None) -> list[RunRecord]:
        """The runs linked to ``run_id`` as their parent (with ``role``, when given), oldest first."""
        sql, args = "SELECT * FROM runs WHERE parent_id=?", [run_id]
        if role is not None:
            sql, args = sql + " AND role=?", [run_id, role]
        return [_run_from_row(r) for r in self._read(sql + " ORDER BY created_at, id", args)]

    def sample_counts(self, run_id: str) -> tuple[int, int]:
        """(completed samples, failed samples) of a run."""
        row = self._read(
            "SELECT SUM(CASE WHEN error IS NULL THEN 1 ELSE 0 END) AS ok,"
            " SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS bad FROM samples WHERE run_id=?",
            (run_id,),
        )[0]
        return int(row["ok"] or 0), int(row["bad"] or 0)

    # -- samples and scores -------------------------------------------------------------------

    def completed_keys(self, run_id: str) -> set[tuple[str, int, str]]:
        """(prompt id, epoch, chain) of every sample that completed without error."""
        rows = self._read(
            "SELECT prompt_id, epoch, transform_chain FROM samples WHERE run_id=? AND error IS NULL",
            (run_id,),
        )
        return {(r[0], r[1], r[2]) for r in rows}

    def record_sample(self, sample: SampleRecord, scores: Iterable[ScoreRecord] = ()) -> int:
        """Commit one sample and its scores in one transaction; a failed earlier try is replaced."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO samples (run_id, prompt_id, category, epoch, transform_chain, seed,"
                " messages_json, completion, input_tokens, output_tokens, latency_s, finish_reason,"
                " cached, error, metadata_json, created_at, source, truncated)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (run_id, prompt_id, epoch, transform_chain) DO UPDATE SET"
                " seed=excluded.seed, messages_json=excluded.messages_json,"
                " completion=excluded.completion, input_tokens=excluded.input_tokens,"
                " output_tokens=excluded.output_tokens, latency_s=excluded.latency_s,"
                " finish_reason=excluded.finish_reason, cached=excluded.cached,"
                " error=excluded.error, metadata_json=excluded.metadata_json,"
                " created_at=excluded.created_at, source=excluded.source,"
                " truncated=excluded.truncated"
                " WHERE samples.error IS NOT NULL"
                " RETURNING id",
                (sample.run_id, sample.prompt_id, sample.category, sample.epoch,
                 sample.transform_chain, sample.seed, _dumps(sample.messages), sample.completion,
                 sample.input_tokens, sample.output_tokens, sample.latency_s, sample.finish_reason,
                 int(sample.cached), sample.error, _dumps(sample.metadata), utc_now(),
                 sample.source, int(sample.truncated)),
            )
            row = cur.fetchone()
            if row is None:
                raise StoreError(
                    f"run {sample.run_id}: sample {sample.prompt_id} epoch {sample.epoch} "
                    f"chain {sample.transform_chain} is already completed; refusing to overwrite it"
                )
            sample_id = int(row[0])
            self._insert_scores(db, sample_id, sample.run_id, scores)
        return sample_id

    def record_scores(self, run_id: str, scores: Iterable[ScoreRecord]) -> None:
        """Add or replace scores of stored samples (re-scoring needs no new generation)."""
        with self.transaction() as db:
            for score in scores:
                if score.sample_id is None:
                    raise StoreError("record_scores needs ScoreRecord.sample_id")
                self._insert_scores(db, score.sample_id, run_id, [score])

    @staticmethod
    def _insert_scores(db: Connection, sample_id: int, run_id: str,
                       scores: Iterable[ScoreRecord]) -> None:
        now = utc_now()
        db.executemany(
            "INSERT INTO scores (sample_id, run_id, scorer, scorer_version, value, label,"
            " explanation, metadata_json, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (sample_id, scorer) DO UPDATE SET scorer_version=excluded.scorer_version,"
            " value=excluded.value, label=excluded.label, explanation=excluded.explanation,"
            " metadata_json=excluded.metadata_json, created_at=excluded.created_at",
            [(sample_id, run_id, s.scorer, s.scorer_version, s.value, s.label, s.explanation,
              _dumps(s.metadata), now) for s in scores],
        )

    def samples(self, run_id: str, *, include_errors: bool = True) -> list[SampleRecord]:
        sql = "SELECT * FROM samples WHERE run_id=?" + ("" if include_errors else " AND error IS NULL")
        rows = self._read(sql + " ORDER BY id", (run_id,))
        return [_sample_from_row(r) for r in rows]

    def scores(self, run_id: str, scorer: str | None = None) -> list[ScoreRecord]:
        sql, args = "SELECT * FROM scores WHERE run_id=?", [run_id]
        if scorer is not None:
            sql, args = sql + " AND scorer=?", [run_id, scorer]
        rows = self._read(sql + " ORDER BY sample_id", args)
        return [
            ScoreRecord(sample_id=r["sample_id"], run_id=r["run_id"], scorer=r["scorer"],
                        scorer_version=r["scorer_version"], value=r["value"], label=r["label"],
                        explanation=r["explanation"], metadata=json.loads(r["metadata_json"]))
            for r in rows
        ]

    def scorers_of(self, run_id: str) -> dict[str, str]:
        """Scorer name -> version(s) that labelled this run."""
        rows = self._read(
            f"SELECT scorer, {self._distinct_list('scorer_version')} AS v FROM scores WHERE run_id=?"
            " GROUP BY scorer", (run_id,)
        )
        return {r["scorer"]: r["v"] for r in rows}

    # -- calibrations -------------------------------------------------------------------------

    def save_calibration(self, cal: CalibrationRecord) -> CalibrationRecord:
        """Store a run's own calibration for one scorer, replacing an earlier one; returns it as
        stored (with its time)."""
        self.get_run(cal.run_id)  # a calibration of no run is an error, not a silent orphan
        stored = cal.model_copy(update={"created_at": utc_now()})
        with self.transaction() as db:
            db.execute(
                "INSERT INTO calibrations (run_id, scorer, scorer_version, n_labels,"
                " true_pos, false_neg, true_neg, false_pos, labels_path, labels_sha256, detail_json,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, scorer) DO UPDATE SET"
                " scorer_version=excluded.scorer_version, n_labels=excluded.n_labels,"
                " true_pos=excluded.true_pos, false_neg=excluded.false_neg, true_neg=excluded.true_neg,"
                " false_pos=excluded.false_pos, labels_path=excluded.labels_path,"
                " labels_sha256=excluded.labels_sha256, detail_json=excluded.detail_json,"
                " created_at=excluded.created_at",
                (stored.run_id, stored.scorer, stored.scorer_version, stored.n_labels,
                 *stored.sensitivity_counts, *stored.specificity_counts, stored.labels_path,
                 stored.labels_sha256, _dumps(stored.detail), stored.created_at),
            )
        return stored

    def calibrations(self, run_id: str, scorer: str | None = None) -> list[CalibrationRecord]:
        """The run's own calibrations (of ``scorer`` only, when given), by scorer name."""
        if self.read_only and not self._has_table("calibrations"):
            return []  # a store written before calibrations were kept, opened read-only
        sql, args = "SELECT * FROM calibrations WHERE run_id=?", [run_id]
        if scorer is not None:
            sql, args = sql + " AND scorer=?", [run_id, scorer]
        return [
            CalibrationRecord(run_id=r["run_id"], scorer=r["scorer"], scorer_version=r["scorer_version"],
                              n_labels=r["n_labels"], sensitivity_counts=(r["true_pos"], r["false_neg"]),
                              specificity_counts=(r["true_neg"], r["false_pos"]), labels_path=r["labels_path"],
                              labels_sha256=r["labels_sha256"], detail=json.loads(r["detail_json"]),
                              created_at=r["created_at"])
            for r in self._read(sql + " ORDER BY scorer", args)
        ]

    def calibration(self, run_id: str, scorer: str) -> CalibrationRecord | None:
        """The run's own calibration of ``scorer``, or None when its replies were never labelled."""
        found = self.calibrations(run_id, scorer)
        return found[0] if found else None

    # -- request cache ------------------------------------------------------------------------

    def cache_get(self, key: str) -> CachedReply | None:
        """The reply stored under ``key`` (the engine's hash of everything that can change it)."""
        rows = self._read("SELECT * FROM cache WHERE key=?", (key,))
        if not rows:
            return None
        row = rows[0]
        return CachedReply(text=row["completion"], input_tokens=row["input_tokens"],
                           output_tokens=row["output_tokens"], latency_s=row["latency_s"],
                           finish_reason=row["finish_reason"])

    def cache_put(self, key: str, reply: CachedReply) -> None:
        """Store a successful reply under ``key`` (the caller never caches a failure)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO cache (key, completion, input_tokens, output_tokens,"
                " latency_s, finish_reason, created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET"
                " completion=excluded.completion, input_tokens=excluded.input_tokens,"
                " output_tokens=excluded.output_tokens, latency_s=excluded.latency_s,"
                " finish_reason=excluded.finish_reason, created_at=excluded.created_at",
                (key, reply.text, reply.input_tokens, reply.output_tokens,
                 reply.latency_s, reply.finish_reason, utc_now()),
            )


def _writable(path: Path) -> bool:
    """Whether SQLite can write the store: the file and its directory (for the WAL files)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _run_from_row(row: Row) -> RunRecord:
    status = row["status"]
    if status == "running" and not is_alive(row["pid"], row["host"], row["proc_start"]):
        status = "interrupted"  # its process is gone: killed, or crashed
    return RunRecord(
        id=row["id"], kind=row["kind"], name=row["name"], status=status,
        created_at=row["created_at"], finished_at=row["finished_at"], model_spec=row["model_spec"],
        model_revision=row["model_revision"], model=json.loads(row["model_json"]),
        config=json.loads(row["config_json"]), versions=json.loads(row["versions_json"]),
        dataset_name=row["dataset_name"], dataset_hash=row["dataset_hash"], n_planned=row["n_planned"],
        pid=row["pid"], host=row["host"], parent_id=row["parent_id"], role=row["role"],
    )


def _sample_from_row(row: Row) -> SampleRecord:
    return SampleRecord(
        id=row["id"], run_id=row["run_id"], prompt_id=row["prompt_id"], category=row["category"],
        epoch=row["epoch"], transform_chain=row["transform_chain"], seed=row["seed"],
        messages=json.loads(row["messages_json"]), completion=row["completion"],
        input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
        latency_s=row["latency_s"], finish_reason=row["finish_reason"], cached=bool(row["cached"]),
        error=row["error"], metadata=json.loads(row["metadata_json"]), created_at=row["created_at"],
        source=row["source"], truncated=bool(row["truncated"]),
    )


def open_store(path: str | PathLike[str] | None = None, *, read_only: bool = False) -> Store:
    """Open the store at ``path``, ``$REFUTE_STORE`` or ``.refute/refute.db``: a SQLite file, or a
    PostgreSQL database for a ``postgresql://`` (or ``postgres://``) URL."""
    location = store_location(path)
    if isinstance(location, str):
        from refute.store._postgres import PostgresStore  # deferred: it subclasses Store (a circular import)

        return PostgresStore(location, read_only=read_only)
    return Store(location, read_only=read_only)
