"""What every specification-gaming or oversight experiment returns: named figures with intervals
(the measures a study can gate on), curves and tables for the report, the store runs that hold its
samples, and notes. One shape for all five experiments, so the report, the CLI and studies handle
them alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Curve", "ExperimentResult", "Figure", "Series", "Table"]


@dataclass(frozen=True)
class Figure:
    """One estimate with its interval, and how the interval was made."""

    value: float
    low: float
    high: float
    n: int  # the units the interval is over (prompts, seeds, questions)
    method: str  # e.g. "cluster bootstrap over prompts, 2000 resamples"
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            x = getattr(self, name)
            if not isinstance(x, (int, float)) or math.isnan(x):
                raise ValueError(f"Figure.{name} must be a number, got {x!r}")
        if not self.low <= self.value <= self.high:
            raise ValueError(f"Figure: the interval [{self.low}, {self.high}] must hold the value {self.value}")

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        level = "" if abs(self.confidence - 0.95) < 1e-9 else f" ({self.confidence:.0%})"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]{level}"


@dataclass(frozen=True)
class Series:
    """One line of a curve, with its interval band (``low``/``high`` as long as ``x``)."""

    name: str
    x: list[float]
    y: list[float]
    low: list[float]
    high: list[float]

    def __post_init__(self) -> None:
        if not len(self.x) == len(self.y) == len(self.low) == len(self.high):
            raise ValueError(f"series '{self.name}': x, y, low and high must be equally long")


@dataclass(frozen=True)
class Curve:
    """One plot: several series over a shared x axis."""

    title: str
    x_label: str
    y_label: str
    series: list[Series]
    caption: str = ""
    #: Optional vertical markers: (x, label), e.g. a fitted peak.
    markers: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Table:
    title: str
    head: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class ExperimentResult:
    """An experiment's outcome, saved as ``result.json`` and rendered by `refute.report`."""

    experiment: str  # the registered name, e.g. "overoptimisation"
    title: str
    #: Sentences generated from the intervals: what the evidence shows and what it does not.
    findings: list[str]
    settings: dict[str, Any]
    figures: dict[str, Figure]
    curves: list[Curve] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    #: Store runs holding the experiment's samples: label -> run id.
    runs: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runtime_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentResult:
        d = dict(data)
        d["figures"] = {k: Figure(**v) for k, v in d["figures"].items()}
        d["curves"] = [Curve(**{**c, "series": [Series(**s) for s in c["series"]],
                                "markers": [tuple(m) for m in c.get("markers", [])]}) for c in d.get("curves", [])]
        d["tables"] = [Table(**t) for t in d.get("tables", [])]
        return cls(**d)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/result.json``; returns its path."""
        path = Path(out_dir) / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ExperimentResult:
        p = Path(path)
        return cls.from_dict(json.loads((p / "result.json" if p.is_dir() else p).read_text(encoding="utf-8")))

    def to_markdown(self) -> str:
        out = [f"## {_cell(self.title)}", ""]
        out += [f"- {_cell(s)}" for s in self.findings] + [""]
        out += ["| figure | value | interval | n | method |", "|---|---|---|---|---|"]
        out += [f"| {_cell(k)} | {f.value:.3f} | {_interval(f)} | {f.n} | {_cell(f.method)} |"
                for k, f in self.figures.items()]
        for t in self.tables:
            out += ["", f"**{_cell(t.title)}**", "", "| " + " | ".join(map(_cell, t.head)) + " |",
                    "|" + "---|" * len(t.head)]
            out += ["| " + " | ".join(map(_cell, r)) + " |" for r in t.rows]
        if self.notes:
            out += [""] + [f"Note: {_cell(n)}" for n in self.notes]
        if self.runs:
            out += ["", "Runs: " + ", ".join(f"{_cell(k)} `{v}`" for k, v in self.runs.items())]
        out += ["", f"Runtime {self.runtime_s:.0f} s."]
        return "\n".join(out) + "\n"


def _cell(text: object) -> str:
    """Text safe in a Markdown table cell or line: pipes escaped, line breaks flattened."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _interval(f: Figure) -> str:
    """``[low, high]``, with the confidence level when it is not the usual 95%."""
    level = "" if abs(f.confidence - 0.95) < 1e-9 else f" ({f.confidence:.0%})"
    return f"[{f.low:.3f}, {f.high:.3f}]{level}"
