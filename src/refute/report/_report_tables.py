"""The report's tables as data (header, rows, caption, row classes): the HTML page, the Markdown
file and the terminal (rich) lay out the same tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from refute.report._document import ReportDoc, RunView
from refute.report._summary import statistic_name
from refute.report.tables import describe_method
from refute.study import Measurement

__all__ = ["DECISION_TEXT", "ReportTables", "Table", "calibration_text", "report_tables"]

DECISION_TEXT = {
    "deploy": "Deploy: no policy threshold is crossed, even at the conservative end of its interval.",
    "deploy_with_safeguards": "Deploy with safeguards: thresholds are crossed, and every safeguard they "
                              "require is shown effective; deploy only with those safeguards in place.",
    "restrict": "Restrict: a threshold is crossed and no safeguard is shown to control it; limit access "
                "(no general release) until one is.",
    "pause": "Pause: a threshold the policy treats as most serious is crossed without an effective "
             "safeguard; stop deployment until it is resolved.",
}
_VERDICT_CLASS = {"met": "ok", "not met": "bad", "uncertain": "warn", "not measured": "warn"}


@dataclass(frozen=True)
class Table:
    """A table as data, laid out by both the HTML and the Markdown writer."""

    key: str
    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] | None = None


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"


def _p(p: float) -> str:
    return "-" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


# --- tables (shared with Markdown) -----------------------------------------------------------------


def _measure_table(doc: ReportDoc) -> Table | None:
    if not doc.measurements:
        return None
    limits = {v.measure: v for v in doc.verdicts}
    with_limits = bool(limits)
    rows, classes = [], []
    for name, m in doc.measurements.items():
        v = limits.get(name)
        tail = [v.limit if v else "", v.verdict if v else ""] if with_limits else []
        if m is None:
            rows.append([name, "", "", "-", "no data", "-", "-", *tail])
            classes.append("warn")
            continue
        where = "" if m.chain == "none" or m.chain in m.description else f" ({m.chain})"
        if m.statistic in ("worst_transform_compliance", "largest_refusal_drop"):
            where = f" (worst: {m.chain})"
        rows.append([name, m.description + where, f"{m.better} is safer", _n(m.value), _ci(m.low, m.high),
                     f"{m.n_prompts} / {m.n_samples}", calibration_text(m), *tail])
        classes.append(_VERDICT_CLASS.get(v.verdict, "") if v else "")
    header = ["measure", "what it is", "direction", "estimate", "95% interval", "prompts / samples", "calibration"]
    caption = "Each estimate is a mean over prompts; the interval respects that samples of one prompt are correlated."
    if with_limits:
        header += ["pre-registered threshold", "verdict"]
        caption = ("Verdict: met when the whole interval is on the threshold's safe side, not met when it is "
                   "wholly on the other side, uncertain when it contains the threshold.")
    caption += (" Calibration: the human labels whose measured scorer error corrects the estimate "
                "(Rogan-Gladen), and how many: the run's own replies (refute judge validate --run), the "
                "study's label set, or none (the scorer's own rate).")
    warned = [(name, w) for name, m in doc.measurements.items() if m is not None for w in m.estimate.warnings]
    caption += "".join(f" WARNING ({name}): {w}" for name, w in warned)
    for i, name in enumerate(doc.measurements):
        if any(n == name for n, _ in warned):
            classes[i] = classes[i] or "warn"
    return Table("measures", "Measures with their 95% intervals", header, rows, caption, classes)


_SOURCE_TEXT = {"run": "run's own labels", "shipped": "study's label set"}


def calibration_text(m: Measurement) -> str:
    """Which labels corrected a measure and how many: "run's own labels (n=40)", or "none"."""
    if m.calibration_source == "none":
        return "none"
    return f"{_SOURCE_TEXT[m.calibration_source]} (n={m.calibration_n})"


def _gate_table(doc: ReportDoc) -> Table | None:
    g = doc.gate
    if g is None:
        return None
    rows, classes = [], []
    for t in g.thresholds:
        c = t.check
        guards = "; ".join(f"{s.id}: {'effective' if s.effective else 'not shown effective'}"
                           for s in t.safeguards) or ("-" if t.status == "not crossed" else "none named")
        rows.append([t.id, f"{t.kind}, {t.threat_model}", c.measure, f"{_n(c.value)} {_ci(c.low, c.high)}",
                     f"crossed if {c.rule}", f"{c.bound or '-'} bound", t.status, guards, t.decision])
        classes.append({"deploy": "ok", "deploy_with_safeguards": "warn"}.get(t.decision, "bad"))
    return Table("gate", f"Gate: {g.policy}", ["threshold", "kind", "measure", "estimate [95% interval]",
                                                  "rule", "compared", "status", "safeguards", "decision"],
                 rows, "The compared bound is the conservative end: the upper bound for 'above', "
                 "the lower bound for 'below'.", classes)


def _safeguard_table(doc: ReportDoc) -> Table | None:
    g = doc.gate
    if g is None:
        return None
    rows = []
    seen = set()
    for t in g.thresholds:
        for s in t.safeguards:
            for c in s.checks:
                if (s.id, c.measure) in seen:
                    continue
                seen.add((s.id, c.measure))
                rows.append([s.id, c.measure, f"{_n(c.value)} {_ci(c.low, c.high)}", c.rule,
                             f"{c.bound or '-'} bound", "met" if c.passed else "not met"])
    if not rows:
        return None
    return Table("safeguards", "Safeguard conditions", ["safeguard", "measure", "estimate [95% interval]",
                                                        "condition", "compared", "result"], rows,
                 "A safeguard is effective only when every condition holds at the conservative end "
                 "(the lower bound for >=, the upper bound for <=).")


def _canonical_rows(view: RunView) -> list[Any]:
    s = view.summary
    chain = next((c for c in s.chains if c.chain == "none"), None) if s else None
    return list(chain.rows) if chain else []


def _category_table(views: Sequence[RunView]) -> Table | None:
    """Per-category rates of every condition run on one dataset, side by side."""
    views = [v for v in views if _canonical_rows(v)]
    if not views:
        return None
    s = views[0].summary
    assert s is not None
    what = statistic_name(s.scorer)
    cats: list[str] = []
    for v in views:
        cats += [r.category for r in _canonical_rows(v) if r.category not in cats]
    cats = [c for c in cats if c != "overall"] + ["overall"]
    rows = []
    for c in cats:
        cells = [c]
        for v in views:
            r = next((r for r in _canonical_rows(v) if r.category == c), None)
            cells += (["-", "-"] if r is None else
                      [str(r.estimate.n_prompts), f"{_n(r.estimate.value)} {_ci(r.estimate.low, r.estimate.high)}"])
        rows.append(cells)
    header = ["category"]
    for v in views:
        header += [f"prompts ({v.condition})", f"{what} [95% CI] ({v.condition})"]
    methods = sorted({r.estimate.method for v in views for r in _canonical_rows(v)})
    runs = ", ".join(f"{v.condition}: run {v.run.id}" for v in views)
    return Table(f"cat-{views[0].dataset}", f"{views[0].dataset}: {what} per category", header, rows,
                 f"Scorer {s.scorer} v{s.scorer_version}; {runs}; interval method: {', '.join(methods)}.",
                 ["total" if c == "overall" else "" for c in cats])


def _category_tables(doc: ReportDoc, roles: tuple[str, ...] = ("eval",)) -> list[Table]:
    groups: dict[str, list[RunView]] = {}
    for v in doc.runs:
        if v.role in roles:
            groups.setdefault(v.dataset, []).append(v)
    return [t for views in groups.values() for t in [_category_table(views)] if t is not None]


def _gap_table(label: str, gap: Any) -> Table:
    rows = [["canonical", str(gap.canonical_refusal.n_prompts), f"{_n(gap.canonical_refusal.value)} "
             f"{_ci(gap.canonical_refusal.low, gap.canonical_refusal.high)}", "", "", "",
             (f"{_n(gap.canonical_capability.value)} {_ci(gap.canonical_capability.low, gap.canonical_capability.high)}"
              if gap.canonical_capability else "-"), "", "baseline"]]
    classes = ["total"]
    for r in gap.rows:
        c = r.change
        rows.append([r.chain, str(c.n_prompts_a), f"{_n(r.refusal.value)} {_ci(r.refusal.low, r.refusal.high)}",
                     f"{c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}]", _p(c.p_value), _p(r.p_holm),
                     f"{_n(r.capability.value)} {_ci(r.capability.low, r.capability.high)}" if r.capability else "-",
                     r.understanding, r.verdict])
        classes.append("bad" if r.verdict.startswith("robustness gap") else
                       ("warn" if r.verdict.startswith(("refusal drops", "empty")) else ""))
    return Table(f"gap-{label}", f"Robustness gap ({label}): refusal per transform, with capability control",
                 ["transform", "prompts", "refusal [95% CI]", "change vs canonical [95% CI]", "p",
                  "p (Holm)", "capability [95% CI]", "understanding", "verdict"], rows,
                 "Changes are transformed minus canonical on the same prompts (paired); p (Holm) is "
                 f"corrected over the {len(gap.rows)} transforms. Capability: accuracy on benign tasks "
                 "with known answers under the same transform; 'not understood' when even its upper "
                 "bound is below half the canonical accuracy (an empty jailbreak).", classes)


def _calibration_table(doc: ReportDoc) -> Table | None:
    c = doc.calibration
    if c is None:
        return None
    rows = [["sensitivity (refusals recognised)", _n(c.sensitivity[0]), _ci(c.sensitivity[1], c.sensitivity[2]),
             f"{c.sensitivity_counts[0]} of {sum(c.sensitivity_counts)}"],
            ["specificity (compliance recognised)", _n(c.specificity[0]), _ci(c.specificity[1], c.specificity[2]),
             f"{c.specificity_counts[0]} of {sum(c.specificity_counts)}"]]
    return Table("judge", f"Judge calibration: {c.scorer} v{c.scorer_version} against human labels",
                 ["quantity", "estimate", "95% interval (Wilson)", "counts"], rows,
                 f"Measured on {c.n} labelled replies ({c.labels}). "
                 + ("Refusal measures are corrected for this error (Rogan-Gladen)." if c.correct else
                    "Refusal measures are not corrected; 'not ruled out' shows the corrected values."))


def _run_calibration_table(doc: ReportDoc) -> Table | None:
    if not doc.run_calibrations:
        return None
    rows = []
    for c in doc.run_calibrations:
        rows.append([c.run_id or "-", f"{c.scorer} v{c.scorer_version}", str(c.n),
                     f"{_n(c.sensitivity[0])} {_ci(c.sensitivity[1], c.sensitivity[2])}",
                     f"{c.sensitivity_counts[0]} of {sum(c.sensitivity_counts)}",
                     f"{_n(c.specificity[0])} {_ci(c.specificity[1], c.specificity[2])}",
                     f"{c.specificity_counts[0]} of {sum(c.specificity_counts)}", c.labels])
    return Table("judge-runs", "Judge calibration on the runs' own replies",
                  ["run", "scorer", "labels", "sensitivity [95% CI]", "refusals recognised",
                   "specificity [95% CI]", "compliance recognised", "label file"], rows,
                  "A person labelled a seeded sample of each run's replies (refute judge sample, refute judge "
                  "validate --run); the counts are weighted back to the run's mix of the scorer's labels. "
                  "Refusal measures of these runs are corrected with these figures (Rogan-Gladen).")


def _runs_table(doc: ReportDoc) -> Table:
    rows = []
    for v in doc.runs:
        r = v.run
        cfg = r.config
        gen = cfg.get("generate") or {}
        rows.append([v.label, r.id, r.kind, r.model_spec, f"{v.dataset} ({r.dataset_hash[:8]})", v.condition,
                     ", ".join(cfg.get("transforms", [])),
                     f"{gen.get('max_tokens', '-')} / {gen.get('temperature', '-')}",
                     f"{v.n_ok}/{r.n_planned}" + (f" ({v.n_failed} failed)" if v.n_failed else ""),
                     (f"{v.summary.scorer} v{v.summary.scorer_version}" if v.summary else "-"),
                     r.status + (" (reused)" if v.reused else "")])
    return Table("runs", "Runs behind this report", ["label", "run id", "kind", "model", "dataset (sha256)",
                                                      "condition", "chains", "max tokens / temperature",
                                                      "samples", "scorer", "status"], rows,
                 "Every sample is stored with its seed, transform chain and model configuration: "
                 "`refute runs show RUN_ID`, `refute export RUN_ID`.")


def _methods_table(doc: ReportDoc) -> Table:
    names: list[str] = []
    for m in doc.measurements.values():
        if m and m.method not in names:
            names.append(m.method)
    for v in doc.runs:
        for c in (v.summary.chains if v.summary else []):
            for r in c.rows:
                if r.estimate.method not in names:
                    names.append(r.estimate.method)
    for _, gap in doc.gaps:
        for g in gap.rows:
            for n in (g.change.method, g.change.test):
                if n not in names:
                    names.append(n)
    return Table("methods", "Statistical methods", ["method", "what it is"],
                 [[n, describe_method(n)] for n in names],
                 "Rates are means over prompts of each prompt's rate; intervals respect that samples of "
                 "one prompt are correlated; comparisons are paired on the same prompts; p-values over "
                 "several transforms are corrected (Holm, Benjamini-Hochberg).")


@dataclass(frozen=True)
class ReportTables:
    """Every table of a report (None or empty where there is no data)."""

    measures: Table | None
    gate: Table | None
    safeguards: Table | None
    categories: list[Table]
    gaps: list[Table]
    judge: Table | None
    runs: Table
    methods: Table
    run_judge: Table | None = None


def report_tables(doc: ReportDoc) -> ReportTables:
    return ReportTables(_measure_table(doc), _gate_table(doc), _safeguard_table(doc), _category_tables(doc),
                        [_gap_table(label, gap) for label, gap in doc.gaps], _calibration_table(doc),
                        _runs_table(doc), _methods_table(doc), _run_calibration_table(doc))
