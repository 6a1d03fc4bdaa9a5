"""Findings in the store (`refute finding`): the finding as measured, its reproduction recipe (kept
apart: only the vendor report reads it) and its event log. All three are append-only: no method
updates or deletes them, and triggers in the schema refuse it.

`FindingMethods` holds the store's finding methods; `Store` inherits them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from refute.errors import FindingNotFoundError
from refute.store._db import Connection, Row
from refute.store._records import FindingEvent, FindingEventKind, FindingRecord, RunRecord, utc_now

__all__ = ["FindingMethods"]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class FindingMethods:
    """Findings, their recipes and event logs: methods of `Store`."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def location(self) -> str: ...

        def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Row]: ...
        def transaction(self) -> AbstractContextManager[Connection]: ...
        def get_run(self, run_id: str) -> RunRecord: ...

    def add_finding(self, finding: FindingRecord, recipe: dict[str, Any]) -> FindingRecord:
        """Store a new finding (a fresh id and time replace the given ones), its reproduction recipe
        and its first event, ``created``; returns it as stored."""
        for run_id in finding.run_ids:
            self.get_run(run_id)  # a finding about no run is an error, not a silent orphan
        stored = finding.model_copy(update={"id": uuid.uuid4().hex[:12], "created_at": utc_now()})
        with self.transaction() as db:
            db.execute(
                "INSERT INTO findings (id, title, kind, created_at, created_by, run_ids_json, models_json,"
                " sample_ids_json, evidence_json) VALUES (?,?,?,?,?,?,?,?,?)",
                (stored.id, stored.title, stored.kind, stored.created_at, stored.created_by,
                 _dumps(stored.run_ids), _dumps(stored.models), _dumps(stored.sample_ids),
                 _dumps(stored.evidence)),
            )
            db.execute("INSERT INTO finding_recipes (finding_id, recipe_json) VALUES (?,?)",
                       (stored.id, _dumps(recipe)))
            db.execute("INSERT INTO finding_events (finding_id, at, actor, kind, payload_json)"
                       " VALUES (?,?,?,?,?)", (stored.id, stored.created_at, stored.created_by, "created",
                                               _dumps({"title": stored.title})))
        return stored

    def get_finding(self, finding_id: str) -> FindingRecord:
        """A finding by id or unique id prefix (at least 4 characters)."""
        rows = self._read(
            "SELECT * FROM findings WHERE id = ? OR (length(?) >= 4 AND substr(id, 1, length(?)) = ?)",
            (finding_id, finding_id, finding_id, finding_id),
        )
        if len(rows) != 1:
            why = (f"id prefix '{finding_id}' is ambiguous ({', '.join(r['id'] for r in rows)}); give more "
                   "characters" if rows else
                   f"no finding '{finding_id}' in store {self.location}; `refute finding list` shows them")
            raise FindingNotFoundError(why)
        return _finding_from_row(rows[0])

    def list_findings(self) -> list[FindingRecord]:
        """Every finding, newest first."""
        return [_finding_from_row(r) for r in self._read("SELECT * FROM findings ORDER BY created_at DESC, id DESC")]

    def finding_recipe(self, finding_id: str) -> dict[str, Any]:
        """A finding's reproduction recipe: operational detail that only the vendor report shows."""
        rows = self._read("SELECT recipe_json FROM finding_recipes WHERE finding_id=?",
                          (self.get_finding(finding_id).id,))
        return dict(json.loads(rows[0]["recipe_json"])) if rows else {}

    def append_finding_event(self, finding_id: str, kind: FindingEventKind, actor: str,
                             payload: dict[str, Any]) -> FindingEvent:
        """Append one event to a finding's log; earlier events are never changed."""
        fid = self.get_finding(finding_id).id
        at = utc_now()
        with self.transaction() as db:
            cur = db.execute("INSERT INTO finding_events (finding_id, at, actor, kind, payload_json)"
                             " VALUES (?,?,?,?,?) RETURNING seq", (fid, at, actor, kind, _dumps(payload)))
            seq = int(cur.fetchone()[0])
        return FindingEvent(seq=seq, finding_id=fid, at=at, actor=actor, kind=kind, payload=payload)

    def finding_events(self, finding_id: str) -> list[FindingEvent]:
        """A finding's whole log, oldest first."""
        fid = self.get_finding(finding_id).id
        return [FindingEvent(seq=r["seq"], finding_id=r["finding_id"], at=r["at"], actor=r["actor"],
                             kind=r["kind"], payload=json.loads(r["payload_json"]))
                for r in self._read("SELECT * FROM finding_events WHERE finding_id=? ORDER BY seq", (fid,))]


def _finding_from_row(row: Row) -> FindingRecord:
    return FindingRecord(
        id=row["id"], title=row["title"], kind=row["kind"], created_at=row["created_at"],
        created_by=row["created_by"], run_ids=json.loads(row["run_ids_json"]),
        models=json.loads(row["models_json"]), sample_ids=json.loads(row["sample_ids_json"]),
        evidence=json.loads(row["evidence_json"]),
    )
