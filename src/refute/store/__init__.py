"""The SQLite store of runs, samples, scores, runs' own calibrations, people's labels and the label
queue, findings, the request cache and `refute serve`'s log of exchanges."""

from refute.store._exchanges import ExchangeOutcome, ExchangeRecord, LayerStats
from refute.store._export import csv_cell, export_run, run_rows
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
    "ExchangeOutcome",
    "ExchangeRecord",
    "FindingEvent",
    "FindingEventKind",
    "FindingRecord",
    "HumanLabel",
    "LabelRecord",
    "LayerStats",
    "QueueItem",
    "RunRecord",
    "RunStatus",
    "SampleRecord",
    "ScoreRecord",
    "ScorerLabel",
    "Store",
    "csv_cell",
    "export_run",
    "open_store",
    "run_rows",
]
