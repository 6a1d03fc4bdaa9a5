"""`refute demo`: the main job on the default model."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from refute.cli._common import StoreOption, err, friendly_errors, out, store_from


@friendly_errors
def demo(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec to study.")] = "default",
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts of each dataset.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per reply.")] = 48,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
) -> None:
    """Refusal of harmful requests and over-refusal of safe look-alikes, with 95% intervals.

    Runs the model on the built-in `harmful` and `benign-lookalike` datasets and prints each
    rate per category and overall, with its interval and method.

    The first run assembles and converts the embedded model (about a minute); reruns answer
    identical requests from the store's cache.

    Examples:

      refute demo

      refute demo --limit 20 --store /tmp/demo.db
    """
    from refute.demo import DEMO_DATASETS, run_demo
    from refute.models import parse_spec, prepare_embedded
    from refute.report import print_run_summary

    start = time.perf_counter()
    with store_from(store) as db:
        spec = parse_spec(model)
        if spec.kind == "embedded":
            with err.status(f"preparing the embedded model '{model}' (first time: about a minute)"):
                prepare_embedded(model)
        result = run_demo(db, model_spec=model, limit=limit, max_tokens=max_tokens, progress=progress)
        for dataset, run in result.runs.items():
            out.rule(f"{dataset}: {DEMO_DATASETS[dataset]}")
            print_run_summary(db, run.id, out)
        ids = ", ".join(f"{d} {r.id}" for d, r in result.runs.items())
        err.print(f"stored in {db.path} (runs: {ids}) in {time.perf_counter() - start:.0f} s; "
                  "inspect with `refute runs show RUN_ID`, export with `refute export RUN_ID`")
