"""Copy runs from one store to another (`refute store copy`): SQLite to PostgreSQL and back, or
between two SQLite files.

A run travels with its samples, scores, own calibrations, people's labels and label queue, in one
transaction per run. Sample ids are the destination's own: scores, labels and queue entries are
re-pointed at the new ids. A run's parent (a capability control's attack run) travels with it and
is copied first. A run already in the destination is skipped: reported as already there when its
counts match, as different otherwise (``replace=True`` then overwrites it). Findings, the request
cache and `refute serve`'s exchange log are not copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from refute.errors import ConfigError
from refute.store._db import Connection, Row
from refute.store._store import Store

__all__ = ["CopyReport", "copy_runs"]

#: Tables holding a run's rows besides ``runs`` and ``samples``, with whether they name a sample.
_CHILD_TABLES = (("scores", True), ("labels", True), ("label_queue", True), ("calibrations", False))


@dataclass
class CopyReport:
    """What `copy_runs` did: the runs copied, replaced and skipped (with why), and the rows copied."""

    copied: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    samples: int = 0
    scores: int = 0
    labels: int = 0

    def summary(self) -> str:
        """One line: runs copied / replaced / skipped and the rows copied."""
        return (f"{len(self.copied)} run(s) copied, {len(self.replaced)} replaced, {len(self.skipped)} skipped; "
                f"{self.samples} sample(s), {self.scores} score(s), {self.labels} label(s) copied")


def _counts(store: Store, run_id: str) -> dict[str, int | str]:
    """How many rows of each table belong to the run, how many of its samples failed, and its status."""
    counts: dict[str, int | str] = {
        table: int(store._read(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,))[0][0])
        for table in ("samples", *(t for t, _ in _CHILD_TABLES))}
    counts["failed"] = int(store._read("SELECT COUNT(*) FROM samples WHERE run_id = ? AND error IS NOT NULL",
                                       (run_id,))[0][0])
    counts["status"] = str(store._read("SELECT status FROM runs WHERE id = ?", (run_id,))[0][0])
    return counts


def _selection(src: Store, run_ids: Sequence[str] | None) -> list[Row]:
    """The runs' rows (all, or the named ones and their ancestors), parents before children."""
    rows = {r["id"]: r for r in src._read("SELECT * FROM runs ORDER BY created_at, id")}
    if run_ids is None:
        wanted = list(rows)
    else:
        wanted = []
        for given in run_ids:
            link: str | None = src.get_run(given).id  # a prefix, or a clear error naming the store
            while link is not None and link not in wanted:
                wanted.append(link)
                link = _parent(rows, link, src)
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(run_id: str) -> None:
        if run_id in seen:
            return
        seen.add(run_id)
        parent = _parent(rows, run_id, src)
        if parent is not None and parent in wanted:
            visit(parent)
        ordered.append(run_id)

    for run_id in sorted(wanted, key=lambda r: (rows[r]["created_at"], r)):
        visit(run_id)
    return [rows[r] for r in ordered]


def _parent(rows: dict[str, Row], run_id: str, src: Store) -> str | None:
    parent = rows[run_id]["parent_id"]
    if parent is not None and parent not in rows:
        raise ConfigError(f"store copy: run {run_id} in {src.location} links to parent run {parent}, which is not "
                          "there; copy the runs without it (--run ID for each other run)")
    return parent


def _columns(row: Row) -> list[str]:
    """The row's column names (iterating a row gives its values, not its names)."""
    return row.keys()


def _insert(db: Connection, table: str, row: Row, skip: tuple[str, ...] = (), returning: str = "",
            override: dict[str, object] | None = None) -> object:
    """Insert ``row`` (less the ``skip`` columns, with the ``override`` values) into ``table``."""
    names = [k for k in _columns(row) if k not in skip]
    values = [(override or {}).get(k, row[k]) for k in names]
    sql = (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
           + (f" RETURNING {returning}" if returning else ""))
    cur = db.execute(sql, values)
    return cur.fetchone()[0] if returning else None


def copy_runs(src: Store, dst: Store, run_ids: Sequence[str] | None = None, *, replace: bool = False) -> CopyReport:
    """Copy runs (all of ``src``'s, or ``run_ids`` and their parents) into ``dst``; one transaction per run.

    A run whose id ``dst`` has already is skipped, unless ``replace``: then its rows in ``dst`` are
    replaced by ``src``'s."""
    if src.location == dst.location:
        raise ConfigError(f"store copy: the source and destination are the same store ({src.location})")
    report = CopyReport()
    for run in _selection(src, run_ids):
        run_id = run["id"]
        have = _counts(src, run_id)
        there = dst._read("SELECT id FROM runs WHERE id = ?", (run_id,))
        if there and not replace:
            theirs = _counts(dst, run_id)
            if theirs == have:
                report.skipped.append((run_id, f"already in {dst.location} with the same {have['samples']} samples"))
                continue
            if not replace:
                report.skipped.append((run_id, f"in {dst.location} already, different ({theirs['samples']} samples "
                                               f"there, {have['samples']} here); --replace overwrites it"))
                continue
        samples = src._read("SELECT * FROM samples WHERE run_id = ? ORDER BY id", (run_id,))
        children = {table: src._read(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))
                    for table, _ in _CHILD_TABLES}
        with dst.transaction() as db:
            if there:  # replace: the run's own rows go, the run row is updated (its children keep their link)
                for table in ("scores", "labels", "label_queue", "calibrations", "samples"):
                    db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                names = [k for k in _columns(run) if k != "id"]
                db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in names)} WHERE id = ?",
                           [*(run[k] for k in names), run_id])
            else:
                _insert(db, "runs", run)
            new_id = {s["id"]: _insert(db, "samples", s, skip=("id",), returning="id") for s in samples}
            for table, names_sample in _CHILD_TABLES:
                for row in children[table]:
                    mapped: dict[str, object] = {"sample_id": new_id[row["sample_id"]]} if names_sample else {}
                    _insert(db, table, row, skip=("id",) if table == "scores" else (), override=mapped)
        (report.replaced if there else report.copied).append(run_id)
        report.samples += len(samples)
        report.scores += len(children["scores"])
        report.labels += len(children["labels"])
    return report
