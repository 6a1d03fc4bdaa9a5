"""Validating a scorer against human labels: agreement, Cohen's kappa, confusion matrices, and
sensitivity / specificity with Wilson intervals, so that judge error can be carried into rates
(`refute.stats.rogan_gladen` takes ``sensitivity_counts`` and ``specificity_counts``).

A label file is JSONL (one object a line) or CSV with at least ``completion`` and ``label``
(``full_compliance``, ``partial_refusal`` or ``full_refusal``); ``prompt``, ``id``, ``source``,
``hard_case`` and ``split`` are optional. Binary figures treat a partial refusal as a refusal, and
"positive" means refusal. Results are saved as JSON under ``<store dir>/validations/`` (next to
``refute.db``) by `save_validation`, one file per scorer version.

Cohen's kappa: Cohen (1960), "A coefficient of agreement for nominal scales", Educ. Psychol.
Meas. 20:37-46. Wilson interval: Wilson (1927), JASA 22:209-212.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from refute.datasets._record import Record
from refute.errors import DatasetError
from refute.scorers._base import ScoreInput, Scorer
from refute.stats import Estimate, rate

__all__ = ["LABELS", "LabelRow", "Proportion", "ValidationResult", "binary_agreement", "cohen_kappa",
           "load_labels", "save_validation", "validate"]

LABELS = ("full_compliance", "partial_refusal", "full_refusal")
_REQUIRED = ("completion", "label")
_TEXT_FIELDS = ("id", "prompt", "source", "hard_case", "split", "run_id", "sample_id", "labeller", "guideline")


@dataclass(frozen=True)
class LabelRow:
    """One human-labelled completion."""

    id: str
    prompt: str
    completion: str
    label: str
    source: str | None
    hard_case: str | None
    split: str | None
    line: int
    run_id: str | None = None  # a sheet of `refute judge sample`: the run and sample labelled
    sample_id: str | None = None
    labeller: str | None = None  # who or what labelled it (docs/refusal-labelling.md, "Provenance")
    guideline: str | None = None  # the labelling guideline's version, e.g. "refusal-labels-v2"


def _row(raw: Any, path: str, line: int, labels: Sequence[str] = LABELS) -> LabelRow:
    if not isinstance(raw, dict):
        raise DatasetError(f"expected a JSON object, got {type(raw).__name__}", path=path, line=line)
    for name in _REQUIRED:
        if name not in raw or raw[name] is None:
            raise DatasetError("missing required field", path=path, line=line, field=name,
                               hint="every row needs 'completion' and 'label'")
    if not isinstance(raw["completion"], str):
        raise DatasetError(f"must be a string, got {type(raw['completion']).__name__}", path=path,
                           line=line, field="completion")
    label = str(raw["label"]).strip()
    if not label:
        raise DatasetError("no label yet", path=path, line=line, field="label",
                           hint=f"write one of {', '.join(labels)}, or delete the row")
    if label not in labels:
        raise DatasetError(f"unknown label {raw['label']!r}", path=path, line=line, field="label",
                           hint=f"use one of {', '.join(labels)}")
    extra = {k: (None if raw.get(k) in (None, "") else str(raw[k])) for k in _TEXT_FIELDS}
    return LabelRow(id=extra["id"] or f"line-{line}", prompt=extra["prompt"] or "",
                    completion=raw["completion"], label=label, source=extra["source"],
                    hard_case=extra["hard_case"], split=extra["split"], line=line,
                    run_id=extra["run_id"], sample_id=extra["sample_id"], labeller=extra["labeller"],
                    guideline=extra["guideline"])


def load_labels(path: str | PathLike[str], labels: Sequence[str] = LABELS) -> list[LabelRow]:
    """Read a JSONL or CSV label file; a bad row raises DatasetError naming its line and field.

    ``labels``: the labels a row may carry (default the three refusal labels; a harm judge's sheet
    carries ``harmful`` / ``not_harmful``)."""
    p = Path(path)
    where = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not UTF-8 text (byte {exc.start}); save the label file as UTF-8",
                           path=where) from None
    except OSError as exc:
        raise DatasetError(f"cannot read label file ({exc.strerror or exc})", path=where) from exc
    text = text.removeprefix("\ufeff")  # the byte-order mark spreadsheets write before the header
    rows: list[LabelRow] = []
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))  # a quoted reply may span lines
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError("missing required column", path=where, line=1, field=missing[0],
                               hint=f"the header has {', '.join(reader.fieldnames or []) or 'nothing'}")
        first = 2  # the line a row starts on
        for raw in reader:
            rows.append(_row(dict(raw), where, first, labels))
            first = reader.line_num + 1
    else:
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"invalid JSON ({exc.msg} at column {exc.colno})", path=where,
                                   line=i) from exc
            rows.append(_row(raw, where, i, labels))
    if not rows:
        raise DatasetError("no labelled rows", path=where, hint="one JSON object per line")
    return rows


# --- agreement -----------------------------------------------------------------------------------


def cohen_kappa(truth: Sequence[str], pred: Sequence[str]) -> float:
    """Cohen's kappa (po - pe) / (1 - pe); 1.0 when both raters use one identical category."""
    n = len(truth)
    if n == 0 or n != len(pred):
        raise ValueError("cohen_kappa needs two equally long, non-empty label lists")
    cats = sorted(set(truth) | set(pred))
    po = sum(a == b for a, b in zip(truth, pred, strict=True)) / n
    pe = sum((list(truth).count(c) / n) * (list(pred).count(c) / n) for c in cats)
    return 1.0 if pe >= 1.0 else (po - pe) / (1.0 - pe)


def _binary(labels: Sequence[str]) -> list[str]:
    return ["refusal" if v != "full_compliance" else "compliance" for v in labels]


def binary_agreement(truth: Sequence[str], pred: Sequence[str]) -> tuple[float, float]:
    """(accuracy, kappa) of refusal vs compliance; a partial refusal counts as a refusal."""
    t, p = _binary(truth), _binary(pred)
    return sum(a == b for a, b in zip(t, p, strict=True)) / len(t), cohen_kappa(t, p)


def _null_is_nan(data: Any) -> Any:
    if isinstance(data, dict) and data.get("value", 0.0) is None:  # JSON has no NaN: it wrote null
        return {**data, "value": float("nan")}
    return data


Proportion = Annotated[Estimate, BeforeValidator(_null_is_nan)]
"""A proportion as a `refute.stats.Estimate` with its Wilson interval: ``value`` is successes / n
(NaN, written null, when n is 0), ``n_samples`` is n, so successes is ``round(value * n_samples)``."""


def _wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    if n == 0:
        return Estimate(float("nan"), 0.0, 1.0, confidence, "wilson", 0, 0)
    return rate([1.0] * successes + [0.0] * (n - successes), confidence=confidence, method="wilson")


class ValidationResult(BaseModel):
    """A scorer's agreement with human labels; saved as JSON by `save_validation`."""

    model_config = ConfigDict(frozen=True)

    scorer: str = Field(description="Registered scorer name.")
    scorer_version: str = Field(description="Version that was validated.")
    labels_path: str = Field(description="The label file.")
    labels_sha256: str = Field(description="SHA-256 of the label file's bytes.")
    subset: str | None = Field(None, description="Which rows: a split or source name, or None for all.")
    n: int = Field(description="Rows scored.")
    n_unscorable: int = Field(description="Rows where the scorer returned no label (counted as wrong).")
    accuracy: Proportion = Field(description="Three-class accuracy.")
    kappa: float = Field(description="Three-class Cohen's kappa.")
    binary_accuracy: Proportion = Field(description="Refusal-vs-compliance accuracy (partial = refusal).")
    binary_kappa: float = Field(description="Refusal-vs-compliance Cohen's kappa.")
    sensitivity: Proportion = Field(description="Refusals the scorer calls refusals (TP / (TP + FN)).")
    specificity: Proportion = Field(description="Compliances the scorer calls compliance (TN / (TN + FP)).")
    sensitivity_counts: tuple[int, int] = Field(description="(TP, FN), as rogan_gladen takes them.")
    specificity_counts: tuple[int, int] = Field(description="(TN, FP), as rogan_gladen takes them.")
    confusion: dict[str, dict[str, int]] = Field(description="confusion[gold][predicted], three classes.")
    binary_confusion: dict[str, dict[str, int]] = Field(description="confusion[gold][predicted], binary.")
    by_hard_case: dict[str, Proportion] = Field(default_factory=dict, description="Binary accuracy per tag.")
    created_at: str = Field(description="UTC ISO-8601 time of the validation.")


def _score_all(scorer: Scorer, rows: Sequence[LabelRow]) -> list[str | None]:
    items = [ScoreInput(record=Record(id=r.id, prompt=r.prompt or "(no prompt)"),
                        messages=[{"role": "user", "content": r.prompt},
                                  {"role": "assistant", "content": r.completion}],
                        completion=r.completion) for r in rows]
    batch = getattr(scorer, "score_batch", None)
    scores = batch(items) if callable(batch) else [scorer.score(i) for i in items]
    out: list[str | None] = []
    for s in scores:
        if s.label in LABELS:
            out.append(s.label)
        elif s.value is not None:  # a binary scorer: 1 = refusal
            out.append("full_refusal" if s.value >= 0.5 else "full_compliance")
        else:
            out.append(None)
    return out


def validate(scorer: Scorer, labels_path: str | PathLike[str], *, subset: str | None = None,
             confidence: float = 0.95) -> ValidationResult:
    """Score every labelled completion (or those whose split or source is ``subset``) and measure agreement."""
    path = Path(labels_path)
    rows = load_labels(path)
    if subset is not None:
        rows = [r for r in rows if subset in (r.split, r.source)]
        if not rows:
            raise DatasetError(f"no rows with split '{subset}'", path=str(path), field="split")
    preds = _score_all(scorer, rows)
    gold = [r.label for r in rows]
    filled = [p if p is not None else "unscorable" for p in preds]
    n = len(rows)
    confusion = {g: {p: 0 for p in (*LABELS, "unscorable")} for g in LABELS}
    for g, p in zip(gold, filled, strict=True):
        confusion[g][p] += 1
    gb = _binary(gold)
    pb = [("unscorable" if p == "unscorable" else b) for p, b in zip(filled, _binary(filled), strict=True)]
    bconf = {g: {p: 0 for p in ("refusal", "compliance", "unscorable")} for g in ("refusal", "compliance")}
    for g, p in zip(gb, pb, strict=True):
        bconf[g][p] += 1
    tp, fn = bconf["refusal"]["refusal"], bconf["refusal"]["compliance"] + bconf["refusal"]["unscorable"]
    tn, fp = bconf["compliance"]["compliance"], bconf["compliance"]["refusal"] + bconf["compliance"]["unscorable"]
    cases: dict[str, list[bool]] = {}
    for r, g, p in zip(rows, gb, pb, strict=True):
        cases.setdefault(r.hard_case or "untagged", []).append(g == p)
    return ValidationResult(
        scorer=scorer.name, scorer_version=scorer.version, labels_path=str(path),
        labels_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), subset=subset, n=n,
        n_unscorable=sum(p is None for p in preds),
        accuracy=_wilson(sum(g == p for g, p in zip(gold, filled, strict=True)), n, confidence),
        kappa=cohen_kappa(gold, filled),
        binary_accuracy=_wilson(sum(g == p for g, p in zip(gb, pb, strict=True)), n, confidence),
        binary_kappa=cohen_kappa(gb, pb),
        sensitivity=_wilson(tp, tp + fn, confidence), specificity=_wilson(tn, tn + fp, confidence),
        sensitivity_counts=(tp, fn), specificity_counts=(tn, fp), confusion=confusion, binary_confusion=bconf,
        by_hard_case={k: _wilson(sum(v), len(v), confidence) for k, v in sorted(cases.items())},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def save_validation(result: ValidationResult, store_path: str | PathLike[str]) -> Path:
    """Write ``result`` to ``<dir of store>/validations/<scorer>-<version>[-<subset>].json``; returns it."""
    folder = Path(store_path).parent / "validations"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{result.scorer}-{result.scorer_version}" + (f"-{result.subset}" if result.subset else "")
    out = folder / ("".join(c if c.isalnum() or c in "-_." else "_" for c in stem) + ".json")
    out.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return out
