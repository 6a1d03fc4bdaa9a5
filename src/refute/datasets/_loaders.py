"""Load a dataset (built-in, JSONL, CSV or Hugging Face Hub) into one validated ``Dataset``.

Every row becomes a :class:`Record`. A malformed row stops the load with a ``DatasetError`` that
names the file, the line and the field, because a silently skipped prompt would bias every rate
computed on the dataset. A dataset's ``content_hash`` depends only on its records, so the same
prompts give the same hash wherever they were loaded from.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from refute.datasets._adapters import ADAPTER_NAMES, Adapter, RowError, detect_adapter, get_adapter
from refute.datasets._record import Record
from refute.errors import DatasetError

__all__ = ["BUILTIN_DATASETS", "Dataset", "declared_harmful", "hash_records", "list_datasets", "load_dataset",
           "run_harmful"]

BUILTIN_DATASETS: dict[str, str] = {
    "harmful": "Harmful requests over 10 misuse categories (requests only, no answers).",
    "benign-lookalike": "Safe requests that look dangerous, for measuring over-refusal.",
    "benign-tasks": "Short tasks with checkable answers: the capability control.",
    "agentic-basic": "Agentic tasks run in a sandbox (refute.agents): capability tasks and propensity "
                     "tasks with a planted affordance; each task's checker decides, not a target.",
}
#: The declared harm label of each built-in: whether its requests (and so the replies to them)
#: are harmful, which decides redaction in reports.
_BUILTIN_HARMFUL: dict[str, bool] = {"harmful": True, "benign-lookalike": False, "benign-tasks": False,
                                     "agentic-basic": False}

_FIELDS: tuple[str, ...] = tuple(Record.model_fields)
_FIELDS_HINT = f"allowed fields: {', '.join(_FIELDS)}; put anything else under 'metadata'"


def hash_records(records: Iterable[Record]) -> str:
    """sha256 hex of the records as canonical JSON (sorted keys, no spaces, UTF-8)."""
    payload = [r.model_dump(mode="json") for r in records]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Dataset:
    """Named, immutable records with a content hash; what every loader returns."""

    name: str
    source: str
    """Where it came from: ``builtin:NAME``, a file path, or ``hf:REPO[:CONFIG]:SPLIT``."""
    records: tuple[Record, ...] = field(repr=False)
    adapter: str | None = None
    """The format adapter the rows went through, if any."""
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        records = tuple(self.records)
        seen: set[str] = set()
        for i, record in enumerate(records):
            if not isinstance(record, Record):
                raise DatasetError(f"item {i} is a {type(record).__name__}, not a Record", path=self.source)
            if record.id in seen:
                raise DatasetError(f"duplicate id '{record.id}'", path=self.source, field="id")
            seen.add(record.id)
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "content_hash", hash_records(records))

    def __hash__(self) -> int:  # records hold dicts, so hash by identity of content instead
        return hash((self.name, self.source, self.adapter, self.content_hash))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def categories(self) -> tuple[str, ...]:
        """The distinct categories, sorted."""
        return tuple(sorted({r.category for r in self.records}))

    def category_counts(self) -> dict[str, int]:
        """Records per category, sorted by category."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.category] = counts.get(r.category, 0) + 1
        return dict(sorted(counts.items()))

    def limit(self, n: int) -> Dataset:
        """The first ``n`` records, with their own hash."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DatasetError(f"limit must be a positive integer, got {n!r}", path=self.source)
        if n >= len(self.records):
            return self
        return Dataset(self.name, self.source, self.records[:n], self.adapter)

    def filter(self, *, categories: str | Iterable[str]) -> Dataset:
        """Only the records in ``categories``, in their original order, with their own hash."""
        wanted = {categories} if isinstance(categories, str) else set(categories)
        unknown = sorted(wanted - set(self.categories()))
        if unknown:
            raise DatasetError(
                f"unknown categor{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}",
                path=self.source,
                field="category",
                hint=f"categories of {self.name}: {', '.join(self.categories())}",
            )
        kept = tuple(r for r in self.records if r.category in wanted)
        return Dataset(self.name, self.source, kept, self.adapter)


def declared_harmful(dataset: str, declared: bool | None = None) -> bool:
    """Whether ``dataset``'s requests are harmful: ``declared`` when given, else the declaration of
    the built-in named exactly ``dataset`` (or ``builtin:NAME``), else True.

    Never guessed from a name: a file named ``benign-x.jsonl`` is harmful (its replies redacted)
    unless its run declares otherwise (``TaskConfig.harmful``).
    """
    if declared is not None:
        return declared
    return _BUILTIN_HARMFUL.get(dataset.removeprefix("builtin:"), True)


def run_harmful(config: Mapping[str, Any], dataset_name: str) -> bool:
    """Whether a stored run's requests are harmful: the harm label its task configuration declares
    (``harmful``), else the declaration of the dataset it names (``dataset``, else ``dataset_name``)."""
    return declared_harmful(str(config.get("dataset") or dataset_name), config.get("harmful"))


def list_datasets() -> dict[str, str]:
    """Names of the built-in datasets and what each is for."""
    return dict(BUILTIN_DATASETS)


def load_dataset(
    name_or_path: str | Path,
    *,
    adapter: str | None = None,
    columns: dict[str, str] | None = None,
    limit: int | None = None,
) -> Dataset:
    """Load a built-in dataset, a ``.jsonl`` or ``.csv`` file, or ``hf:REPO[:CONFIG][:SPLIT]``.

    ``adapter`` names a published format (see ``ADAPTER_NAMES``); for CSV and Hub data it is
    detected from the header when left out. ``columns`` maps ``Record`` fields to your column
    names, e.g. ``{"prompt": "goal"}``; columns that map to no field go to ``metadata``. Rows
    without an ``id`` (CSV, Hub, or any adapted file) get ``<stem>-0001``, ``<stem>-0002``, ...
    ``limit`` keeps the first ``limit`` records after the whole source has been validated.
    """
    spec = str(name_or_path)
    chosen = _check_options(spec, adapter, columns)
    if spec.startswith("hf:"):
        dataset = _load_hub(spec, chosen, columns)
    elif spec in BUILTIN_DATASETS or spec.startswith("builtin:"):
        if chosen is not None or columns is not None:
            raise DatasetError("built-in datasets take no adapter or columns", path=spec)
        dataset = _load_builtin(spec.removeprefix("builtin:"))
    else:
        dataset = _load_file(Path(spec), chosen, columns)
    return dataset if limit is None else dataset.limit(limit)


# --- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int
    """Line of the file where the row starts (row number for Hub data)."""
    index: int
    """1-based position among data rows; used for synthesized ids."""
    values: dict[str, Any]


def _check_options(spec: str, adapter: str | None, columns: dict[str, str] | None) -> Adapter | None:
    if adapter is not None and columns is not None:
        raise DatasetError("pass either adapter or columns, not both", path=spec)
    if columns is not None:
        for key, value in columns.items():
            if key not in _FIELDS:
                raise DatasetError(f"columns maps unknown Record field '{key}'", path=spec, field=key,
                                   hint=f"Record fields: {', '.join(_FIELDS)}")
            if not isinstance(value, str) or not value:
                raise DatasetError(f"columns['{key}'] must be a column name", path=spec, field=key)
    if adapter is None:
        return None
    found = get_adapter(adapter)
    if found is None:
        raise DatasetError(f"unknown adapter '{adapter}'", path=spec,
                           hint=f"adapters: {', '.join(ADAPTER_NAMES)}")
    return found


def _load_builtin(name: str) -> Dataset:
    if name not in BUILTIN_DATASETS:
        raise DatasetError(f"no built-in dataset '{name}'", hint=f"built-ins: {', '.join(BUILTIN_DATASETS)}")
    resource = resources.files("refute.datasets") / "data" / f"{name}.jsonl"
    label = str(resource)
    rows = _jsonl_rows(resource.read_text(encoding="utf-8"), label)
    return Dataset(name, f"builtin:{name}", _strict_records(rows, label))


def _load_file(path: Path, adapter: Adapter | None, columns: dict[str, str] | None) -> Dataset:
    label, suffix = str(path), path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        if path.exists():
            raise DatasetError(f"unsupported file type '{path.suffix}'", path=label,
                               hint="use a .jsonl or .csv file")
        close = difflib.get_close_matches(str(path), BUILTIN_DATASETS, n=1)
        raise DatasetError(
            f"no built-in dataset or file named '{path}'"
            + (f"; did you mean '{close[0]}'?" if close else ""),
            hint=f"built-ins: {', '.join(BUILTIN_DATASETS)}; or a .jsonl/.csv path, or hf:<repo>[:<split>]",
        )
    text = _read_text(path)
    if suffix == ".jsonl":
        rows = _jsonl_rows(text, label)
        if adapter is None and columns is None:
            return Dataset(path.stem, label, _strict_records(rows, label))
        header = list(dict.fromkeys(k for row in rows for k in row.values))
    else:
        header, rows = _csv_rows(text, label)
        if adapter is None and columns is None:
            adapter = _detect(header, label)
    records = _table_records(rows, header, label, path.stem, adapter, columns or {})
    return Dataset(path.stem, label, records, adapter.name if adapter else None)


def _load_hub(spec: str, adapter: Adapter | None, columns: dict[str, str] | None) -> Dataset:
    parts = spec.removeprefix("hf:").split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise DatasetError(f"bad Hub spec '{spec}'",
                           hint="use hf:<repo>, hf:<repo>:<split> or hf:<repo>:<config>:<split>")
    repo = parts[0]
    config = parts[1] if len(parts) == 3 else None
    split = parts[-1] if len(parts) > 1 else "train"
    try:
        import datasets as hf_datasets  # optional: refute[hub]
    except ImportError as exc:
        raise DatasetError("loading from the Hugging Face Hub needs the 'datasets' package", path=spec,
                           hint="pip install 'refute[hub]'") from exc
    try:
        table = hf_datasets.load_dataset(repo, config, split=split)
    except Exception as exc:  # the hub client raises many unrelated types; report them all alike
        raise DatasetError(f"could not load split '{split}' of '{repo}': {exc}", path=spec,
                           hint="check the repo id, config and split, and that you are online") from exc
    header = [str(c) for c in table.column_names]
    rows = [_Row(i, i, dict(row)) for i, row in enumerate(table, start=1)]
    if not rows:
        raise DatasetError("the split has no rows", path=spec)
    if adapter is None and columns is None:
        adapter = _detect(header, spec)
    stem = repo.rstrip("/").rsplit("/", 1)[-1]
    source = f"hf:{repo}:{config}:{split}" if config else f"hf:{repo}:{split}"
    records = _table_records(rows, header, spec, stem, adapter, columns or {})
    return Dataset(stem, source, records, adapter.name if adapter else None)


def _read_text(path: Path) -> str:
    return decode_text(read_file(path), str(path))


def read_file(path: Path) -> bytes:
    """A data file's bytes; `DatasetError` naming it when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError("file not found", path=str(path)) from None
    except OSError as exc:
        raise DatasetError(f"cannot read file: {exc.strerror or exc}", path=str(path)) from exc


def decode_text(data: bytes, label: str) -> str:
    """UTF-8 text (a BOM dropped); `DatasetError` naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError("not valid UTF-8", path=label, line=line, hint="save the file as UTF-8") from None


def jsonl_objects(text: str, label: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; `DatasetError` naming a line that is not a JSON object."""
    objects: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=label, line=number) from None
        if not isinstance(values, dict):
            raise DatasetError(f"expected a JSON object, got {type(values).__name__}", path=label, line=number)
        objects.append((number, values))
    return objects


def _jsonl_rows(text: str, label: str) -> list[_Row]:
    rows = [_Row(number, index, values) for index, (number, values) in enumerate(jsonl_objects(text, label), start=1)]
    if not rows:
        raise DatasetError("empty file: no records", path=label)
    return rows


def _csv_rows(text: str, label: str) -> tuple[list[str], list[_Row]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # an unclosed quote is an error
    header: list[str] | None = None
    rows: list[_Row] = []
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                dupes = sorted({c for c in header if c and header.count(c) > 1})
                if dupes:
                    raise DatasetError(f"duplicate column '{dupes[0]}' in header", path=label, line=start,
                                       field=dupes[0])
                continue
            if len(cells) > len(header):
                raise DatasetError(f"row has {len(cells)} values but the header has {len(header)} columns",
                                   path=label, line=start, hint="quote values that contain commas")
            values = {name: cell for name, cell in zip(header, cells, strict=False) if name}
            rows.append(_Row(start, len(rows) + 1, values))
    except csv.Error as exc:
        raise DatasetError(f"malformed CSV: {exc}", path=label, line=reader.line_num) from None
    if header is None:
        raise DatasetError("empty file: no header", path=label)
    if not rows:
        raise DatasetError("no data rows under the header", path=label, line=2)
    return [c for c in header if c], rows


# --- rows to records ---------------------------------------------------------------------------


def _detect(header: list[str], label: str) -> Adapter | None:
    matches = detect_adapter(header)
    if len(matches) > 1:
        raise DatasetError(f"header matches several formats: {', '.join(a.name for a in matches)}",
                           path=label, line=1, hint="pass adapter=NAME")
    return matches[0] if matches else None


def _strict_records(rows: list[_Row], label: str) -> tuple[Record, ...]:
    """JSONL rows that must already be ``Record`` objects, field for field."""
    records: list[Record] = []
    for row in rows:
        for key in row.values:
            if key not in _FIELDS:
                raise DatasetError(f"unknown field '{key}'", path=label, line=row.line, field=key, hint=_FIELDS_HINT)
        for key in ("id", "prompt"):
            if key not in row.values:
                raise DatasetError("missing required field", path=label, line=row.line, field=key)
        records.append(_validate(row.values, row, label, {}))
    return _unique(records, rows, label)


def _table_records(
    rows: list[_Row],
    header: list[str],
    label: str,
    stem: str,
    adapter: Adapter | None,
    columns: Mapping[str, str],
) -> tuple[Record, ...]:
    """CSV, Hub or mapped JSONL rows, through an adapter or the ``columns`` mapping."""
    present = set(header)
    header_hint = f"columns found: {', '.join(header)}"
    if adapter is not None:
        missing = [c for c in adapter.required if c not in present]
        if missing:
            raise DatasetError(f"column '{missing[0]}' required by adapter '{adapter.name}' is missing",
                               path=label, line=1, field=missing[0], hint=header_hint)
    else:
        for key, column in columns.items():
            if column not in present:
                raise DatasetError(f"column '{column}' (mapped to {key}) is not in the data", path=label,
                                   line=1, field=column, hint=header_hint)
        if columns.get("prompt", "prompt") not in present:
            raise DatasetError(
                "no 'prompt' column", path=label, line=1, field="prompt",
                hint=f"map yours with columns={{'prompt': '<column>'}} or pass adapter= one of "
                     f"{', '.join(ADAPTER_NAMES)}; {header_hint}",
            )
    records: list[Record] = []
    for row in rows:
        try:
            fields = adapter.apply(row.values) if adapter else _mapped_fields(row.values, columns)
        except RowError as exc:
            raise DatasetError(str(exc), path=label, line=row.line, field=exc.field) from None
        fields.setdefault("id", f"{stem}-{row.index:04d}")
        records.append(_validate(fields, row, label, columns))
    return _unique(records, rows, label)


def _mapped_fields(values: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    used: set[str] = set()
    for name in _FIELDS:
        column = columns.get(name, name)
        if column not in values:
            continue
        used.add(column)
        value = values[column]
        blank = value is None or (isinstance(value, str) and not value.strip())
        if name == "metadata":
            fields[name] = _metadata_cell(value, column)
        elif name in ("id", "prompt") and blank:
            raise RowError(f"empty {name}", field=column)
        elif not blank:
            keep = name == "prompt" and isinstance(value, str)  # prompts keep their whitespace
            fields[name] = value if keep else str(value).strip()
    extra = {k: v for k, v in values.items()
             if k not in used and not (v is None or (isinstance(v, str) and not v.strip()))}
    if extra:
        fields["metadata"] = {**extra, **fields.get("metadata", {})}
    return fields


def _metadata_cell(value: Any, column: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise RowError("metadata must be a JSON object", field=column)
    return parsed


def _validate(fields: dict[str, Any], row: _Row, label: str, columns: Mapping[str, str]) -> Record:
    try:
        return Record.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else None
        column = columns.get(name, name) if name else None
        message = "must not be empty" if error["type"] == "string_too_short" else error["msg"]
        raise DatasetError(message, path=label, line=row.line, field=column) from None


def _unique(records: list[Record], rows: list[_Row], label: str) -> tuple[Record, ...]:
    first_line: dict[str, int] = {}
    for record, row in zip(records, rows, strict=True):
        if record.id in first_line:
            raise DatasetError(f"duplicate id '{record.id}' (first on line {first_line[record.id]}, again on "
                               f"line {row.line})", path=label, line=row.line, field="id")
        first_line[record.id] = row.line
    return tuple(records)
