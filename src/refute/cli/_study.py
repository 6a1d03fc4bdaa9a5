"""`refute study run`, `refute gate` and `refute report`: from measurements to decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from refute.cli._common import ExitCode, StoreOption, check_output_path, err, friendly_errors, out, store_from
from refute.cli._executor import ExecutorName, ExecutorOption, RayAddressOption, WorkersOption, executor_from
from refute.gate import GateDecision, gate_study, load_policy, study_gate
from refute.report._document import build_report, study_report
from refute.report._html import default_report_path, write_report
from refute.report._report_tables import Table, report_tables
from refute.study import load_study, run_study

study_app = typer.Typer(help="Studies: a safety question, pre-registered thresholds and the runs that answer it.",
                        no_args_is_help=True)

#: Exit codes of `refute gate` for a blocked deployment; 2 stays "bad input" for every command
#: and 1 "failed while running" (see `ExitCode`).
BLOCKED_EXIT = {"restrict": ExitCode.RESTRICT, "pause": ExitCode.PAUSE}

_STYLE = {"ok": "green", "warn": "yellow", "bad": "bold red", "total": "bold"}


def rich_table(t: Table) -> RichTable:
    """A report table (data) as a rich table for the terminal."""
    table = RichTable(title=t.title, caption=t.caption or None, caption_justify="left")
    for h in t.header:
        table.add_column(h, overflow="fold")
    classes = t.row_classes or [""] * len(t.rows)
    for row, cls in zip(t.rows, classes, strict=True):
        table.add_row(*row, style=_STYLE.get(cls))
    return table


def print_decision(gate: GateDecision) -> None:
    colour = {"deploy": "green", "deploy_with_safeguards": "yellow"}.get(gate.decision, "red")
    out.print(f"[bold]gate ({gate.policy}):[/] [bold {colour}]{gate.decision.replace('_', ' ').upper()}[/]")
    for t in gate.thresholds:
        out.print(f"  - {t.id}: {t.reason}", highlight=False)
        for s in t.safeguards:
            for c in s.checks:
                out.print(f"      {s.id}: {c.text}", highlight=False)


@study_app.command("run")
@friendly_errors
def study_run(
    study: Annotated[Path, typer.Argument(help="The study file (YAML).")],
    report: Annotated[bool, typer.Option(help="Write the HTML and Markdown report afterwards.")] = True,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report file (default: <store dir>/reports/<study>-<hash>.html).")] = None,
    unredacted: Annotated[bool, typer.Option("--unredacted", help="Show replies to harmful requests and attack prompts in the report.")] = False,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
    executor: ExecutorOption = ExecutorName.local,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run a study end to end, reusing stored samples.

    Its runs, measures, pre-registered thresholds, the gate decision of its policy, and the report.

    A malformed study (or its policy) is reported with file, line and field, and nothing runs.

    Examples:

      refute study run my-study.yaml

      refute study run my-study.yaml --no-report --store /tmp/s.db

      refute study run my-study.yaml --executor ray --ray-address auto
    """
    loaded = load_study(study)  # every check happens here, before any model loads
    if output is not None:
        check_output_path(output, "--output")
    with store_from(store) as db, executor_from(executor, ray_address, workers):
        result = run_study(loaded, db, progress=progress, on_event=lambda m: err.print(f"[dim]{m}[/]"),
                           gate=study_gate)
        err.print(f"study {loaded.spec.id} (sha256 {loaded.hash12}) stored in {db.path.parent / 'studies' / (loaded.hash12 + '.json')}")
        doc = study_report(db, loaded, result, unredacted=unredacted)
        for edit in doc.edits:  # a study edited after results existed: say so
            err.print(f"[yellow]note:[/] {edit}", highlight=False)
        table = report_tables(doc).measures
        if table is not None:
            out.print(rich_table(table))
        if doc.gate is not None:
            print_decision(doc.gate)
        if report:
            html, md = write_report(doc, output or default_report_path(db.path, doc))
            err.print(f"Markdown: {md}")
            out.print(str(html), highlight=False, soft_wrap=True)


@friendly_errors
def gate(
    policy: Annotated[Path, typer.Argument(help="The deployment policy file (YAML).")],
    study: Annotated[str, typer.Option("--study", "-s", help="The study whose measures the policy reads: its file, or its hash.")],
    store: StoreOption = None,
) -> None:
    """Apply a deployment policy to a study's measures and print the decision with every reason.

    Intervals are read at their conservative end: a threshold is crossed when its upper bound
    crosses (lower bound for 'below'); a safeguard is effective only when its lower bound clears
    (upper bound for 'at_most').

    Exit code, for CI: 0 deploy or deploy with safeguards; 3 restrict; 4 pause; 2 bad input (a
    malformed policy, an unknown study); 1 any other error.

    Examples:

      refute gate policy.yaml --study study.yaml

      refute gate policy.yaml --study 3f2a9c1b || echo "not deployable (exit $?)"
    """
    loaded_policy = load_policy(policy)
    with store_from(store) as db:
        decision = gate_study(db, loaded_policy, study)
    print_decision(decision)
    if decision.blocked:
        err.print(f"[bold red]blocked[/]: {decision.decision}")
        raise typer.Exit(BLOCKED_EXIT[decision.decision])


@friendly_errors
def report(
    target: Annotated[str, typer.Argument(help="A study file, a study hash, or a run id (or unique prefixes).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write (Markdown goes beside it).")] = None,
    unredacted: Annotated[bool, typer.Option("--unredacted", help="Show replies to harmful requests and attack prompts.")] = False,
    policy: Annotated[Path | None, typer.Option(help="Apply this policy instead of the study's own.")] = None,
    store: StoreOption = None,
) -> None:
    """Write a self-contained HTML (and Markdown) report of a study or a run.

    Plots, tables, the gate decision, and what is established, uncertain and not ruled out.

    Replies to harmful requests are redacted and attack prompts shown by transform and hash,
    unless --unredacted.

    Examples:

      refute report study.yaml

      refute report 3f2a9c1b7d4e -o run.html

      refute report study.yaml --unredacted -o /secure/full.html
    """
    if output is not None:
        check_output_path(output, "--output")
    with store_from(store) as db:
        doc = build_report(db, target, unredacted=unredacted, policy=policy)
        html, md = write_report(doc, output or default_report_path(db.path, doc))
    err.print(f"Markdown: {md}")
    out.print(str(html), highlight=False, soft_wrap=True)
