"""A finding's two reports, in Markdown, from the same record.

* **vendor**: sent privately to the affected developers: the decision with its reasoning, the
  evidence, and the full reproduction recipe (transform chains, attack settings, system prompts)
  with every cited sample's transcript unredacted.
* **public**: the defensive findings only: rates and intervals, which transforms and attacks
  worked, the affected models; transcripts are redacted, and the recipe is never read.

Before a public report is returned it is checked (`public_leaks`): it must contain none of the
finding's reproduction strings (prompts sent, attack prompts and suffixes, system prompts,
transformed texts: every string of at least `MIN_SECRET_CHARS` characters, and each such line of
it) nor any reply of a cited sample, compared as written and again with Markdown escapes undone,
whitespace collapsed and case folded. A public report is refused, and never returned, when the
check finds anything, when the decision is not final or withholds the finding, and before the end
of a coordinated disclosure's embargo unless an `EmbargoOverride` says who and why; the override is
appended to the finding's log first.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from refute.disclosure._decision import FindingState, finding_state
from refute.disclosure._policy import DisclosurePolicy
from refute.errors import ConfigError, DisclosureError
from refute.report._escape import md_cell, md_code_block, md_text
from refute.store import Store

__all__ = ["MIN_SECRET_CHARS", "EmbargoOverride", "ReportLevel", "build_report", "public_leaks",
           "render_public", "render_vendor", "reproduction_strings"]

ReportLevel = Literal["vendor", "public"]

#: Shorter reproduction strings are not checked (they would match ordinary prose).
MIN_SECRET_CHARS = 12


@dataclass(frozen=True)
class EmbargoOverride:
    """Who publishes before the embargo ends, and why (appended to the finding's log)."""

    by: str
    reason: str


def _est(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def _diff(c: dict[str, Any]) -> str:
    return f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def _header(state: FindingState, level: str) -> list[str]:
    f, d = state.finding, state.decision
    lines = [f"# Finding {f.id}: {md_text(f.title)}", "",
             f"*{level} report*; kind {md_text(f.kind)}; created {md_text(f.created_at)} by "
             f"{md_text(f.created_by)}", "",
             f"- status: {state.status} ({len(state.approvals)}/{state.required} approvals"
             + (f": {', '.join(md_text(a) for a in state.approvals)}" if state.approvals else "") + ")",
             f"- affected models ({len(f.models)}): {', '.join(md_text(m) for m in f.models)}"]
    if d is not None:
        lines += [f"- path: {d.path}" + (f" (embargo until {d.embargo_until.isoformat()})" if d.embargo_until else ""),
                  f"- harm domain: {md_text(d.harm_domain)}; severity: {d.severity}; breadth: {d.breadth} "
                  f"model(s); uplift over public knowledge: {d.uplift}",
                  f"- defender benefit: {md_text(d.defender_benefit)}"]
    return [*lines, ""]


def _evidence(state: FindingState) -> list[str]:
    ev = state.finding.evidence
    lines = ["## Evidence", "", f"Scorer: {md_text(ev.get('scorer'))}; runs: "
             f"{', '.join(md_text(r) for r in state.finding.run_ids)}.", ""]
    if "rows" in ev:
        lines += [f"Canonical refusal rate: {_est(ev.get('canonical_refusal'))}; canonical capability "
                  f"accuracy: {_est(ev.get('canonical_capability'))}.", "",
                  "| transform / attack | refusal rate | change vs canonical | p (Holm) | capability | "
                  "understanding | verdict |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {md_cell(r['chain'])} | {_est(r['refusal'])} | {_diff(r['change'])} | {r['p_holm']:.3g} | "
                  f"{_est(r['capability'])} | {md_cell(r['understanding'])} | {md_cell(r['verdict'])} |"
                  for r in ev["rows"]]
        drops = ev.get("significant_drops") or []
        lines += ["", "Significant drops in refusal (Holm-corrected, alpha "
                  f"{ev.get('alpha')}): {', '.join(md_text(c) for c in drops) or 'none'}.", ""]
    else:
        lines += ["| transform | rate |", "|---|---|"]
        lines += [f"| {md_cell(c)} | {_est(e)} |" for c, e in ev.get("rates", {}).items()]
        lines.append("")
    lines.append("Intervals: 95 %, clustered by prompt; changes are paired on prompts.")
    return [*lines, ""]


def render_public(state: FindingState) -> str:
    """The public report: defensive findings, no operational detail, transcripts redacted."""
    lines = [*_header(state, "public"), *_evidence(state), "## Samples cited (redacted)", ""]
    samples = state.finding.evidence.get("samples", [])
    lines += [f"- sample {s['id']} (run {md_text(s['run_id'])}, {md_text(s['chain'])}, "
              f"{md_text(s['category'])}): prompt and reply withheld" for s in samples] or ["- none"]
    lines += ["", "Operational details (prompts, attack settings, replies) are withheld; the affected "
              "developers have the full reproduction."]
    return "\n".join(lines) + "\n"


def render_vendor(state: FindingState, recipe: dict[str, Any]) -> str:
    """The vendor report: everything, the reproduction recipe and unredacted transcripts included."""
    lines = [*_header(state, "vendor (confidential)"), *_evidence(state)]
    if state.decision is not None:
        lines += ["## Decision reasoning", "", md_text(state.decision.uplift_reasoning), ""]
    lines += ["## Reproduction", ""]
    for run in recipe.get("runs", []):
        lines += [f"### Run {md_text(run['id'])} ({md_text(run.get('role') or 'red-team run')})", "",
                  f"- model: {md_text(run['model_spec'])}; dataset: {md_text(run['dataset'])}; seed: {run.get('seed')}",
                  f"- transform chains: {', '.join(md_text(c) for c in run.get('transforms') or [])}", "",
                  "Settings (solver, system prompt, template, generation):", "",
                  md_code_block(_json({k: run.get(k) for k in ("solver", "system", "template", "generate")}),
                                "json")]
    lines += ["## Transcripts (unredacted)", ""]
    for s in recipe.get("samples", []):
        lines += [f"### Sample {s['id']}: prompt {md_text(s['prompt_id'])}, chain {md_text(s['chain'])}, "
                  f"epoch {s['epoch']}, seed {s['seed']}", ""]
        for m in s.get("messages", []):
            lines += [f"**{md_text(m.get('role', '?'))}**", "", md_code_block(m.get("content", ""))]
        lines += ["**completion**", "", md_code_block(s.get("completion") or "")]
        if s.get("metadata"):
            lines += ["**solver details**", "", md_code_block(_json(s["metadata"]), "json")]
    return "\n".join(lines) + "\n"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def reproduction_strings(recipe: dict[str, Any]) -> dict[str, str]:
    """Every string a public report must not contain -> where it comes from."""
    found: dict[str, str] = {}
    for run in recipe.get("runs", []):
        for text in _strings([run.get("solver"), run.get("system"), run.get("template")]):
            found.setdefault(text, f"run {run['id']}'s settings")
    for s in recipe.get("samples", []):
        for i, m in enumerate(s.get("messages", [])):
            found.setdefault(str(m.get("content", "")), f"sample {s['id']}'s message {i + 1} ({m.get('role')})")
        found.setdefault(s.get("completion") or "", f"sample {s['id']}'s completion")
        for text in _strings(s.get("metadata")):
            found.setdefault(text, f"sample {s['id']}'s solver details")
    out: dict[str, str] = {}
    for text, where in found.items():
        for piece in [text, *text.splitlines()]:
            if len(piece.strip()) >= MIN_SECRET_CHARS:
                out.setdefault(piece.strip(), where)
    return out


_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def public_leaks(text: str, recipe: dict[str, Any]) -> list[str]:
    """Where each reproduction string or cited reply found in ``text`` comes from (empty: none)."""
    plain = _normal(html.unescape(_MD_ESCAPE.sub(r"\1", text)))
    return sorted({where for secret, where in reproduction_strings(recipe).items()
                   if secret in text or _normal(secret) in plain})


def build_report(store: Store, finding_id: str, level: ReportLevel, *, policy: DisclosurePolicy,
                 today: date | None = None, override: EmbargoOverride | None = None) -> str:
    """The finding's report at ``level``; a public one is checked and refused as described above."""
    state = finding_state(store, finding_id, policy)
    fid = state.finding.id
    if level == "vendor":
        return render_vendor(state, store.finding_recipe(fid))
    d = state.decision
    if d is None or state.status != "final":
        raise DisclosureError(f"finding {fid}: no public report before the decision is final (status "
                              f"{state.status}, {len(state.approvals)}/{state.required} approvals)")
    if d.path == "withhold":
        raise DisclosureError(f"finding {fid}: the decision is to withhold it; no public report")
    today = today or date.today()
    if state.embargoed(today) and override is None:
        raise DisclosureError(f"finding {fid} is under embargo until {d.embargo_until}; no public report "
                              "before then unless --override-embargo --reason TEXT --by NAME (logged)")
    text = render_public(state)
    leaks = public_leaks(text, store.finding_recipe(fid))
    if leaks:
        raise DisclosureError(f"finding {fid}: the public report would contain reproduction detail "
                              f"({'; '.join(leaks)}); nothing was written")
    if state.embargoed(today) and override is not None:
        if not override.by.strip() or not override.reason.strip():
            raise ConfigError("--override-embargo needs --by NAME and --reason TEXT")
        store.append_finding_event(fid, "embargo_override", " ".join(override.by.split()), {
            "reason": override.reason, "embargo_until": str(d.embargo_until), "on": today.isoformat(),
            "report_sha256": hashlib.sha256(text.encode()).hexdigest()})
    return text
