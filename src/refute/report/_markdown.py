"""The same report as Markdown: the decision, the findings and every table, for a pull request or
a wiki. Plots live in the HTML page; here each interval is drawn as a small text bar.

Every text that did not come from this template (replies, prompts, names, categories, study text,
table cells) goes through `refute.report._escape`, so a CommonMark renderer shows it as itself and
never turns it into an element, attribute or link."""

from __future__ import annotations

from collections.abc import Sequence

from refute.report._document import ReportDoc
from refute.report._escape import md_cell, md_code_block, md_text
from refute.report._report_tables import DECISION_TEXT, Table, report_tables

__all__ = ["interval_bar", "render_markdown"]


def interval_bar(low: float, value: float, high: float, width: int = 21) -> str:
    """``---[==*==]-------`` on [0, 1]: the interval in brackets, the estimate as ``*``."""
    def pos(v: float) -> int:
        return max(0, min(width - 1, round(v * (width - 1))))

    cells = ["-"] * width
    lo, hi, mid = pos(low), pos(high), pos(value)
    for i in range(lo, hi + 1):
        cells[i] = "="
    cells[lo], cells[hi] = "[", "]"
    cells[mid] = "*"
    return "".join(cells)


def _table(t: Table | None) -> str:
    if t is None:
        return ""
    lines = [f"#### {md_text(t.title)}", "", "| " + " | ".join(md_cell(h) for h in t.header) + " |",
             "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"_{md_text(t.caption)}_"]
    return "\n".join(lines) + "\n"


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {md_text(i)}" for i in items) if items else "- (nothing)"


def render_markdown(doc: ReportDoc) -> str:
    tables = report_tables(doc)
    out = [f"# {md_text(doc.title)}", "",
           f"refute {md_text(doc.refute_version)} · model {md_text(', '.join(doc.models))} · generated "
           + md_text(doc.generated_at), ""]
    if doc.gate is not None:
        out += [f"**Decision: {doc.gate.decision.replace('_', ' ').upper()}.** {DECISION_TEXT[doc.gate.decision]}", ""]
    out += ["Every number is an estimate with its 95% interval; there is no single safety score. "
            "Plots are in the HTML version of this report.", ""]
    if doc.study is not None:
        s = doc.study.spec
        out += ["## The study", "", f"- **Question:** {md_text(s.question)}",
                f"- **Threat model:** {md_text(s.threat_model)}",
                f"- **Capability or propensity:** {md_text(s.kind)}", f"- **Claim under test:** {md_text(s.claim)}",
                f"- **What would change the author's mind:** {md_text(s.change_my_mind)}",
                f"- **Study file:** {md_text(doc.study.path)} (sha256 `{doc.study.sha256[:12]}`)", ""]
        for edit in doc.edits:
            out += [f"> {md_text(edit)}", ""]
    f = doc.findings
    out += ["## What the evidence says", "", "### Established", _bullets(f.established), "",
            "### Uncertain", _bullets(f.uncertain), "", "### Not ruled out", _bullets(f.not_ruled_out), ""]
    out += ["## Measures", ""]
    if doc.measurements:
        out += ["| measure | estimate | 95% interval | on [0, 1] |", "|---|---|---|---|"]
        for name, m in doc.measurements.items():
            if m is not None:
                out.append(f"| {md_cell(name)} | {m.value:.3f} | [{m.low:.3f}, {m.high:.3f}] | "
                           f"`{interval_bar(m.low, m.value, m.high)}` |")
        out.append("")
    out.append(_table(tables.measures))
    if doc.gate is not None:
        out += ["## Deployment decision", "", _table(tables.gate), _table(tables.safeguards)]
        out += [f"_{md_text(n)}_" for n in doc.gate.notes] + [""]
    cats = tables.categories
    if cats:
        out += ["## Refusal beside over-refusal", ""] + [_table(t) for t in cats]
    if tables.gaps:
        out += ["## Robustness gap per transform, with capability controls", ""]
        out += [_table(t) for t in tables.gaps]
    if tables.judge is not None or tables.run_judge is not None:
        out += ["## Judge calibration", "", _table(tables.judge), _table(tables.run_judge)]
    if doc.experiments:
        out += ["## Experiments: metric against goal", ""]
        out += [e.to_markdown().replace("## ", "### ", 1) for e in doc.experiments]
    if doc.examples:
        out += ["## Examples", "", "_Replies to harmful requests are redacted and transformed prompts shown by "
                "transform and sha256, unless --unredacted._" if not doc.unredacted else "_Unredacted._", ""]
        for e in doc.examples:
            out += [f"### {md_text(e.run_label)} · {md_text(e.category)} · chain {md_text(e.chain)} · "
                    f"{md_text(e.outcome)}", ""]
            out += ["user:", "", md_code_block(e.prompt) if e.prompt is not None else
                    f"_\\[{md_text(e.chain)} prompt, sha256 {e.prompt_sha}\\]_\n"]
            if e.actions:
                out += ["tool calls:", ""] + [f"{i}. `{md_text(t)}` exit {md_text(x)}: {md_text(a)}"
                                              for i, (t, a, x, _) in enumerate(e.actions, 1)] + [""]
            out += ["model:", "", md_code_block(e.reply) if e.reply is not None else
                    f"_\\[reply redacted: {e.reply_chars} characters\\]_\n"]
    out += ["## Runs and reproducibility", "", _table(tables.runs)]
    if doc.study is not None:
        out += ["Rerun with:", "", md_code_block(f"refute study run {doc.study.path}", "sh")]
    out += ["## Methods", "", _table(tables.methods)]
    return "\n".join(out).rstrip() + "\n"
