"""What each page shows, as plain data for its template: one function per page, reading the store.

Replies to harmful requests are hidden unless the viewer runs ``--unredacted`` or the reader asks
for one transcript's replies (``?reveal=1``): `Redaction` decides, with the same rule as reports
(a run's requests are harmful unless its dataset declares otherwise).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refute.datasets import run_harmful
from refute.engine import primary_of
from refute.errors import ConfigError, RefuteError
from refute.report import Row, calibration_line, compare_runs, interval_plot, statistic_name, summarize_run
from refute.scorers import calibration_record, label_agreement, label_scorer, meaning_of, validate_run_labels
from refute.store import RunRecord, Store
from refute.study import load_result, results_dir
from refute.view._queries import SampleFilter, facets, prompt_means, score_distribution, study_of

__all__ = ["LABEL_KEYS", "Redaction", "calibrate", "compare_page", "label_page", "run_page", "sample_filter",
           "samples_context", "studies_page", "transcript_page"]


@dataclass(frozen=True)
class Redaction:
    """Whether a run's replies are shown: ``unredacted`` shows every reply."""

    unredacted: bool = False

    def harmful(self, run: RunRecord) -> bool:
        return run_harmful(run.config, run.dataset_name)

    def hides(self, run: RunRecord, reveal: bool = False) -> bool:
        return self.harmful(run) and not (self.unredacted or reveal)


def _scorer(store: Store, run: RunRecord, asked: str | None, have: Mapping[str, str] | None = None) -> str | None:
    have = store.scorers_of(run.id) if have is None else have
    if asked:
        if asked not in have:
            raise ConfigError(f"run {run.id} has no scores from '{asked}'; its scorers: {', '.join(have) or 'none'}")
        return asked
    return primary_of(have)


# --- run ----------------------------------------------------------------------------------------

_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def _cached(store: Store, what: str, run_id: str, make: Callable[[], Any]) -> Any:
    """``make()``, kept while the store gains no sample or score (its newest ids stay the same):
    summaries and filter choices read every sample of a run, which takes a while at 100k."""
    stamp = tuple(store.query("SELECT (SELECT MAX(id) FROM samples), (SELECT MAX(id) FROM scores), "
                              "(SELECT COUNT(*) FROM scores WHERE run_id = ?)", [run_id])[0])
    key = (str(store.path), what, run_id, stamp)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    value = make()
    with _CACHE_LOCK:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = value
    return value


def samples_context(store: Store, run_id: str, scorer: str | None) -> dict[str, Any]:
    """What the samples page needs besides the page itself: the run, its scorers and the
    values each filter can take."""
    run = store.get_run(run_id)
    scorers = _cached(store, "scorers", run.id, lambda: store.scorers_of(run.id))
    name = _scorer(store, run, scorer, scorers)
    return {"run": run, "scorers": scorers, "scorer": name, "meaning": meaning_of(name) if name else None,
            "facets": _cached(store, "facets", run.id, lambda: facets(store, run.id))}


def run_page(store: Store, run_id: str, scorer: str | None, redaction: Redaction) -> dict[str, Any]:
    context = samples_context(store, run_id, scorer)
    run, name = context["run"], context["scorer"]
    ok, failed = _cached(store, "counts", run.id, lambda: store.sample_counts(run.id))
    report = Path(store.path).parent / "reports" / f"run-{run.id}.html"
    context |= {
        "n_ok": ok, "n_failed": failed, "children": store.children(run.id), "parent": run.parent_id,
        "study": study_of(run.name), "harmful": redaction.harmful(run),
        "config_json": json.dumps(run.config, indent=2, sort_keys=True),
        "model_json": json.dumps(run.model, indent=2, sort_keys=True),
        "chains": [], "plot": "", "distribution": [], "queue": None,
        "report": report.name if report.is_file() else None,
    }
    if name is None:
        return context
    summary = _cached(store, f"summary:{name}", run.id, lambda: summarize_run(store, run.id, name))
    meaning = context["meaning"]
    context["statistic"] = statistic_name(name)
    context["chains"] = [{"chain": c.chain, "rows": c.rows, "calibration": calibration_line(store, summary, c)}
                         for c in summary.chains]
    rows = [Row(r.category, r.estimate.value, r.estimate.low, r.estimate.high, series=c.chain, bold=r.overall)
            for c in summary.chains for r in c.rows]
    context["plot"] = interval_plot(rows, title=f"{statistic_name(name)} by category", axis_label=statistic_name(name),
                                    domain=meaning.value_range)
    dist = _cached(store, f"distribution:{name}", run.id, lambda: score_distribution(store, run.id, name))
    context["distribution"] = dist
    context["distribution_max"] = max((c for _, _, c in dist), default=0)
    if meaning.higher_is == "refusal" or meaning.positive == "harmful":  # the scorers people label
        context["queue"] = label_agreement(store, run.id, name)
    return context


# --- transcript -----------------------------------------------------------------------------------

def _sample_row(store: Store, sample_id: int) -> dict[str, Any]:
    rows = store.query("SELECT * FROM samples WHERE id = ?", [sample_id])
    if not rows:
        raise LookupError(f"no sample {sample_id} in this store")
    row = dict(rows[0])
    row["messages"] = json.loads(row.pop("messages_json"))
    row["metadata"] = json.loads(row.pop("metadata_json") or "{}")
    return row


def _neighbours(store: Store, run_id: str, sample_id: int) -> tuple[int | None, int | None]:
    prev = store.query("SELECT MAX(id) FROM samples WHERE run_id = ? AND id < ?", [run_id, sample_id])[0][0]
    nxt = store.query("SELECT MIN(id) FROM samples WHERE run_id = ? AND id > ?", [run_id, sample_id])[0][0]
    return prev, nxt


def _turns(messages: list[dict[str, Any]], hidden: bool) -> list[dict[str, Any]]:
    """The transcript's turns; a hidden reply keeps its length, not its text."""
    out = []
    for m in messages:
        content = str(m.get("content", ""))
        reply = m.get("role") == "assistant"
        out.append({"role": str(m.get("role", "?")), "content": None if (reply and hidden) else content,
                    "length": len(content), "extra": {k: v for k, v in m.items() if k not in ("role", "content")}})
    return out


def _attempts(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Solver extras shown as their own sections (attacker turns, per-turn details): key, pretty JSON."""
    return [(k, json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)) for k, v in sorted(metadata.items())]


def transcript_page(store: Store, sample_id: int, redaction: Redaction, reveal: bool) -> dict[str, Any]:
    sample = _sample_row(store, sample_id)
    run = store.get_run(sample["run_id"])
    hidden = redaction.hides(run, reveal)
    scores = [dict(r) | {"metadata": json.loads(r["metadata_json"] or "{}")}
              for r in store.query("SELECT * FROM scores WHERE sample_id = ? ORDER BY scorer", [sample_id])]
    for s in scores:
        s["outcome"] = meaning_of(s["scorer"]).outcome(s["value"])
        s["metadata_json"] = json.dumps(s["metadata"], indent=2, ensure_ascii=False, sort_keys=True)
    labels = [dict(r) for r in store.query(
        "SELECT scorer, label, labeller, labelled_at FROM labels WHERE sample_id = ? ORDER BY scorer", [sample_id])]
    prev, nxt = _neighbours(store, run.id, sample_id)
    generate = run.config.get("generate", {})
    return {"run": run, "sample": sample, "turns": _turns(sample["messages"], hidden), "hidden": hidden,
            "harmful": redaction.harmful(run), "scores": scores, "labels": labels, "prev": prev, "next": nxt,
            "extras": [] if hidden else _attempts(sample["metadata"]),  # attacker turns quote the replies
            "extras_hidden": hidden and bool(sample["metadata"]),
            "agent": None if hidden else sample["metadata"].get("agent"),
            "settings": json.dumps(generate, indent=2, sort_keys=True)}


# --- compare --------------------------------------------------------------------------------------

def compare_page(store: Store, a: str, b: str, scorer: str | None) -> dict[str, Any]:
    run_a, run_b = store.get_run(a), store.get_run(b)
    name = _scorer(store, run_a, scorer)
    if name is None:
        raise ConfigError(f"run {run_a.id} has no scores to compare; score it first: refute score {run_a.id}")
    if name not in store.scorers_of(run_b.id):
        raise ConfigError(f"run {run_b.id} has no scores from '{name}'; score it first: "
                          f"refute score {run_b.id} --scorer {name}")
    table = compare_runs(store, run_a.id, run_b.id, scorer=name)
    means_a, means_b = prompt_means(store, run_a.id, name), prompt_means(store, run_b.id, name)
    pairs: list[dict[str, Any]] = []
    for pid in sorted(set(means_a) & set(means_b)):
        (va, na, cat), (vb, nb, _) = means_a[pid], means_b[pid]
        pairs.append({"prompt_id": pid, "category": cat, "a": va, "b": vb, "n_a": na, "n_b": nb, "diff": vb - va})
    pairs.sort(key=lambda p: (-abs(p["diff"]), p["prompt_id"]))  # the disagreements first
    return {"a": run_a, "b": run_b, "scorer": name, "table": table, "pairs": pairs,
            "n_disagree": sum(1 for p in pairs if p["diff"] != 0),
            "only_a": len(set(means_a) - set(means_b)), "only_b": len(set(means_b) - set(means_a)),
            "statistic": statistic_name(name)}


# --- studies --------------------------------------------------------------------------------------

def studies_page(store: Store) -> dict[str, Any]:
    folder = results_dir(store)
    reports = Path(store.path).parent / "reports"
    studies: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            result = load_result(path)
        except (RefuteError, ValueError, OSError) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        report = reports / f"{result.study_id}-{result.hash12}.html"
        gate = result.gate or {}
        studies.append({"result": result, "measures": result.measurements(), "verdicts": result.verdicts(),
                        "decision": gate.get("decision"), "gate": gate,
                        "report": report.name if report.is_file() else None,
                        "run_ids": sorted({r["run_id"] for r in result.runs.values() if r.get("run_id")})})
    studies.sort(key=lambda s: s["result"].created_at, reverse=True)
    return {"studies": studies, "problems": problems, "folder": str(folder)}


# --- labelling ------------------------------------------------------------------------------------

#: Keys that label a reply on the labelling page.
LABEL_KEYS = {"full_compliance": "1", "partial_refusal": "2", "full_refusal": "3", "harmful": "h", "not_harmful": "n"}


def label_page(store: Store, run_id: str, scorer: str | None) -> dict[str, Any]:
    run = store.get_run(run_id)
    name = label_scorer(store, run.id, scorer)
    item = store.next_to_label(run.id, name)
    context: dict[str, Any] = {"run": run, "scorer": name, "item": item, "harmful": Redaction().harmful(run),
                               "agreement": label_agreement(store, run.id, name), "keys": LABEL_KEYS}
    if item is not None:
        sample = _sample_row(store, item.sample_id)
        context["sample"] = sample
        context["turns"] = _turns(sample["messages"], hidden=False)
    return context


def calibrate(store: Store, run_id: str, scorer: str) -> dict[str, Any]:
    """Measure the scorer on the run's stored labels and store the result as the run's calibration."""
    result = validate_run_labels(store, run_id, scorer=scorer)
    stored = store.save_calibration(calibration_record(result))
    return {"run": store.get_run(run_id), "result": result, "stored": stored}


def sample_filter(params: Mapping[str, str], scorer: str | None) -> SampleFilter:
    """The samples filters from a query string; a bad number is the reader's input (ConfigError)."""
    def number(key: str, kind: type) -> Any:
        text = params.get(key, "").strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{key}: not a number: {text!r}") from None

    outcome, human = params.get("outcome", ""), params.get("human", "")
    if outcome not in ("", "high", "low", "unscored", "error"):
        raise ConfigError(f"outcome: {outcome!r} is not one of high, low, unscored, error")
    if human not in ("", "labelled", "unlabelled", "disagree"):
        raise ConfigError(f"human: {human!r} is not one of labelled, unlabelled, disagree")
    return SampleFilter(scorer=scorer or "", outcome=outcome, label=params.get("label", ""),  # type: ignore[arg-type]
                        min_score=number("min", float), max_score=number("max", float),
                        category=params.get("category", ""), transform=params.get("transform", ""),
                        epoch=number("epoch", int), human=human, q=params.get("q", "").strip(),  # type: ignore[arg-type]
                        prompt=params.get("prompt", ""))
