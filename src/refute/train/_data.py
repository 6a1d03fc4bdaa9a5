"""Training rows from a JSONL file, one object a line, validated with their file and line.

SFT rows: ``{"id", "prompt", "completion"}``; DPO rows: ``{"id", "prompt", "chosen",
"rejected"}``. Both may carry ``"system"`` (a system message before the prompt) and ``"source"``
(a dict saying where the row came from: a run, a sample, a labeller). Any other field is an error,
so a misspelt one is not silently dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from refute.datasets._loaders import decode_text, jsonl_objects, read_file
from refute.errors import DatasetError
from refute.train._config import Method

__all__ = ["DPORow", "SFTRow", "TrainData", "load_train_data"]


class SFTRow(BaseModel):
    """A prompt and the completion the model should learn to give."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Unique within the file.")
    prompt: str = Field(min_length=1, description="The user message.")
    completion: str = Field(min_length=1, description="The assistant reply to learn; the loss is on it alone.")
    system: str | None = Field(None, description="A system message before the prompt.")
    source: dict[str, Any] | None = Field(None, description="Provenance: the run, sample or labeller it came from.")
    ends: bool = Field(True, description="The completion is the whole reply, so EOS follows it. False for a reply "
                                        "cut at a token limit: the model learns how it starts, not to stop there.")


class DPORow(BaseModel):
    """A prompt with a preferred and a dispreferred reply (Rafailov et al. 2023)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Unique within the file.")
    prompt: str = Field(min_length=1, description="The user message.")
    chosen: str = Field(min_length=1, description="The preferred reply.")
    rejected: str = Field(min_length=1, description="The dispreferred reply.")
    system: str | None = Field(None, description="A system message before the prompt.")
    source: dict[str, Any] | None = Field(None, description="Provenance: the run, sample or labeller it came from.")

    @model_validator(mode="after")
    def _differ(self) -> DPORow:
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are the same text; the pair teaches nothing")
        return self


@dataclass(frozen=True)
class TrainData:
    """The rows of one file, with the line each came from and the file's SHA-256."""

    path: Path
    method: Method
    rows: tuple[SFTRow | DPORow, ...]
    lines: tuple[int, ...]
    sha256: str

    def __len__(self) -> int:
        return len(self.rows)


_ROW: dict[str, type[SFTRow] | type[DPORow]] = {"sft": SFTRow, "dpo": DPORow}
_OTHER_HINT = {"sft": ("chosen", "this looks like a DPO row; use --method dpo"),
               "dpo": ("completion", "this looks like an SFT row; use --method sft")}


def load_train_data(path: str | Path, method: Method = "sft") -> TrainData:
    """Read and validate every row; a `DatasetError` names the file, line and field of the first bad one."""
    path = Path(path)
    label = str(path)
    raw = read_file(path)
    rows: list[Any] = []
    lines: list[int] = []
    first_line: dict[str, int] = {}
    for number, values in jsonl_objects(decode_text(raw, label), label):
        row = _row(values, method, label, number)
        if row.id in first_line:
            raise DatasetError(f"duplicate id '{row.id}' (first on line {first_line[row.id]})", path=label,
                               line=number, field="id")
        first_line[row.id] = number
        rows.append(row)
        lines.append(number)
    if not rows:
        raise DatasetError("no training rows: the file is empty", path=label,
                           hint='write one JSON object a line, e.g. {"id": "r1", "prompt": ..., "completion": ...}')
    return TrainData(path, method, tuple(rows), tuple(lines), hashlib.sha256(raw).hexdigest())


def _row(values: dict[str, Any], method: Method, label: str, line: int) -> SFTRow | DPORow:
    try:
        return _ROW[method].model_validate(values)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        names = [str(part) for part in problem["loc"]]
        field = ".".join(names) if names else None
        message = "missing required field" if problem["type"] == "missing" else \
            "unknown field" if problem["type"] == "extra_forbidden" else \
            str(problem["msg"]).removeprefix("Value error, ")
        other, hint = _OTHER_HINT[method]
        raise DatasetError(message, path=label, line=line, field=field,
                           hint=hint if other in values else None) from None
