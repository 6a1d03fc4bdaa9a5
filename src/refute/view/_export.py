"""Exports of a filtered samples view: JSONL (exact), CSV (formula-safe, as `refute export`
writes it) and Parquet (one row per sample, the transcript as JSON text)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from refute.errors import ConfigError
from refute.store import csv_cell

__all__ = ["FORMATS", "export_bytes"]

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: dict[str, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
                           "parquet": "application/vnd.apache.parquet"}


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def export_bytes(rows: Sequence[dict[str, Any]], fmt: str) -> bytes:
    """``rows`` written as ``fmt``."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=_columns(rows) or ["sample_id"], lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: csv_cell(v) for k, v in r.items()})
        return text.getvalue().encode("utf-8")
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("Parquet export needs pyarrow: pip install 'refute[view]'") from None
        flat = [{k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v) for k, v in r.items()}
                for r in rows]
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(flat), buffer)
        return buffer.getvalue()
    raise ConfigError(f"export format {fmt!r}: choose from {', '.join(FORMATS)}")
