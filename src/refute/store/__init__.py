"""The store of runs, samples, scores, runs' own calibrations, people's labels and the label queue,
findings, the request cache and `refute serve`'s log of exchanges: a SQLite file (`Store`, the
default) or a PostgreSQL database (`PostgresStore`, ``postgresql://`` URL), opened by `open_store`;
`copy_runs` copies runs between any two stores."""

from refute.store._copy import CopyReport, copy_runs
from refute.store._exchanges import ExchangeOutcome, ExchangeRecord, LayerStats
from refute.store._export import csv_cell, export_run, run_rows
from refute.store._postgres import PostgresStore
from refute.store._records import (
    CachedReply,
    CalibrationRecord,
    FindingEvent,
    FindingEventKind,
    FindingRecord,
    HumanLabel,
    LabelRecord,
    QueueItem,
    RunRecord,
    RunStatus,
    SampleRecord,
    ScoreRecord,
    ScorerLabel,
)
from refute.store._schema import SCHEMA_VERSION
from refute.store._store import Store, open_store

__all__ = [
    "SCHEMA_VERSION",
    "CachedReply",
    "CalibrationRecord",
    "CopyReport",
    "ExchangeOutcome",
    "ExchangeRecord",
    "FindingEvent",
    "FindingEventKind",
    "FindingRecord",
    "HumanLabel",
    "LabelRecord",
    "LayerStats",
    "PostgresStore",
    "QueueItem",
    "RunRecord",
    "RunStatus",
    "SampleRecord",
    "ScoreRecord",
    "ScorerLabel",
    "Store",
    "copy_runs",
    "csv_cell",
    "export_run",
    "open_store",
    "run_rows",
]
