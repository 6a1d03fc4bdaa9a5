"""`refute finding create|decide|review|report|list|show`: responsible disclosure of findings."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from refute.cli._common import (
    StoreOption,
    atomic_output,
    bad_input,
    check_output_path,
    err,
    friendly_errors,
    out,
    store_from,
)
from refute.disclosure import (
    Decision,
    DisclosurePolicy,
    EmbargoOverride,
    FindingState,
    build_report,
    create_finding,
    decide,
    finding_state,
    load_policy,
    review,
)
from refute.errors import ConfigError

__all__ = ["finding_app"]

finding_app = typer.Typer(help="Findings and their responsible disclosure.", no_args_is_help=True)

PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="Disclosure policy file (default: ./disclosure.yaml if it exists, "
                 "else 2 reviewers and a 90-day embargo).", show_default=False),
]
FindingArg = Annotated[str, typer.Argument(help="Finding id or a unique prefix of it.")]


class Kind(StrEnum):
    robustness_gap = "robustness_gap"
    attack = "attack"
    gate = "gate"


class Level(StrEnum):
    vendor = "vendor"
    public = "public"


class UpliftOpt(StrEnum):
    none = "none"
    marginal = "marginal"
    substantial = "substantial"


class SeverityOpt(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class PathOpt(StrEnum):
    publish = "publish"
    coordinated = "coordinated"
    withhold = "withhold"


def _policy(path: Path | None) -> DisclosurePolicy:
    with bad_input():
        return load_policy(path)


def _sample_ids(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--samples: give sample ids separated by commas (e.g. 12,15), got '{text}'") from None
    if not ids:
        raise ConfigError("--samples: give at least one sample id")
    return ids


def _print_state(state: FindingState) -> None:
    f, d = state.finding, state.decision
    table = Table(show_header=False, title=f"finding {f.id}")
    rows = [("title", f.title), ("kind", f.kind), ("created", f"{f.created_at} by {f.created_by}"),
            ("runs", ", ".join(f.run_ids)), ("models", ", ".join(f.models)),
            ("samples", ", ".join(map(str, f.sample_ids)) or "-"),
            ("status", state.status),
            ("approvals", f"{len(state.approvals)}/{state.required} ({', '.join(state.approvals) or '-'})"
             + (f"; rejected by {', '.join(state.rejections)}" if state.rejections else ""))]
    if d is not None:
        rows += [("path", d.path), ("embargo until", str(d.embargo_until or "-")),
                 ("uplift", f"{d.uplift}: {d.uplift_reasoning}"),
                 ("harm", f"{d.harm_domain}, severity {d.severity}, breadth {d.breadth}"),
                 ("defender benefit", d.defender_benefit)]
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)


@finding_app.command("create")
@friendly_errors
def create(
    run: Annotated[str, typer.Option("--run", help="The red-team (or eval) run the finding is about.")],
    title: Annotated[str, typer.Option("--title", help="One line saying what was found.")],
    samples: Annotated[str | None, typer.Option(
        "--samples", help="Sample ids cited as evidence, comma-separated (default: complied ones, at most 10).",
        show_default=False)] = None,
    kind: Annotated[Kind, typer.Option("--kind", help="robustness_gap, attack (attack rows only) or "
                                       "gate (rates per chain).")] = Kind.robustness_gap,
    by: Annotated[str | None, typer.Option("--by", help="Who creates it (default: login name).",
                                           show_default=False)] = None,
    store: StoreOption = None,
) -> None:
    """Record a finding from a stored run: its rates, intervals, models, samples and reproduction recipe.

    The recipe (prompts sent, transform chains, attack settings) is kept apart; only the vendor
    report shows it.

    Example: refute finding create --run 3f2a --title "base64 bypasses refusal" --samples 12,15
    """
    ids = _sample_ids(samples)
    with store_from(store) as db:
        with bad_input():
            finding = create_finding(db, run, title=title, kind=kind.value, sample_ids=ids, by=by)
        out.print(finding.id)
        err.print(f"finding {finding.id}: {len(finding.sample_ids)} samples cited, models "
                  f"{escape(', '.join(finding.models))}; next: refute finding decide {finding.id} ...")


@finding_app.command("decide")
@friendly_errors
def decide_cmd(
    finding: FindingArg,
    uplift: Annotated[UpliftOpt, typer.Option("--uplift", help="Uplift over public knowledge.")],
    uplift_reasoning: Annotated[str, typer.Option("--uplift-reasoning", help="Why: what is public, what is new.")],
    harm_domain: Annotated[str, typer.Option("--harm-domain", help="cyber, bio, fraud, ...")],
    severity: Annotated[SeverityOpt, typer.Option("--severity", help="Worst realistic misuse.")],
    defender_benefit: Annotated[str, typer.Option("--defender-benefit", help="What defenders gain.")],
    path: Annotated[PathOpt, typer.Option("--path", help="publish, coordinated or withhold.")],
    by: Annotated[str, typer.Option("--by", help="Who makes the decision, by name.")],
    embargo_until: Annotated[datetime | None, typer.Option(
        "--embargo-until", formats=["%Y-%m-%d"], help="coordinated: end of the embargo (default: today "
        "plus the policy's embargo_days_default).", show_default=False)] = None,
    breadth: Annotated[int | None, typer.Option("--breadth", min=0, help="Models affected (default: the "
                                                "finding's models).", show_default=False)] = None,
    policy: PolicyOption = None,
    store: StoreOption = None,
) -> None:
    """Record the dual-use decision of a finding; a change supersedes the last one and voids its approvals.

    Example: refute finding decide 9c1e --uplift marginal --uplift-reasoning "public encodings"
    --harm-domain cyber --severity medium --defender-benefit "filters can decode" --path coordinated --by alice
    """
    rules = _policy(policy)
    with store_from(store) as db, bad_input():
        f = db.get_finding(finding)
        until = embargo_until.date() if embargo_until else None
        if path is PathOpt.coordinated and until is None:
            until = date.today() + timedelta(days=rules.embargo_days_default)
        choice = Decision(uplift=uplift.value, uplift_reasoning=uplift_reasoning, harm_domain=harm_domain,
                          severity=severity.value, breadth=len(f.models) if breadth is None else breadth,
                          defender_benefit=defender_benefit, path=path.value, embargo_until=until)
        event = decide(db, f.id, choice, by=by, policy=rules)
    voided = event.payload.get("voids_approvals") or []
    err.print(f"decision recorded (event {event.seq})" + (f"; voids the approvals of {escape(', '.join(voided))}"
                                                          if voided else "")
              + f"; it needs {rules.reviewers_required} approvals: refute finding review {f.id} "
              "--reviewer NAME --approve")


@finding_app.command("review")
@friendly_errors
def review_cmd(
    finding: FindingArg,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name, as it will be recorded.")],
    approve: Annotated[bool | None, typer.Option("--approve/--reject", help="Sign the decision off, or reject it.",
                                                 show_default=False)] = None,
    comment: Annotated[str | None, typer.Option("--comment", help="Why.", show_default=False)] = None,
    policy: PolicyOption = None,
    store: StoreOption = None,
) -> None:
    """Approve or reject a finding's current decision under your own name; each reviewer signs once.

    Example: refute finding review 9c1e --reviewer bob --approve --comment "embargo is long enough"
    """
    if approve is None:
        raise ConfigError("--approve or --reject: say which")
    rules = _policy(policy)
    with store_from(store) as db:
        with bad_input():
            db.get_finding(finding)
        state = review(db, finding, reviewer=reviewer, approve=approve, comment=comment, policy=rules)
    err.print(f"finding {state.finding.id}: {state.status}, {len(state.approvals)}/{state.required} approvals")


@finding_app.command("report")
@friendly_errors
def report_cmd(
    finding: FindingArg,
    level: Annotated[Level, typer.Option("--level", help="vendor (full reproduction, private) or public "
                                         "(defensive findings, checked for leaks).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Markdown file to write.")],
    override_embargo: Annotated[bool, typer.Option("--override-embargo", help="Publish before the embargo "
                                                   "ends (logged with --by and --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the embargo is overridden.",
                                               show_default=False)] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who overrides the embargo.", show_default=False)] = None,
    policy: PolicyOption = None,
    store: StoreOption = None,
) -> None:
    """Write a finding's vendor or public report in Markdown; a public one that leaks detail is refused.

    A public report needs a final decision, not withhold, and no running embargo (or an override).
    Nothing is written when it is refused (exit 1).

    Examples:

      refute finding report 9c1e --level vendor -o vendor.md

      refute finding report 9c1e --level public -o public.md
    """
    check_output_path(output, "--output")
    if override_embargo and not ((reason or "").strip() and (by or "").strip()):
        raise ConfigError("--override-embargo needs --reason TEXT and --by NAME (both are logged)")
    if not override_embargo and (reason is not None or by is not None):
        raise ConfigError("--reason and --by go with --override-embargo")
    rules = _policy(policy)
    override = EmbargoOverride(by=by or "", reason=reason or "") if override_embargo else None
    with store_from(store) as db:
        with bad_input():
            db.get_finding(finding)
        text = build_report(db, finding, level.value, policy=rules, override=override)
    with atomic_output(output) as fh:
        fh.write(text)
    err.print(f"wrote the {level.value} report to {escape(str(output))}")


@finding_app.command("list")
@friendly_errors
def list_cmd(policy: PolicyOption = None, store: StoreOption = None) -> None:
    """List findings, newest first, with their review status, path and embargo.

    Example: refute finding list
    """
    rules = _policy(policy)
    with store_from(store) as db:
        table = Table(title=f"findings in {db.location}")
        for col in ("id", "status", "approvals", "path", "embargo until"):
            table.add_column(col, no_wrap=True)
        for col in ("title", "models"):
            table.add_column(col, overflow="fold")
        for f in db.list_findings():
            s = finding_state(db, f.id, rules)
            d = s.decision
            table.add_row(f.id, s.status, f"{len(s.approvals)}/{s.required}", d.path if d else "-",
                          str(d.embargo_until or "-") if d else "-", escape(f.title), escape(", ".join(f.models)))
        out.print(table)


@finding_app.command("show")
@friendly_errors
def show_cmd(finding: FindingArg, policy: PolicyOption = None, store: StoreOption = None) -> None:
    """Show a finding, its decision and review state, and its whole event log.

    Example: refute finding show 9c1e
    """
    rules = _policy(policy)
    with store_from(store) as db:
        with bad_input():
            state = finding_state(db, finding, rules)
        _print_state(state)
        out.print("event log (append-only, oldest first):")
        for e in state.events:
            out.print(f"  #{e.seq}  {e.at}  {escape(e.actor)}  {e.kind}: {escape(_detail(e.kind, e.payload))}",
                      highlight=False, soft_wrap=True)


def _detail(kind: str, payload: dict[str, Any]) -> str:
    if kind == "decision":
        d = payload.get("decision") or {}
        text = f"path {d.get('path')}" + (f" until {d.get('embargo_until')}" if d.get("embargo_until") else "")
        if payload.get("supersedes"):
            text += f"; supersedes event {payload['supersedes']}"
        if payload.get("voids_approvals"):
            text += f"; voids the approvals of {', '.join(map(str, payload['voids_approvals']))}"
        return text
    if kind == "review":
        verdict = "approve" if payload.get("approve") else "reject"
        comment = f": {payload['comment']}" if payload.get("comment") else ""
        return f"{verdict} decision event {payload.get('decision_seq')}{comment}"
    if kind == "embargo_override":
        return f"embargo until {payload.get('embargo_until')} overridden: {payload.get('reason')}"
    return str(payload.get("title", ""))
