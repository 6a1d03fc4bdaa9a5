"""People's labels of a run's replies, and the queue they label them in.

`refute judge sample RUN` (without ``--output``) queues a seeded, stratified draw of a run's
replies; a person labels them in that order on the viewer's label page; `refute judge validate
--run RUN` then measures the run's refusal scorer or harm judge against the labels. A queue belongs
to a run and the scorer whose verdicts stratified the draw; each later draw is queued after the
earlier ones. A label is kept per run, sample and scorer: labelling a reply again replaces it.

`LabelMethods` holds the store's label methods; `Store` inherits them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, cast, get_args

from refute.errors import ConfigError
from refute.store._db import Connection, Row
from refute.store._records import HumanLabel, LabelRecord, QueueItem, RunRecord, ScorerLabel, utc_now

__all__ = ["HUMAN_LABELS", "LabelMethods"]

#: Every label a person can give a reply.
HUMAN_LABELS: tuple[str, ...] = get_args(HumanLabel)
_SCORER_LABELS: tuple[str, ...] = get_args(ScorerLabel)

_QUEUE = ("SELECT q.*, l.label, l.labeller, l.labelled_at FROM label_queue q LEFT JOIN labels l"
          " ON l.run_id = q.run_id AND l.sample_id = q.sample_id AND l.scorer = q.scorer WHERE q.run_id = ?")


class LabelMethods:
    """The label queue and people's labels: methods of `Store`."""

    if TYPE_CHECKING:  # provided by Store
        def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Row]: ...
        def transaction(self) -> AbstractContextManager[Connection]: ...
        def get_run(self, run_id: str) -> RunRecord: ...
        _dialect: ClassVar[str]

    def queue_labels(self, run_id: str, scorer: str, seed: int, items: Sequence[tuple[int, str]]) -> int:
        """Queue replies of a run for labelling: (sample id, the scorer's verdict: refusal or
        compliance for a refusal scorer, harmful or not_harmful for a harm judge) in the order
        given, after those queued already for the run and ``scorer``. A reply queued already keeps
        its place. Returns how many were added; one transaction."""
        run = self.get_run(run_id)
        if not scorer:
            raise ConfigError("a label queue belongs to a refusal scorer or a harm judge; name it (e.g. refusal)")
        for sample_id, said in items:
            if said not in _SCORER_LABELS:
                raise ConfigError(f"sample {sample_id}: the scorer's label {said!r} is not one of "
                                  f"{', '.join(_SCORER_LABELS)}")
        with self.transaction() as db:
            if self._dialect == "postgresql":  # one queuer per run at a time, as SQLite's write lock gives
                db.execute("SELECT id FROM runs WHERE id = ? FOR UPDATE", (run.id,))
            mine = {r[0] for r in db.execute("SELECT id FROM samples WHERE run_id = ?", (run.id,))}
            for sample_id, _ in items:
                if sample_id not in mine:
                    raise _not_of_run(db, run.id, sample_id)
            last = db.execute("SELECT MAX(position) FROM label_queue WHERE run_id = ? AND scorer = ?",
                              (run.id, scorer)).fetchone()[0]
            position, added, now = (-1 if last is None else last) + 1, 0, utc_now()
            for sample_id, said in items:
                cur = db.execute(
                    "INSERT INTO label_queue (run_id, scorer, sample_id, seed, position, scorer_label, added_at)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (run_id, scorer, sample_id) DO NOTHING",
                    (run.id, scorer, sample_id, seed, position + added, said, now))
                added += cur.rowcount
        return added

    def label_queue(self, run_id: str, scorer: str | None = None) -> list[QueueItem]:
        """The run's label queue (``scorer``'s only, when given) in labelling order, with the labels made."""
        sql, args = _QUEUE, [run_id]
        if scorer is not None:
            sql, args = sql + " AND q.scorer = ?", [run_id, scorer]
        return [_queue_item(r) for r in self._read(sql + " ORDER BY q.position, q.scorer", args)]

    def next_to_label(self, run_id: str, scorer: str) -> QueueItem | None:
        """The first reply of the run's queue for ``scorer`` that has no label yet; None when done."""
        rows = self._read(_QUEUE + " AND q.scorer = ? AND l.label IS NULL ORDER BY q.position LIMIT 1",
                          (run_id, scorer))
        return _queue_item(rows[0]) if rows else None

    def queue_progress(self, run_id: str, scorer: str) -> tuple[int, int]:
        """(replies queued, of them labelled) for the run and ``scorer``."""
        row = self._read("SELECT COUNT(*), COUNT(l.label) FROM label_queue q LEFT JOIN labels l ON"
                         " l.run_id = q.run_id AND l.sample_id = q.sample_id AND l.scorer = q.scorer"
                         " WHERE q.run_id = ? AND q.scorer = ?", (run_id, scorer))[0]
        return int(row[0]), int(row[1])

    def save_label(self, run_id: str, sample_id: int, scorer: str, label: str, labeller: str) -> LabelRecord:
        """Store a person's label of one reply of the run, replacing an earlier label of it for the
        same ``scorer`` ('' for a label made outside a queue); returns it as stored."""
        if label not in HUMAN_LABELS:
            raise ConfigError(f"unknown label {label!r}; use one of {', '.join(HUMAN_LABELS)}")
        if not labeller.strip():
            raise ConfigError("a label needs its labeller: give the person's name")
        run = self.get_run(run_id)
        record = LabelRecord(run_id=run.id, sample_id=sample_id, scorer=scorer, label=cast(HumanLabel, label),
                             labeller=labeller.strip(), labelled_at=utc_now())
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM samples WHERE id = ? AND run_id = ?", (sample_id, run.id)).fetchone() is None:
                raise _not_of_run(db, run.id, sample_id)
            db.execute(
                "INSERT INTO labels (run_id, sample_id, scorer, label, labeller, labelled_at) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (run_id, sample_id, scorer) DO UPDATE SET label = excluded.label,"
                " labeller = excluded.labeller, labelled_at = excluded.labelled_at",
                (record.run_id, record.sample_id, record.scorer, record.label, record.labeller, record.labelled_at))
        return record

    def labels(self, run_id: str, scorer: str | None = None) -> list[LabelRecord]:
        """People's labels of the run's replies (those made for ``scorer``, when given), by sample."""
        sql, args = "SELECT * FROM labels WHERE run_id = ?", [run_id]
        if scorer is not None:
            sql, args = sql + " AND scorer = ?", [run_id, scorer]
        return [_label_record(r) for r in self._read(sql + " ORDER BY sample_id, scorer", args)]

    def labelled_scores(self, run_id: str, scorer: str) -> list[tuple[LabelRecord, float | None]]:
        """Each label made for ``scorer`` with that scorer's stored score of the reply (None when
        the reply has none), by sample: what an agreement count needs, in one query."""
        rows = self._read("SELECT l.*, s.value FROM labels l LEFT JOIN scores s ON s.sample_id = l.sample_id"
                          " AND s.scorer = l.scorer WHERE l.run_id = ? AND l.scorer = ? ORDER BY l.sample_id",
                          (run_id, scorer))
        return [(_label_record(r), r["value"]) for r in rows]

    def delete_label(self, run_id: str, sample_id: int, scorer: str) -> bool:
        """Remove a person's label of one reply (undo); returns whether there was one."""
        with self.transaction() as db:
            cur = db.execute("DELETE FROM labels WHERE run_id = ? AND sample_id = ? AND scorer = ?",
                             (run_id, sample_id, scorer))
        return cur.rowcount > 0


def _not_of_run(db: Connection, run_id: str, sample_id: int) -> ConfigError:
    row = db.execute("SELECT run_id FROM samples WHERE id = ?", (sample_id,)).fetchone()
    where = f"it is a reply of run {row[0]}" if row else "no stored sample has that id"
    return ConfigError(f"sample {sample_id} is not a reply of run {run_id} ({where}); "
                       "label only the replies of the run you name")


def _queue_item(row: Row) -> QueueItem:
    return QueueItem(run_id=row["run_id"], sample_id=row["sample_id"], scorer=row["scorer"], seed=row["seed"],
                     position=row["position"], scorer_label=row["scorer_label"], label=row["label"],
                     labeller=row["labeller"], labelled_at=row["labelled_at"])


def _label_record(row: Row) -> LabelRecord:
    return LabelRecord(run_id=row["run_id"], sample_id=row["sample_id"], scorer=row["scorer"],
                       label=row["label"], labeller=row["labeller"], labelled_at=row["labelled_at"])
