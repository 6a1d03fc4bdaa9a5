"""The SQLite store: WAL mode, one transaction per sample, so a killed run loses nothing."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

from refute._paths import store_path
from refute.errors import RunNotFoundError, StoreError
from refute.models._base import Completion
from refute.store._records import RunRecord, RunStatus, SampleRecord, ScoreRecord
from refute.store._schema import SCHEMA, SCHEMA_VERSION

__all__ = ["Store", "open_store", "utc_now"]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class Store:
    """A refute store on disk. Safe to open from several processes (SQLite WAL)."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable refute store ({exc})") from exc

    def _init_schema(self) -> None:
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row["value"]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {row['value']}, this refute reads version "
                f"{SCHEMA_VERSION}; use a matching refute version or a new --store path"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, *, kind: str, name: str | None, model_spec: str, model_revision: str | None,
                   model: dict[str, Any], config: dict[str, Any], versions: dict[str, str],
                   dataset_name: str, dataset_hash: str, n_planned: int) -> RunRecord:
        run = RunRecord(
            id=uuid.uuid4().hex[:12], kind=kind, name=name, status="running", created_at=utc_now(),
            model_spec=model_spec, model_revision=model_revision, model=model, config=config,
            versions=versions, dataset_name=dataset_name, dataset_hash=dataset_hash,
            n_planned=n_planned,
        )
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, kind, name, status, created_at, model_spec, model_revision,"
                " model_json, config_json, versions_json, dataset_name, dataset_hash, n_planned)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.id, kind, name, run.status, run.created_at, model_spec, model_revision,
                 _dumps(model), _dumps(config), _dumps(versions), dataset_name, dataset_hash,
                 n_planned),
            )
        return run

    def set_status(self, run_id: str, status: RunStatus) -> None:
        finished = utc_now() if status == "completed" else None
        with self.transaction() as db:
            db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?", (status, finished, run_id))

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix (at least 4 characters)."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE id = ? OR (length(?) >= 4 AND id LIKE ? || '%')",
            (run_id, run_id, run_id),
        ).fetchall()
        if not rows:
            raise RunNotFoundError(
                f"no run '{run_id}' in store {self.path}; `refute runs list` shows the runs there"
            )
        if len(rows) > 1:
            ids = ", ".join(r["id"] for r in rows)
            raise RunNotFoundError(f"run id prefix '{run_id}' is ambiguous ({ids}); give more characters")
        return _run_from_row(rows[0])

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY created_at DESC"
        rows = self._db.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ()).fetchall()
        return [_run_from_row(r) for r in rows]

    def sample_counts(self, run_id: str) -> tuple[int, int]:
        """(completed samples, failed samples) of a run."""
        row = self._db.execute(
            "SELECT SUM(error IS NULL) AS ok, SUM(error IS NOT NULL) AS bad FROM samples WHERE run_id=?",
            (run_id,),
        ).fetchone()
        return int(row["ok"] or 0), int(row["bad"] or 0)

    # -- samples and scores -------------------------------------------------------------------

    def completed_keys(self, run_id: str) -> set[tuple[str, int, str]]:
        """(prompt id, epoch, chain) of every sample that completed without error."""
        rows = self._db.execute(
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
                " cached, error, metadata_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (run_id, prompt_id, epoch, transform_chain) DO UPDATE SET"
                " seed=excluded.seed, messages_json=excluded.messages_json,"
                " completion=excluded.completion, input_tokens=excluded.input_tokens,"
                " output_tokens=excluded.output_tokens, latency_s=excluded.latency_s,"
                " finish_reason=excluded.finish_reason, cached=excluded.cached,"
                " error=excluded.error, metadata_json=excluded.metadata_json,"
                " created_at=excluded.created_at"
                " WHERE samples.error IS NOT NULL"
                " RETURNING id",
                (sample.run_id, sample.prompt_id, sample.category, sample.epoch,
                 sample.transform_chain, sample.seed, _dumps(sample.messages), sample.completion,
                 sample.input_tokens, sample.output_tokens, sample.latency_s, sample.finish_reason,
                 int(sample.cached), sample.error, _dumps(sample.metadata), utc_now()),
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
    def _insert_scores(db: sqlite3.Connection, sample_id: int, run_id: str,
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
        rows = self._db.execute(sql + " ORDER BY id", (run_id,)).fetchall()
        return [_sample_from_row(r) for r in rows]

    def scores(self, run_id: str, scorer: str | None = None) -> list[ScoreRecord]:
        sql, args = "SELECT * FROM scores WHERE run_id=?", [run_id]
        if scorer is not None:
            sql, args = sql + " AND scorer=?", [run_id, scorer]
        rows = self._db.execute(sql + " ORDER BY sample_id", args).fetchall()
        return [
            ScoreRecord(sample_id=r["sample_id"], run_id=r["run_id"], scorer=r["scorer"],
                        scorer_version=r["scorer_version"], value=r["value"], label=r["label"],
                        explanation=r["explanation"], metadata=json.loads(r["metadata_json"]))
            for r in rows
        ]

    def scorers_of(self, run_id: str) -> dict[str, str]:
        """Scorer name -> version(s) that labelled this run."""
        rows = self._db.execute(
            "SELECT scorer, group_concat(DISTINCT scorer_version) AS v FROM scores WHERE run_id=?"
            " GROUP BY scorer", (run_id,)
        ).fetchall()
        return {r["scorer"]: r["v"] for r in rows}

    # -- request cache ------------------------------------------------------------------------

    def cache_get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT * FROM cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return Completion(text=row["completion"], input_tokens=row["input_tokens"],
                          output_tokens=row["output_tokens"], latency_s=row["latency_s"],
                          finish_reason=row["finish_reason"])

    def cache_put(self, key: str, completion: Completion) -> None:
        if not completion.ok:
            return  # failures are never cached
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, completion, input_tokens, output_tokens,"
                " latency_s, finish_reason, created_at) VALUES (?,?,?,?,?,?,?)",
                (key, completion.text, completion.input_tokens, completion.output_tokens,
                 completion.latency_s, completion.finish_reason, utc_now()),
            )


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], kind=row["kind"], name=row["name"], status=row["status"],
        created_at=row["created_at"], finished_at=row["finished_at"], model_spec=row["model_spec"],
        model_revision=row["model_revision"], model=json.loads(row["model_json"]),
        config=json.loads(row["config_json"]), versions=json.loads(row["versions_json"]),
        dataset_name=row["dataset_name"], dataset_hash=row["dataset_hash"], n_planned=row["n_planned"],
    )


def _sample_from_row(row: sqlite3.Row) -> SampleRecord:
    return SampleRecord(
        id=row["id"], run_id=row["run_id"], prompt_id=row["prompt_id"], category=row["category"],
        epoch=row["epoch"], transform_chain=row["transform_chain"], seed=row["seed"],
        messages=json.loads(row["messages_json"]), completion=row["completion"],
        input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
        latency_s=row["latency_s"], finish_reason=row["finish_reason"], cached=bool(row["cached"]),
        error=row["error"], metadata=json.loads(row["metadata_json"]), created_at=row["created_at"],
    )


def open_store(path: str | PathLike[str] | None = None) -> Store:
    """Open the store at ``path``, ``$REFUTE_STORE`` or ``.refute/refute.db``."""
    return Store(store_path(path))
