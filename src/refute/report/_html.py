"""One self-contained HTML page: inline CSS and SVG, no script, no external resource.

The page answers, in order: what was measured and what the gate decided (at a glance), the
study's question and claim, what is established / uncertain / not ruled out, the gate's reasons,
then the evidence: measures, refusal beside over-refusal, the robustness gap and its capability
controls, judge calibration, interpretability effects, examples (redacted), runs and methods.
A section without data is left out and listed as such. There is no single safety score.
Every text is inserted through `refute.report._escape.html_text`, the report's one escaping rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from refute.report._document import ReportDoc, RunView
from refute.report._escape import html_text, write_page
from refute.report._experiments import experiment_section
from refute.report._markdown import render_markdown
from refute.report._plots import PALETTE, Row, interval_plot, paired_plot
from refute.report._report_tables import (
    DECISION_TEXT,
    ReportTables,
    Table,
    _category_table,
    report_tables,
)
from refute.scorers import meaning_of

__all__ = ["default_report_path", "render_html", "write_report"]

_NUMERIC = re.compile(r"^[-+<\[]?[0-9.]")  # cells that must not wrap

# --- plots -------------------------------------------------------------------------------------------


def measures_plot(doc: ReportDoc) -> str:
    limits = {v.measure: v for v in doc.verdicts}
    rows = []
    for name, m in doc.measurements.items():
        if m is None:
            continue
        v = limits.get(name)
        rows.append(Row(name, m.value, m.low, m.high, series=f"{m.better} is safer",
                        threshold=v.threshold if v else None,
                        threshold_label=f"{name}: pre-registered {v.limit}" if v else ""))
    top = max((r.high for r in rows), default=1.0)  # a ratio or an experiment's figure may pass 1
    return interval_plot(rows, title="Every measure with its 95% interval", domain=(0.0, max(1.0, math.ceil(top))),
                         axis_label="rate (or change in rate)" if top <= 1 else "value", zero=0.0)


def gate_plot(doc: ReportDoc) -> str:
    """Every interval the gate compared, with the policy's limit; red where it counts against deployment."""
    g = doc.gate
    if g is None:
        return ""
    rows = []
    bad, good = PALETTE[3], PALETTE[2]
    for t in g.thresholds:
        c = t.check
        if c.value is not None and c.low is not None and c.high is not None:
            rows.append(Row(f"{t.id}: {c.measure}", c.value, c.low, c.high, threshold=c.threshold,
                            threshold_label=f"crossed if {c.rule}", colour=bad if c.passed else good))
        for sg in t.safeguards:
            for x in sg.checks:
                if any(r.label == f"{sg.id}: {x.measure}" for r in rows):
                    continue
                if x.value is not None and x.low is not None and x.high is not None:
                    rows.append(Row(f"{sg.id}: {x.measure}", x.value, x.low, x.high,
                                    threshold=x.threshold, threshold_label=f"effective if {x.rule}",
                                    colour=good if x.passed else bad))
    return interval_plot(rows, title="What the gate compared (red: counts against deployment)",
                         axis_label="estimate and 95% interval; dashed: the policy's limit",
                         threshold_legend="policy limit", width=900, label_width=370)


def refusal_plots(doc: ReportDoc) -> list[str]:
    """One plot per dataset: per-category rates of every condition run on it."""
    by_dataset: dict[str, list[RunView]] = {}
    for v in doc.runs:
        if v.role == "eval" and v.summary and meaning_of(v.summary.scorer).higher_is == "refusal":
            by_dataset.setdefault(v.dataset, []).append(v)
    plots = []
    for dataset, views in by_dataset.items():
        harmful = views[0].harmful
        rows = []
        for v in views:
            canonical = next((c for c in v.summary.chains if c.chain == "none"), None) if v.summary else None
            for r in canonical.rows if canonical else []:
                rows.append(Row(r.category, r.estimate.value, r.estimate.low, r.estimate.high,
                                series=v.condition, bold=r.overall))
        title = ("Refusal of harmful requests (higher is safer)" if harmful else
                 "Over-refusal of safe look-alikes (lower is better)")
        plots.append(interval_plot(rows, title=title, axis_label=f"refusal rate on {dataset}", width=530,
                                   notes=False))
    return plots


def gap_plots(doc: ReportDoc) -> list[str]:
    out = []
    colour = {"robustness gap": PALETTE[3], "refusal drops, but": PALETTE[1], "empty jailbreak": "#999999",
              "refuses more": PALETTE[2], "no significant": PALETTE[0]}
    for label, gap in doc.gaps:
        left, right = [], []
        for r in gap.rows:
            c = next((v for k, v in colour.items() if r.verdict.startswith(k)), PALETTE[0])
            left.append(Row(r.chain, r.change.difference, r.change.low, r.change.high, colour=c))
            if r.capability is not None:
                right.append(Row(r.chain, r.capability.value, r.capability.low, r.capability.high, colour=c))
        cap = gap.canonical_capability
        out.append(paired_plot(
            left, right, title=f"Robustness gap ({label}): refusal change per transform, beside the capability control",
            left_label="change in refusal vs canonical (paired)",
            right_label="accuracy on benign tasks, same transform",
            right_reference=cap.value if cap else None,
            right_reference_label=f"canonical {cap.value:.2f}" if cap else "",
            width=1080, legend={"robustness gap": PALETTE[3], "partly empty": PALETTE[1], "empty jailbreak": "#999999",
                    "no significant change": PALETTE[0], "refuses more": PALETTE[2]}))
    return out


def capability_plots(doc: ReportDoc) -> list[str]:
    out = []
    for label, gap in doc.gaps:
        cap = gap.canonical_capability
        if cap is None:
            continue
        rows = [Row("canonical", cap.value, cap.low, cap.high, bold=True)]
        for r in gap.rows:
            if r.capability is not None:
                colour = "#999999" if r.understanding == "not understood" else (
                    PALETTE[1] if r.understanding == "degraded" else PALETTE[2])
                rows.append(Row(r.chain, r.capability.value, r.capability.low, r.capability.high,
                                colour=colour, threshold=cap.value / 2,
                                threshold_label="half the canonical accuracy: below it (upper bound) = not understood",
                                note=f"{r.capability.value:.2f} {r.understanding}"))
        out.append(interval_plot(rows, title=f"Capability control ({label}): accuracy on benign tasks per transform",
                                 axis_label="accuracy (match)", threshold_legend="half the canonical accuracy"))
    return out


def calibration_plot(doc: ReportDoc) -> str:
    c = doc.calibration
    if c is None:
        return ""
    rows = [Row("sensitivity", *c.sensitivity), Row("specificity", *c.specificity)]
    return interval_plot(rows, title=f"Judge calibration: {c.scorer} against human labels",
                         axis_label="share recognised correctly", width=640)


# --- layout ------------------------------------------------------------------------------------------

_CSS = """
:root { --ok:#1b7f3b; --warn:#a86400; --bad:#b3261e; --ink:#1d1d1f; --muted:#5f6368; --line:#dadce0; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px;
     border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 16px; margin: 20px 0 6px; }
.sub { color: var(--muted); margin: 0 0 14px; font-size: 13px; }
nav { font-size: 13px; margin: 10px 0 18px; } nav a { margin-right: 12px; color: #0b57d0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 12px 0; background:#fff; }
.decision { font-size: 20px; font-weight: 700; padding: 6px 12px; border-radius: 6px; display: inline-block;
            color: #fff; letter-spacing: .02em; }
.decision.deploy { background: var(--ok); } .decision.deploy_with_safeguards { background: var(--warn); }
.decision.restrict { background: var(--bad); } .decision.pause { background: #5c0b07; }
.grid3 { display: block; }
.grid3 .card h3 { margin-top: 0; } .est h3 { color: var(--ok); } .unc h3 { color: var(--warn); }
.nro h3 { color: var(--bad); }
.grid3 ul { padding-left: 18px; margin: 0; } .grid3 li { margin-bottom: 6px; font-size: 14px; }
ul.why li { margin-bottom: 8px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f4; font-weight: 600; }
tr.total td { font-weight: 600; } tr.ok td:last-child { color: var(--ok); font-weight: 600; }
tr.warn td:last-child { color: var(--warn); font-weight: 600; }
tr.bad td:last-child { color: var(--bad); font-weight: 600; }
td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
.caption { color: var(--muted); font-size: 12px; margin: 2px 0 14px; }
dl { display: grid; grid-template-columns: 190px 1fr; gap: 6px 14px; margin: 8px 0; }
dt { font-weight: 600; color: var(--muted); } dd { margin: 0; }
.plots { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
svg.plot { max-width: 100%; height: auto; }
.note { background: #fff8e1; border-left: 4px solid #f9ab00; padding: 8px 12px; margin: 10px 0; font-size: 14px; }
.muted { color: var(--muted); } code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; border-radius: 6px; white-space: pre-wrap; }
.example { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; font-size: 13px; }
.example .who { font-weight: 600; color: var(--muted); } .redacted { color: var(--muted); font-style: italic; }
@media (max-width: 900px) { .grid3 { grid-template-columns: 1fr; } dl { grid-template-columns: 1fr; } }
"""


def _table_html(t: Table | None) -> str:
    if t is None:
        return ""
    head = "".join(f"<th>{html_text(h)}</th>" for h in t.header)
    body = []
    for i, row in enumerate(t.rows):
        cls = (t.row_classes or [""] * len(t.rows))[i]
        body.append(f'<tr class="{cls}">' + "".join(
            f'<td class="num">{html_text(c)}</td>' if _NUMERIC.match(c) else f"<td>{html_text(c)}</td>"
            for c in row) + "</tr>")
    caption = f'<p class="caption">{html_text(t.caption)}</p>' if t.caption else ""
    return (f'<h3>{html_text(t.title)}</h3><table data-table="{html_text(t.key)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{caption}')


def _badge(decision: str) -> str:
    return f'<span class="decision {decision}">{html_text(decision.replace("_", " ").upper())}</span>'


def _list(items: Sequence[str]) -> str:
    if not items:
        return '<p class="muted">Nothing in this category.</p>'
    return "<ul>" + "".join(f"<li>{html_text(i)}</li>" for i in items) + "</ul>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{html_text(title)}</h2>{body}</section>'


def _glance(doc: ReportDoc, tables: ReportTables) -> str:
    parts = []
    if doc.gate is not None:
        g = doc.gate
        parts.append(f'<div class="card"><p>{_badge(g.decision)}&nbsp; {html_text(DECISION_TEXT[g.decision])}</p>'
                     f'<p><b>Why</b> (policy: {html_text(g.policy)}):</p><ul class="why">{_why(doc)}</ul></div>')
    n_samples = sum(v.n_ok for v in doc.runs)
    scorers = sorted({f"{v.summary.scorer} v{v.summary.scorer_version}" for v in doc.runs if v.summary})
    experiments = (f" and {len(doc.experiments)} experiment{'s' if len(doc.experiments) != 1 else ''} "
                   f"({html_text(', '.join(e.experiment for e in doc.experiments))}, each with its own section)"
                   if doc.experiments else "")
    measured = (f'{n_samples} replies of {html_text(", ".join(doc.models))} in {len(doc.runs)} stored '
                f'run{"s" if len(doc.runs) != 1 else ""}, scored by {html_text(", ".join(scorers) or "no scorer")}'
                if doc.runs else f"the model {html_text(', '.join(doc.models) or '-')}")
    parts.append(f'<p><b>What was measured:</b> {measured}{experiments}. '
                 'Every number below is an <b>estimate with its 95% interval</b>: the range of values '
                 'the data cannot rule out. Each measure answers its own question; there is '
                 '<b>no single safety score</b>. Verdicts and the gate read intervals at their '
                 'conservative end.</p>')
    parts.append(_table_html(tables.measures))
    return "".join(parts)


def _why(doc: ReportDoc) -> str:
    g = doc.gate
    assert g is not None
    items = []
    for t in g.thresholds:
        c = t.check
        m = doc.measurements.get(c.measure)
        name = f"{html_text(m.description)} ({html_text(c.measure)})" if m else html_text(c.measure)
        if c.value is None:
            what = f"{name} was not measured, so the threshold counts as crossed"
        else:
            end = c.high if c.bound == "upper" else c.low
            how = "high" if c.bound == "upper" else "low"
            verdict = "crossed" if t.status == "crossed" else "not crossed"
            what = (f"{name} could be as {how} as <b>{end:.3f}</b> (estimate {c.value:.3f}); the threshold is "
                    f"crossed if {html_text(c.rule)}: <b>{verdict}</b>")
        mark = "✗" if t.status != "not crossed" else "✓"
        lines = [f"{mark} <b>{html_text(t.id)}</b>: {html_text(t.description)}", what]
        for s in t.safeguards:
            failing = [x.text for x in s.checks if not x.passed]
            lines.append(f"required safeguard <b>{html_text(s.id)}</b>: " + (
                "shown effective" if s.effective else "not shown effective (" + html_text("; ".join(failing)) + ")"))
        if t.status != "not crossed" and not t.safeguards:
            lines.append("the policy names no safeguard for this threshold")
        lines.append(f"&rarr; <b>{html_text(t.decision.replace('_', ' '))}</b>")
        items.append("<li>" + "<br>".join(lines) + "</li>")
    return "".join(items)


def _study_section(doc: ReportDoc) -> str:
    if doc.study is None:
        return ""
    s = doc.study.spec
    items = [("Question", s.question), ("Threat model", s.threat_model), ("Capability or propensity", s.kind),
             ("Claim under test", s.claim), ("What would change the author's mind", s.change_my_mind),
             ("Model", ", ".join(doc.models)),
             ("Study file", f"{doc.study.path} (sha256 {doc.study.sha256[:12]}…, first run "
                            f"{doc.result.first_created_at if doc.result else '-'})")]
    body = "<dl>" + "".join(f"<dt>{html_text(k)}</dt><dd>{html_text(v)}</dd>" for k, v in items) + "</dl>"
    if s.thresholds:
        body += "<h3>Pre-registered thresholds</h3><ul>" + "".join(
            f"<li><b>{html_text(t.measure)}</b> {html_text(str(t.safe_if))}"
            + (f" — {html_text(t.rationale)}" if t.rationale else "") + "</li>" for t in s.thresholds) + "</ul>"
    for e in doc.edits:
        body += f'<p class="note">{html_text(e)}</p>'
    return _section("study", "The study", body)


def _examples_html(doc: ReportDoc) -> str:
    if not doc.examples:
        return ""
    note = ("A few stored samples per run; 'refused', 'complied', 'correct' are the scorer's labels, "
            "with the error measured under judge calibration. "
            + ("Shown unredacted at the reader's request (--unredacted)." if doc.unredacted else
               "Replies to harmful requests are redacted, and transformed (attack) prompts are shown only "
               "by their transform and the sha256 of their text; `refute report ... --unredacted` shows them."))
    blocks = []
    for e in doc.examples:
        prompt = (html_text(e.prompt) if e.prompt is not None else
                  f'<span class="redacted">[{html_text(e.chain)} prompt, sha256 {e.prompt_sha}]</span>')
        reply = (html_text(e.reply) if e.reply is not None else
                 f'<span class="redacted">[reply redacted: {e.reply_chars} characters]</span>')
        system = f'<div><span class="who">system:</span> {html_text(e.system)}</div>' if e.system else ""
        if e.actions:
            rows = "".join(f"<tr><td>{html_text(t)}</td><td><pre>{html_text(a)}</pre></td><td>{html_text(x)}</td>"
                           f"<td><pre>{html_text(o)}</pre></td></tr>" for t, a, x, o in e.actions)
            system += ('<table class="actions"><tr><th>tool</th><th>arguments</th><th>exit</th><th>output</th></tr>'
                       f"{rows}</table>")
        blocks.append(f'<div class="example"><div class="muted">{html_text(e.run_label)} · {html_text(e.category)} · '
                      f'{html_text(e.prompt_id)} · chain {html_text(e.chain)} · <b>{html_text(e.outcome)}</b>'
                      f'</div>{system}'
                      f'<div><span class="who">user:</span> {prompt}</div>'
                      f'<div><span class="who">model:</span> {reply}</div></div>')
    return _section("examples", "Examples", f'<p class="note">{html_text(note)}</p>' + "".join(blocks))


def render_html(doc: ReportDoc) -> str:
    """The whole page as one string."""
    tables = report_tables(doc)
    sections: list[tuple[str, str, str]] = []  # (id, title, html)
    missing: list[str] = []

    sections.append(("glance", "At a glance", _glance(doc, tables)))
    study = _study_section(doc)
    if study:
        sections.append(("study", "The study", study))
    f = doc.findings
    sections.append(("findings", "What the evidence says",
                     '<p class="muted">Generated from the intervals, not written by hand.</p><div class="grid3">'
                     f'<div class="card est"><h3>Established</h3>{_list(f.established)}</div>'
                     f'<div class="card unc"><h3>Uncertain</h3>{_list(f.uncertain)}</div>'
                     f'<div class="card nro"><h3>Not ruled out</h3>{_list(f.not_ruled_out)}</div></div>'))
    if doc.gate is not None:
        notes = "".join(f'<p class="caption">{html_text(n)}</p>' for n in doc.gate.notes)
        sections.append(("gate", "Deployment decision",
                         f"<p>{_badge(doc.gate.decision)} &nbsp;{html_text(DECISION_TEXT[doc.gate.decision])}</p>"
                         + f'<div class="plots">{gate_plot(doc)}</div>'
                         + _table_html(tables.gate) + _table_html(tables.safeguards) + notes))
    else:
        missing.append("deployment decision (" + ("the study names no policy)" if doc.source == "study" else
                                                  "a single run has no policy; report a study)"))
    if doc.measurements:
        sections.append(("measures", "Measures", f'<div class="plots">{measures_plot(doc)}</div>'))
    refusal = refusal_plots(doc)
    if refusal:
        sections.append(("refusal", "Refusal beside over-refusal",
                         '<p>Refusing harmful requests is only useful if safe requests that look similar are '
                         'still answered: each condition is shown on both.</p>'
                         f'<div class="plots">{"".join(refusal)}</div>'
                         + "".join(_table_html(t) for t in tables.categories)))
    else:
        missing.append("refusal beside over-refusal (no refusal-scored eval runs)")
    if doc.gaps:
        sections.append(("gap", "Robustness gap per transform",
                         '<p>The same harmful requests, reworded off-distribution. A drop in refusal counts as a '
                         'robustness gap only when the model still understands the transformed request.</p>'
                         f'<div class="plots">{"".join(gap_plots(doc))}</div>'
                         + "".join(_table_html(t) for t in tables.gaps)))
        caps = capability_plots(doc)
        if caps:
            sections.append(("capability", "Capability controls",
                             "<p>Benign tasks with known answers under each transform: can the model still "
                             "read the transformed request? (can't versus won't)</p>"
                             f'<div class="plots">{"".join(caps)}</div>'))
        else:
            missing.append("capability controls (no capability run)")
    else:
        missing += ["robustness gap (no transformed runs)", "capability controls (no capability run)"]
    if doc.calibration is not None or tables.run_judge is not None:
        sections.append(("judge", "Judge calibration", f'<div class="plots">{calibration_plot(doc)}</div>'
                         + _table_html(tables.judge) + _table_html(tables.run_judge)))
    else:
        missing.append("judge calibration (no run's own replies were labelled: refute judge sample, then "
                       "refute judge validate --run" + ("; the study has no calibration block)"
                                                         if doc.source == "study" else ")"))
    interp = [v for v in doc.runs if v.run.kind == "interp"]
    if interp:
        sections.append(("interp", "Interpretability effects",
                         "".join(_table_html(_category_table([v])) for v in interp)))
    else:
        missing.append("interpretability effects (no intervention runs)")
    if doc.experiments:
        sections.append(("experiments", "Experiments: metric against goal",
                         "<p>Where the number optimised and the goal it stands for come apart, measured: each "
                         "experiment's figures carry 95% intervals over its units (prompts, tasks, seeds, "
                         "questions).</p>" + "".join(experiment_section(e, level=3) for e in doc.experiments)))
    ex = _examples_html(doc)
    if ex:
        sections.append(("examples", "Examples", ex))
    runs_body = _table_html(tables.runs)
    if doc.study is not None:
        runs_body += (f"<p>Rerun: <code>refute study run {html_text(doc.study.path)}</code> (identical requests "
                      "come from the store's cache). Study file as run:</p>"
                      f"<details><summary>study file (sha256 {doc.study.sha256})</summary>"
                      f"<pre>{html_text(doc.study.text)}</pre></details>")
    if doc.policy_text:
        runs_body += (f"<details><summary>policy file as applied</summary><pre>{html_text(doc.policy_text)}</pre>"
                      "</details>")
    sections.append(("runs", "Runs and reproducibility", runs_body))
    sections.append(("methods", "Methods", _table_html(tables.methods)))

    if missing:
        note = f'<p class="caption">Not in this report, for lack of data: {html_text("; ".join(missing))}.</p>'
        sections[0] = (sections[0][0], sections[0][1], sections[0][2] + note)
    nav = "".join(f'<a href="#{sid}">{html_text(title)}</a>' for sid, title, _ in sections)
    body = "".join(html if html.startswith("<section") else _section(sid, title, html)
                   for sid, title, html in sections)
    sub = (f"refute {doc.refute_version} · {'study' if doc.source == 'study' else 'run'} report · model "
           f"{', '.join(doc.models)} · generated {doc.generated_at}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html_text(doc.title)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{html_text(doc.title)}</h1><p class=\"sub\">{html_text(sub)}</p><nav>{nav}</nav>{body}"
            f'<p class="caption">Made by refute. Intervals are 95% unless stated; no single score '
            "summarises safety.</p></main></body></html>\n")


def write_report(doc: ReportDoc, path: str | Path) -> tuple[Path, Path]:
    """Write the HTML page to ``path`` and the Markdown beside it (same name, ``.md``)."""
    return write_page(path, render_html(doc), render_markdown(doc))


def default_report_path(store_path: str | Path, doc: ReportDoc) -> Path:
    """``<store dir>/reports/<study id>-<hash12>.html`` or ``.../run-<id>.html``."""
    folder = Path(store_path).parent / "reports"
    if doc.study is not None:
        return folder / f"{doc.study.spec.id}-{doc.study.hash12}.html"
    return folder / f"run-{doc.runs[0].run.id}.html"
