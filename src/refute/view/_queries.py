"""What the viewer reads from the store: runs and samples filtered, sorted and paged in SQL.

Samples are paged by key (``id > after``), never by offset, so the thousandth page costs what
the first does; counts and distributions are one aggregate query each. Every filter is a bound
parameter. Texts are returned as stored: the templates escape them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from refute.errors import ConfigError
from refute.scorers import REFUSAL, meaning_of
from refute.store import Store

__all__ = ["RunFilter", "SampleFilter", "SampleRow", "distinct", "export_rows", "list_runs", "sample_page",
           "score_distribution", "study_of"]

#: Columns the runs page sorts by (``-`` in front for descending).
RUN_SORTS = ("created_at", "kind", "model_spec", "dataset_name", "status", "name", "n_planned")
PAGE_SIZES = (25, 50, 100, 200)


def study_of(name: str | None) -> str | None:
    """The study hash (12 hex) a run belongs to, from its name ``study:<hash12>:...``."""
    if name and name.startswith("study:"):
        parts = name.split(":")
        return parts[1] if len(parts) > 1 else None
    return None


@dataclass(frozen=True)
class RunFilter:
    """The runs page's filters; empty strings mean "any"."""

    model: str = ""
    dataset: str = ""
    kind: str = ""
    status: str = ""
    study: str = ""
    q: str = ""
    sort: str = "-created_at"

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("model_spec", self.model), ("dataset_name", self.dataset), ("kind", self.kind),
                              ("status", self.status)):
            if value:
                clauses.append(f"r.{column} = ?")
                args.append(value)
        if self.study:
            clauses.append("r.name LIKE ? ESCAPE '\\'")
            args.append(f"study:{_like(self.study)}%")
        if self.q:
            clauses.append("(r.id LIKE ? ESCAPE '\\' OR r.name LIKE ? ESCAPE '\\' OR r.model_spec LIKE ? ESCAPE '\\')")
            args += [f"%{_like(self.q)}%"] * 3
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def order(self) -> str:
        column = self.sort.lstrip("-")
        if column not in RUN_SORTS:
            raise ConfigError(f"sort: unknown column {column!r}; choose from {', '.join(RUN_SORTS)}")
        return f" ORDER BY r.{column} {'DESC' if self.sort.startswith('-') else 'ASC'}, r.id"


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``%``, ``_`` and ``\\`` escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_runs(store: Store, f: RunFilter, limit: int = 500) -> list[dict[str, Any]]:
    """Runs matching ``f``, with their completed and failed sample counts."""
    where, args = f.where()
    rows = store.query(f"""
        SELECT r.id, r.kind, r.name, r.status, r.created_at, r.finished_at, r.model_spec, r.dataset_name,
               r.n_planned, r.parent_id, r.role,
               (SELECT COUNT(*) FROM samples s WHERE s.run_id = r.id AND s.error IS NULL) AS n_ok,
               (SELECT COUNT(*) FROM samples s WHERE s.run_id = r.id AND s.error IS NOT NULL) AS n_failed
        FROM runs r{where}{f.order()} LIMIT ?""", [*args, limit])
    return [dict(r) | {"study": study_of(r["name"])} for r in rows]


def distinct(store: Store, column: Literal["model_spec", "dataset_name", "kind", "status"]) -> list[str]:
    """The values a runs filter can take."""
    return [r[0] for r in store.query(f"SELECT DISTINCT {column} FROM runs ORDER BY {column}")]


Outcome = Literal["", "high", "low", "unscored", "error"]
Human = Literal["", "labelled", "unlabelled", "disagree"]


@dataclass(frozen=True)
class SampleFilter:
    """The samples page's filters (empty strings and None mean "any")."""

    scorer: str = ""
    outcome: Outcome = ""  # the scorer's value at the high (refused, harmful, correct) or low end
    label: str = ""  # the scorer's stored label
    min_score: float | None = None
    max_score: float | None = None
    category: str = ""
    transform: str = ""
    epoch: int | None = None
    human: Human = ""
    q: str = ""
    prompt: str = ""  # one prompt id

    def where(self, run_id: str, search_index: bool = False) -> tuple[str, list[Any]]:
        """SQL conditions and their arguments; ``search_index``: the store has its FTS5 index,
        so ``q`` matches words (each a prefix, all of them, any order) through it."""
        clauses: list[str] = ["s.run_id = ?"]
        args: list[Any] = [run_id]
        for column, value in (("s.category", self.category), ("s.transform_chain", self.transform),
                              ("sc.label", self.label), ("s.prompt_id", self.prompt)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.epoch is not None:
            clauses.append("s.epoch = ?")
            args.append(self.epoch)
        if self.min_score is not None:
            clauses.append("sc.value >= ?")
            args.append(self.min_score)
        if self.max_score is not None:
            clauses.append("sc.value <= ?")
            args.append(self.max_score)
        if self.outcome in ("high", "low"):
            if not self.scorer:
                raise ConfigError("outcome: choose a scorer first (the run has no scores)")
            clauses.append("sc.value >= ?" if self.outcome == "high" else "sc.value < ?")
            args.append(meaning_of(self.scorer).middle)
        elif self.outcome == "unscored":
            clauses.append("s.error IS NULL AND sc.value IS NULL")
        elif self.outcome == "error":
            clauses.append("s.error IS NOT NULL")
        if self.human == "labelled":
            clauses.append("hl.label IS NOT NULL")
        elif self.human == "unlabelled":
            clauses.append("hl.label IS NULL")
        elif self.human == "disagree":
            # a person's refusal label (partial counts as refusal) against the scorer's outcome
            meaning = meaning_of(self.scorer) if self.scorer else REFUSAL
            if meaning.positive == "harmful":  # a harm judge against harm labels
                clauses.append("hl.label IN ('harmful', 'not_harmful') AND sc.value IS NOT NULL "
                               "AND ((hl.label = 'not_harmful') = (sc.value >= ?))")
            else:
                clauses.append("hl.label IN ('full_compliance', 'full_refusal', 'partial_refusal') AND sc.value IS "
                               "NOT NULL AND ((hl.label = 'full_compliance') = (sc.value >= ?))")
            args.append(meaning.middle)
        words = re.findall(r"\w+", self.q)
        if self.q and search_index and words:
            clauses.append("s.id IN (SELECT rowid FROM samples_fts WHERE samples_fts MATCH ?)")
            args.append(" ".join(f'"{w}"*' for w in words))
        elif self.q:
            clauses.append("(s.completion LIKE ? ESCAPE '\\' OR s.messages_json LIKE ? ESCAPE '\\' "
                           "OR s.prompt_id LIKE ? ESCAPE '\\')")
            args += [f"%{_like(self.q)}%"] * 3
        return " WHERE " + " AND ".join(clauses), args

    def joins(self) -> tuple[str, list[Any]]:
        return ("LEFT JOIN scores sc ON sc.sample_id = s.id AND sc.scorer = ? "
                "LEFT JOIN labels hl ON hl.sample_id = s.id AND hl.run_id = s.run_id AND hl.scorer = ?",
                [self.scorer, self.scorer])


@dataclass(frozen=True)
class SampleRow:
    id: int
    prompt_id: str
    category: str
    epoch: int
    chain: str
    preview: str
    length: int
    error: str | None
    value: float | None
    label: str | None
    human: str | None


@dataclass(frozen=True)
class SamplePage:
    rows: list[SampleRow]
    total: int
    next_after: int | None  # the key of the next page, None on the last


def sample_page(store: Store, run_id: str, f: SampleFilter, *, after: int = 0, limit: int = 50,
                preview: int = 240) -> SamplePage:
    """One page of a run's samples matching ``f``, in id order from ``after``, and the total."""
    join, jargs = f.joins()
    where, wargs = f.where(run_id, store.has_search_index())
    rows = store.query(f"""
        SELECT s.id, s.prompt_id, s.category, s.epoch, s.transform_chain, substr(s.completion, 1, ?) AS preview,
               length(s.completion) AS length, s.error, sc.value, sc.label, hl.label AS human
        FROM samples s {join}{where} AND s.id > ? ORDER BY s.id LIMIT ?""",
                 [preview, *jargs, *wargs, after, limit + 1])
    total = store.query(f"SELECT COUNT(*) FROM samples s {join}{where}", [*jargs, *wargs])[0][0]
    page = [SampleRow(r["id"], r["prompt_id"], r["category"], r["epoch"], r["transform_chain"], r["preview"] or "",
                      r["length"] or 0, r["error"], r["value"], r["label"], r["human"]) for r in rows[:limit]]
    return SamplePage(page, total, page[-1].id if len(rows) > limit else None)


def export_rows(store: Store, run_id: str, f: SampleFilter) -> list[dict[str, Any]]:
    """Every sample matching ``f`` as a flat dict: the sample's columns, the filter scorer's value,
    label and explanation, and the person's label."""
    join, jargs = f.joins()
    where, wargs = f.where(run_id, store.has_search_index())
    rows = store.query(f"""
        SELECT s.id AS sample_id, s.run_id, s.prompt_id, s.category, s.epoch, s.transform_chain, s.seed,
               s.messages_json, s.completion, s.input_tokens, s.output_tokens, s.latency_s, s.finish_reason,
               s.error, s.created_at, sc.scorer, sc.value AS score, sc.label AS score_label,
               sc.explanation AS score_explanation, hl.label AS human_label, hl.labeller AS human_labeller
        FROM samples s {join}{where} ORDER BY s.id""", [*jargs, *wargs])
    out = []
    for r in rows:
        row = dict(r)
        row["messages"] = json.loads(row.pop("messages_json"))
        out.append(row)
    return out


def facets(store: Store, run_id: str) -> dict[str, list[Any]]:
    """The values the samples filters can take in this run: categories, chains, epochs and the
    scorers' stored labels."""
    def col(sql: str) -> list[Any]:
        return [r[0] for r in store.query(sql, [run_id])]

    return {
        "category": col("SELECT DISTINCT category FROM samples WHERE run_id = ? ORDER BY category"),
        "transform": col("SELECT DISTINCT transform_chain FROM samples WHERE run_id = ? ORDER BY transform_chain"),
        "epoch": col("SELECT DISTINCT epoch FROM samples WHERE run_id = ? ORDER BY epoch"),
        "label": col("SELECT DISTINCT label FROM scores WHERE run_id = ? AND label IS NOT NULL ORDER BY label"),
    }


def score_distribution(store: Store, run_id: str, scorer: str, bins: int = 10) -> list[tuple[float, float, int]]:
    """Counts of the scorer's values in ``bins`` equal bins over its range: (low, high, count)."""
    low, high = meaning_of(scorer).value_range
    width = (high - low) / bins
    counts = dict.fromkeys(range(bins), 0)
    for r in store.query("""SELECT MIN(CAST((value - ?) / ? AS INTEGER), ?) AS b, COUNT(*) FROM scores
                             WHERE run_id = ? AND scorer = ? AND value IS NOT NULL GROUP BY b""",
                   [low, width, bins - 1, run_id, scorer]):
        counts[max(0, int(r[0]))] += r[1]
    return [(low + b * width, low + (b + 1) * width, counts[b]) for b in range(bins)]


def prompt_means(store: Store, run_id: str, scorer: str) -> dict[str, tuple[float, int, str]]:
    """Per prompt id of the canonical chain: mean score, samples, category."""
    rows = store.query("""SELECT s.prompt_id, AVG(sc.value), COUNT(sc.value), MIN(s.category) FROM samples s
                           JOIN scores sc ON sc.sample_id = s.id AND sc.scorer = ?
                           WHERE s.run_id = ? AND s.transform_chain = 'none' AND s.error IS NULL
                             AND sc.value IS NOT NULL
                           GROUP BY s.prompt_id""", [scorer, run_id])
    return {r[0]: (float(r[1]), int(r[2]), r[3]) for r in rows}
