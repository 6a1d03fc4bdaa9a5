"""`refute demo`: the full example study on the default model, ending with its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refute.cli._common import StoreOption, bad_input, check_output_path, err, friendly_errors, out, store_from
from refute.cli._study import print_decision, rich_table
from refute.demo import run_demo
from refute.models import parse_spec
from refute.report._gap_table import gap_table
from refute.report._report_tables import report_tables


@friendly_errors
def demo(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec to study; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES, +lora:DIR (see refute models list).")] = "default",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report file (default: <store dir>/reports/...).")] = None,
    unredacted: Annotated[bool, typer.Option("--unredacted", help="Show replies to harmful requests and attack prompts in the report.")] = False,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
) -> None:
    """A whole safety study of the default model, from question to deployment decision.

    Measures refusal of harmful requests and over-refusal of safe look-alikes (with and without
    a safety system prompt), the robustness gap under six transforms with capability controls,
    and the refusal scorer's error against human labels; applies an example deployment policy
    at the conservative end of every interval; writes an HTML and Markdown report and prints
    its path. The study and policy files are copied next to the store so you can edit and rerun
    them with `refute study run`.

    The first run takes under 10 minutes on 2 CPU cores (about a minute of it prepares the
    model); a rerun reuses the stored runs.

    Examples:

      refute demo

      refute demo --store /tmp/demo.db -o /tmp/demo.html
    """
    with bad_input():
        parse_spec(model)
    if output is not None:
        check_output_path(output, "--output")
    with store_from(store) as db:
        result = run_demo(db, model_spec=model, output=output, unredacted=unredacted, progress=progress,
                          on_event=lambda m: err.print(f"[dim]{m}[/]"))
        doc = result.report
        out.rule(f"[bold]{doc.title}")
        tables = report_tables(doc)
        if tables.measures is not None:
            out.print(rich_table(tables.measures))
        for t in tables.categories:
            out.print(rich_table(t))
        for _, gap in doc.gaps:
            out.print(gap_table(gap))
        if doc.gate is not None:
            print_decision(doc.gate)
        err.print(f"study file: {result.study.path} (sha256 {result.study.hash12}); store {db.location}; "
                  f"{result.seconds:.0f} s")
        err.print(f"Markdown report: {result.markdown}")
        out.print(f"report: {result.html}", highlight=False, soft_wrap=True)
