"""The SQLite store of runs, samples, scores, runs' own calibrations, findings and the request cache."""

from refute.store._export import export_run, run_rows
from refute.store._records import (
    CachedReply,
    CalibrationRecord,
    FindingEvent,
    FindingEventKind,
    FindingRecord,
    RunRecord,
    RunStatus,
    SampleRecord,
    ScoreRecord,
)
from refute.store._schema import SCHEMA_VERSION
from refute.store._store import Store, open_store

__all__ = [
    "SCHEMA_VERSION",
    "CachedReply",
    "CalibrationRecord",
    "FindingEvent",
    "FindingEventKind",
    "FindingRecord",
    "RunRecord",
    "RunStatus",
    "SampleRecord",
    "ScoreRecord",
    "Store",
    "export_run",
    "open_store",
    "run_rows",
]
