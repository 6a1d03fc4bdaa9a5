"""`refute runs list|show` and `refute export`."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from refute.cli._common import (
    StoreOption,
    atomic_output,
    check_output_path,
    err,
    friendly_errors,
    out,
    store_from,
)
from refute.report import print_run_summary
from refute.store import export_run

runs_app = typer.Typer(help="List and inspect stored runs.", no_args_is_help=True)


@runs_app.command("list")
@friendly_errors
def list_runs(
    limit: Annotated[int, typer.Option(help="Show the N most recent runs.", min=1, max=1_000_000)] = 20,
    store: StoreOption = None,
) -> None:
    """List runs, newest first.

    Example: refute runs list --limit 5
    """
    with store_from(store) as db:
        table = Table(title=f"runs in {db.location}")
        table.add_column("id", no_wrap=True, min_width=12)
        for col in ("kind", "name", "status", "model", "dataset", "samples", "errors"):
            table.add_column(col, overflow="fold")
        table.add_column("created (UTC)", no_wrap=True)
        for run in db.list_runs(limit):
            ok, bad = db.sample_counts(run.id)
            table.add_row(run.id, run.kind, run.name or "", run.status, run.model_spec, run.dataset_name,
                          f"{ok}/{run.n_planned}", str(bad), run.created_at[:16].replace("T", " "))
        out.print(table)


@runs_app.command("show")
@friendly_errors
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    store: StoreOption = None,
) -> None:
    """Show a run's configuration, progress and rates with intervals.

    Example: refute runs show 3f2a
    """
    with store_from(store) as db:
        run = db.get_run(run_id)
        ok, bad = db.sample_counts(run.id)
        table = Table(show_header=False, title=f"run {run.id}")
        for key, value in [
            ("status", run.status), ("kind", run.kind), ("name", run.name or ""),
            ("model", f"{run.model_spec} ({run.model_revision or 'no revision'})"),
            ("backend", f"{run.model.get('backend')} {run.model.get('details', {}).get('dtype', '')}"),
            ("dataset", f"{run.dataset_name} (sha256 {run.dataset_hash[:12]})"),
            ("samples", f"{ok} completed, {bad} failed, {run.n_planned} planned"),
            ("generate", str(run.config.get("generate"))),
            ("epochs / seed", f"{run.config.get('epochs')} / {run.config.get('seed')}"),
            ("transforms", ", ".join(run.config.get("transforms", []))),
            ("scorers", ", ".join(f"{k} v{v}" for k, v in db.scorers_of(run.id).items())),
            ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items())),
            ("created / finished", f"{run.created_at} / {run.finished_at or '-'}"),
        ]:
            table.add_row(key, value)
        out.print(table)
        if run.status != "completed":
            err.print(f"finish it with: refute run --resume {run.id}")
        print_run_summary(db, run.id, out)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@friendly_errors
def export(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="jsonl or csv.")] = ExportFormat.jsonl,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    store: StoreOption = None,
) -> None:
    """Export a run's samples and scores (one row per sample).

    Examples:

      refute export 3f2a --format csv -o run.csv

      refute export 3f2a | jq .completion
    """
    if output is not None:
        check_output_path(output, "--output")
    with store_from(store) as db:
        run = db.get_run(run_id)  # an unknown id fails here, before any file is opened
        if output is None:
            n = export_run(db, run.id, format.value, sys.stdout)
        else:
            with atomic_output(output) as fh:  # an existing file is replaced only on success
                n = export_run(db, run.id, format.value, fh)
        err.print(f"exported {n} samples" + (f" to {output}" if output else ""))
