"""The same report as Markdown: the decision, the findings and every table, for a pull request or
a wiki. Plots live in the HTML page; here each interval is drawn as a small text bar."""

from __future__ import annotations

from collections.abc import Sequence

from refute.report._document import ReportDoc
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


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _table(t: Table | None) -> str:
    if t is None:
        return ""
    lines = [f"#### {t.title}", "", "| " + " | ".join(_cell(h) for h in t.header) + " |",
             "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"_{_cell(t.caption)}_"]
    return "\n".join(lines) + "\n"


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {i}" for i in items) if items else "- (nothing)"


def render_markdown(doc: ReportDoc) -> str:
    tables = report_tables(doc)
    out = [f"# {doc.title}", "",
           f"refute {doc.refute_version} · model {', '.join(doc.models)} · generated {doc.generated_at}", ""]
    if doc.gate is not None:
        out += [f"**Decision: {doc.gate.decision.replace('_', ' ').upper()}.** {DECISION_TEXT[doc.gate.decision]}", ""]
    out += ["Every number is an estimate with its 95% interval; there is no single safety score. "
            "Plots are in the HTML version of this report.", ""]
    if doc.study is not None:
        s = doc.study.spec
        out += ["## The study", "", f"- **Question:** {s.question}", f"- **Threat model:** {s.threat_model}",
                f"- **Capability or propensity:** {s.kind}", f"- **Claim under test:** {s.claim}",
                f"- **What would change the author's mind:** {s.change_my_mind}",
                f"- **Study file:** `{doc.study.path}` (sha256 `{doc.study.sha256[:12]}`)", ""]
        out += [f"> {e}" for e in doc.edits]
    f = doc.findings
    out += ["## What the evidence says", "", "### Established", _bullets(f.established), "",
            "### Uncertain", _bullets(f.uncertain), "", "### Not ruled out", _bullets(f.not_ruled_out), ""]
    out += ["## Measures", ""]
    if doc.measurements:
        out += ["| measure | estimate | 95% interval | on [0, 1] |", "|---|---|---|---|"]
        for name, m in doc.measurements.items():
            if m is not None:
                out.append(f"| {name} | {m.value:.3f} | [{m.low:.3f}, {m.high:.3f}] | "
                           f"`{interval_bar(m.low, m.value, m.high)}` |")
        out.append("")
    out.append(_table(tables.measures))
    if doc.gate is not None:
        out += ["## Deployment decision", "", _table(tables.gate), _table(tables.safeguards)]
        out += [f"_{n}_" for n in doc.gate.notes] + [""]
    cats = tables.categories
    if cats:
        out += ["## Refusal beside over-refusal", ""] + [_table(t) for t in cats]
    if tables.gaps:
        out += ["## Robustness gap per transform, with capability controls", ""]
        out += [_table(t) for t in tables.gaps]
    if tables.judge is not None:
        out += ["## Judge calibration", "", _table(tables.judge)]
    if doc.examples:
        out += ["## Examples", "", "_Replies to harmful requests are redacted and transformed prompts shown by "
                "transform and sha256, unless --unredacted._" if not doc.unredacted else "_Unredacted._", ""]
        for e in doc.examples:
            prompt = e.prompt if e.prompt is not None else f"[{e.chain} prompt, sha256 {e.prompt_sha}]"
            reply = e.reply if e.reply is not None else f"[reply redacted: {e.reply_chars} characters]"
            out += [f"- **{e.run_label}** · {e.category} · chain {e.chain} · **{e.outcome}**",
                    f"  - user: {_cell(prompt)}", f"  - model: {_cell(reply)}"]
        out.append("")
    out += ["## Runs and reproducibility", "", _table(tables.runs)]
    if doc.study is not None:
        out += [f"Rerun with `refute study run {doc.study.path}`.", ""]
    out += ["## Methods", "", _table(tables.methods)]
    return "\n".join(out).rstrip() + "\n"
