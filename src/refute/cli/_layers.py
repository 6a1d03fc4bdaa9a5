"""`refute layers`: measure a stack of guard layers as a whole."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from refute._paths import store_path
from refute.cli._common import StoreOption, err, friendly_errors, store_from
from refute.guard import load_stack, measure_stack
from refute.models import load_model


def example_stack(store: str | None) -> Path:
    """The shipped example, copied beside the store (once: an edited copy is kept)."""
    target = store_path(store).parent / "layers" / "stack.yaml"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with (files("refute.guard") / "examples" / "stack.yaml").open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


@friendly_errors
def layers(
    stack_file: Annotated[Path | None, typer.Argument(help="The stack file (YAML). Default: the shipped three-layer "
                                                      "example, copied to .refute/layers/stack.yaml.",
                                                      show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec behind the stack.")] = "default",
    store: StoreOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder for stack.json, stack.md and pareto.svg "
                                             "(default: beside the stack file, in STACKNAME-results/).",
                                             show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(help="Harmful base requests (overrides measure.limit).", min=2,
                                              show_default=False)] = None,
    benign_limit: Annotated[int | None, typer.Option(help="Benign requests (overrides measure.benign_limit).", min=2,
                                                     show_default=False)] = None,
    dtype: Annotated[str, typer.Option(help="Weights' dtype for a local model (auto, float32, bfloat16).")] = "auto",
    refit: Annotated[bool, typer.Option(help="Fit probe layers with fit: again even when their file holds this fit.")]
    = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Measure a guard stack as a whole, to see whether its layers' holes line up.

    Reports each layer's catch rate alone, the stack's miss rate against what independent layers
    would give (with an interval for the ratio), the correlation of misses between layers, the
    over-refusal each layer adds, and a Pareto plot of miss rate against over-refusal across
    thresholds.

    Harmful requests are measured plain, transformed and multi-turn (measure.transforms), benign
    look-alikes plain. Every reply is stored as a run (kind 'layers'); the results hold scores
    only. A probe layer with fit: is fitted on part of the requests and measured on the rest.

    Examples:

      refute layers                                   # the shipped three-layer stack on the default model

      refute layers my-stack.yaml -m default --limit 20 --out results/

      refute serve default --stack .refute/layers/stack.yaml   # then serve the same stack
    """
    path = stack_file if stack_file is not None else example_stack(store)
    stack = load_stack(path)
    out_dir = out if out is not None else Path(stack.path).resolve().parent / f"{stack.spec.name}-results"
    err.print(f"refute layers: measuring '{stack.spec.name}' ({path}) on {model}", highlight=False)
    backend = load_model(model, dtype=dtype)
    try:
        with store_from(store) as st:
            result = measure_stack(stack, backend, st, out_dir=out_dir, limit=limit, benign_limit=benign_limit,
                                   refit=refit, progress=progress,
                                   say=lambda s: err.print(s, highlight=False, soft_wrap=True))
    finally:
        backend.close()
    typer.echo(result.to_markdown())
    err.print(f"wrote {out_dir / 'stack.json'}, {out_dir / 'stack.md'} and {out_dir / 'pareto.svg'}", highlight=False)
