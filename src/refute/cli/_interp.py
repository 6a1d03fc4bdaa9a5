"""`refute interp causal`: does a refusal direction cause refusal? (Arditi et al. 2024)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from refute.cli._common import StoreOption, err, friendly_errors, out, store_from

interp_app = typer.Typer(help="Interpretability that tests causal claims.", no_args_is_help=True)


@interp_app.command("causal")
@friendly_errors
def causal(
    model: Annotated[str, typer.Option("--model", "-m", help="A local model: default, hf:REPO_OR_DIR, gguf:FILE.")] = "default",
    harmful: Annotated[list[str] | None, typer.Option("--harmful", help="Harmful prompts: built-in name or JSONL/CSV file (repeatable). Default: harmful.")] = None,
    harmless: Annotated[list[str] | None, typer.Option("--harmless", help="Harmless prompts (repeatable). Default: benign-lookalike and benign-tasks.")] = None,
    tasks: Annotated[str, typer.Option(help="Tasks with answers for the accuracy cost; 'none' to skip.")] = "benign-tasks",
    n_train: Annotated[int, typer.Option(help="Most training prompts per side (fewer if the pool is small).")] = 128,
    n_val: Annotated[int, typer.Option(help="Validation prompts per side: every choice is made on these.")] = 32,
    n_test: Annotated[int, typer.Option(help="Held-out test prompts per side.")] = 100,
    n_tasks: Annotated[int, typer.Option(help="Held-out tasks for the accuracy cost.")] = 100,
    max_tokens: Annotated[int, typer.Option(help="New tokens per reply.")] = 48,
    layers: Annotated[str | None, typer.Option(help="Candidate layers, e.g. 4-16 or 8,10,12 (default: the first 80%).")] = None,
    positions: Annotated[str, typer.Option(help="Candidate post-instruction positions (negative = from the end).")] = "-1,-2,-3,-4,-5",
    coefficients: Annotated[str, typer.Option(help="Addition coefficients tried in order on validation prompts.")] = "1,1.5,2,3",
    max_kl: Annotated[float, typer.Option(help="Selection filter: most next-token KL on harmless validation tasks under ablation.")] = 0.1,
    max_ce: Annotated[float, typer.Option(help="Selection filter: most CE rise (nats) on harmless validation prompts under ablation.")] = 0.05,
    scorer: Annotated[str, typer.Option(help="Refusal scorer for every condition (refusal_patterns, refusal, ...).")] = "refusal_patterns",
    seed: Annotated[int, typer.Option(help="Splits, random controls and run seeds derive from it.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.")] = 32,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON here.")] = None,
    store: StoreOption = None,
) -> None:
    """Find a refusal direction, choose layer/position/coefficient on validation prompts, and
    measure on held-out prompts: ablation vs baseline vs a norm-matched random control, addition on
    harmless prompts, and the cost (cross-entropy on benign text, task accuracy).

    Every condition is a run in the store (kind 'interp'); differences are paired by prompt.

    Example: refute interp causal --model default --n-test 100
    """
    from refute.interp import CausalConfig, run_causal
    from refute.interp._causal import make_splits
    from refute.models import load_model

    config = CausalConfig(
        harmful=tuple(harmful or ["harmful"]), harmless=tuple(harmless or ["benign-lookalike", "benign-tasks"]),
        tasks=None if tasks == "none" else tasks, n_train=n_train, n_val=n_val, n_test=n_test,
        n_tasks=n_tasks, max_tokens=max_tokens, seed=seed, layers=_int_list(layers) if layers else None,
        positions=tuple(_int_list(positions)), coefficients=tuple(float(c) for c in coefficients.split(",")),
        batch_size=batch_size, scorer=scorer, max_kl=max_kl, max_ce=max_ce,
    )
    make_splits(config)  # fail fast, before loading a model
    with store_from(store) as db:
        backend = load_model(model, dtype=dtype, batch_size=batch_size)
        try:
            result = run_causal(backend, db, config, progress=lambda msg: err.print(f"[dim]{msg}[/]"))
        finally:
            backend.close()
    out.print(result.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    if json_out:
        json_out.write_text(json.dumps(result.to_dict(), indent=1, default=str))
        err.print(f"wrote {json_out}")


def _int_list(text: str) -> list[int]:
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
            values.extend(range(int(lo), int(hi) + 1))
        else:
            values.append(int(part))
    return values
