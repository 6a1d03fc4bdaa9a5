"""Export a run's samples with their scores as JSONL or CSV.

JSONL is exact: every value as stored. CSV is for spreadsheets, which run a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula (CSV injection). Such a text
cell, say a reply ``=HYPERLINK(...)``, is written with a leading single quote (``'=HYPERLINK(...)``),
as OWASP recommends; numbers (a score of -0.5) are written as they are. Lists and dicts are written
as JSON.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from typing import Any, Literal, TextIO

from refute.store._store import Store

__all__ = ["csv_cell", "export_run", "run_rows"]


def run_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """One flat dict per sample: the sample's fields plus ``score.<scorer>`` and ``label.<scorer>``."""
    run = store.get_run(run_id)
    by_sample: dict[int, dict[str, Any]] = defaultdict(dict)
    for s in store.scores(run.id):
        by_sample[s.sample_id or -1][f"score.{s.scorer}"] = s.value
        by_sample[s.sample_id or -1][f"label.{s.scorer}"] = s.label
    rows = []
    for sample in store.samples(run.id):
        row = sample.model_dump()
        row.update(by_sample.get(sample.id or -1, {}))
        rows.append(row)
    return rows


def export_run(store: Store, run_id: str, fmt: Literal["jsonl", "csv"], out: TextIO) -> int:
    """Write the run's rows to ``out``; returns how many were written."""
    rows = run_rows(store, run_id)
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return len(rows)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(text: str) -> str:
    """``text`` that a spreadsheet will not run as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: lists and dicts as JSON, text guarded against formulas."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)  # starts with [ or {
    return _csv_text(value) if isinstance(value, str) else value
