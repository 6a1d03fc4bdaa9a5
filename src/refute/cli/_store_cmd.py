"""`refute store copy`: move runs between stores (SQLite files and PostgreSQL databases)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from refute.cli._common import err, friendly_errors, out
from refute.store import copy_runs, open_store

store_app = typer.Typer(help="Work with whole stores: copy runs between SQLite and PostgreSQL.",
                        no_args_is_help=True)


@store_app.command("copy")
@friendly_errors
def copy(
    source: Annotated[str, typer.Argument(help="Store to read: a SQLite file or a postgresql:// URL.")],
    destination: Annotated[str, typer.Argument(help="Store to write (created when missing): a SQLite file or a "
                                               "postgresql:// URL.")],
    run: Annotated[list[str] | None, typer.Option("--run", help="Copy only this run (id or unique prefix) and "
                                                  "its parent runs; repeat for more. Default: every run.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a run the destination has already when "
                                          "it differs (default: skip it).")] = False,
) -> None:
    """Copy runs with their samples, scores, calibrations, labels and label queues to another store.

    Sample ids are the destination's own (scores and labels follow them); a run's parent run is
    copied before it; each run is one transaction. A run already in the destination is skipped
    (--replace overwrites it when it differs). Findings, the request cache and `refute serve`'s
    exchange log are not copied.

    Examples:

      refute store copy .refute/refute.db postgresql://refute:secret@db.lab:5432/refute

      refute store copy postgresql://refute@db.lab/refute local.db --run 3f2a --run 9c1e

      refute store copy old.db new.db --replace
    """
    with open_store(source, read_only=True) as src, open_store(destination) as dst:
        report = copy_runs(src, dst, run, replace=replace)
        for run_id in report.copied:
            err.print(f"copied run {run_id}", highlight=False)
        for run_id in report.replaced:
            err.print(f"replaced run {run_id}", highlight=False)
        for run_id, why in report.skipped:
            err.print(f"skipped run {run_id}: {escape(why)}", highlight=False, soft_wrap=True)
        out.print(f"{src.location} -> {dst.location}: {report.summary()}", highlight=False, soft_wrap=True)
