"""`refute interp causal` (does a refusal direction cause refusal? Arditi et al. 2024) and `refute interp probe`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from refute.cli._common import StoreOption, bad_input, check_output_path, err, finite, friendly_errors, out, store_from

interp_app = typer.Typer(help="Interpretability that tests causal claims.", no_args_is_help=True)


@interp_app.command("causal")
@friendly_errors
def causal(
    model: Annotated[str, typer.Option("--model", "-m", help="A local model: default, hf:REPO_OR_DIR, gguf:FILE; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES, +lora:DIR (see refute models list).")] = "default",
    harmful: Annotated[list[str] | None, typer.Option("--harmful", help="Harmful prompts: built-in name or JSONL/CSV file (repeatable). Default: harmful.")] = None,
    harmless: Annotated[list[str] | None, typer.Option("--harmless", help="Harmless prompts (repeatable). Default: benign-lookalike and benign-tasks.")] = None,
    tasks: Annotated[str, typer.Option(help="Tasks with answers for the accuracy cost; 'none' to skip.")] = "benign-tasks",
    n_train: Annotated[int, typer.Option(help="Most training prompts per side (fewer if the pool is small).", min=1)] = 128,
    n_val: Annotated[int, typer.Option(help="Validation prompts per side: every choice is made on these.", min=1)] = 32,
    n_test: Annotated[int, typer.Option(help="Held-out test prompts per side.", min=1)] = 100,
    n_tasks: Annotated[int, typer.Option(help="Held-out tasks for the accuracy cost.", min=1)] = 100,
    max_tokens: Annotated[int, typer.Option(help="New tokens per reply.", min=1)] = 48,
    layers: Annotated[str | None, typer.Option(help="Candidate layers, e.g. 4-16 or 8,10,12 (default: the first 80%).")] = None,
    positions: Annotated[str, typer.Option(help="Candidate post-instruction positions (negative = from the end).")] = "-1,-2,-3,-4,-5",
    coefficients: Annotated[str, typer.Option(help="Addition coefficients tried in order on validation prompts.")] = "1,1.5,2,3",
    max_kl: Annotated[float, typer.Option(help="Selection filter: most next-token KL on harmless validation tasks under ablation.", min=0.0, callback=finite)] = 0.1,
    max_ce: Annotated[float, typer.Option(help="Selection filter: most CE rise (nats) on harmless validation prompts under ablation.", min=0.0, callback=finite)] = 0.05,
    scorer: Annotated[str, typer.Option(help="Refusal scorer for every condition (refusal_patterns, refusal, ...).")] = "refusal_patterns",
    seed: Annotated[int, typer.Option(help="Splits, random controls and run seeds derive from it.", min=0)] = 0,
    dtype: Annotated[str, typer.Option(help="auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.", min=1)] = 32,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON here.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML page (SVG interval plots, tables, checks) here, and Markdown beside it.")] = None,
    store: StoreOption = None,
) -> None:
    """Test a refusal direction causally, against a random control, on held-out prompts.

    Finds the direction, chooses layer/position/coefficient on validation prompts, and
    measures on held-out prompts: ablation vs baseline vs a norm-matched random control, addition on
    harmless prompts, and the cost (cross-entropy on benign text, task accuracy).

    Every condition is a run in the store (kind 'interp'); differences are paired by prompt.

    Example: refute interp causal --model default --n-test 100
    """
    from refute.interp import CausalConfig, run_causal
    from refute.interp._causal import make_splits
    from refute.models import load_model, parse_spec

    config = CausalConfig(
        harmful=tuple(harmful or ["harmful"]), harmless=tuple(harmless or ["benign-lookalike", "benign-tasks"]),
        tasks=None if tasks == "none" else tasks, n_train=n_train, n_val=n_val, n_test=n_test,
        n_tasks=n_tasks, max_tokens=max_tokens, seed=seed,
        layers=tuple(_int_list(layers, "--layers")) if layers is not None else None,
        positions=tuple(_int_list(positions, "--positions")),
        coefficients=tuple(_float_list(coefficients, "--coefficients")),
        batch_size=batch_size, scorer=scorer, max_kl=max_kl, max_ce=max_ce,
    )
    for path, option in ((json_out, "--json"), (report, "--report")):
        if path is not None:
            check_output_path(path, option)
    with bad_input():  # the model spec, datasets, split sizes and scorer; fail before loading a model
        parse_spec(model)
        make_splits(config)
        _check_tasks_and_scorer(config.tasks, scorer)
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
    if report:
        from refute.interp._causal_report import write_causal_report

        html_path, md_path = write_causal_report(result, report)
        err.print(f"wrote {html_path} and {md_path}")


@interp_app.command("probe")
@friendly_errors
def probe(
    positive: Annotated[list[str], typer.Option("--positive", help="Class-1 prompts: built-in dataset or JSONL/CSV file (repeatable).")],
    negative: Annotated[list[str], typer.Option("--negative", help="Class-0 prompts (repeatable).")],
    sites: Annotated[str, typer.Option("--sites", help="Sites to try, e.g. resid_pre.12 or resid_pre.4-16,mlp_out.8; the best on validation is kept.")],
    model: Annotated[str, typer.Option("--model", "-m", help="A local model: default, hf:REPO_OR_DIR, gguf:FILE; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES, +lora:DIR (see refute models list).")] = "default",
    position: Annotated[int, typer.Option(help="Token position in the rendered prompt (-1: last).")] = -1,
    kind: Annotated[str, typer.Option(help="logistic or diff_means.")] = "logistic",
    ood_positive: Annotated[list[str] | None, typer.Option("--ood-positive", help="Out-of-distribution class-1 prompts for a second evaluation.")] = None,
    ood_negative: Annotated[list[str] | None, typer.Option("--ood-negative", help="Out-of-distribution class-0 prompts.")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="Where to save the probe (.safetensors); use it with the 'probe' scorer.")] = Path("probe.safetensors"),
    sweep: Annotated[Path | None, typer.Option("--sweep", help="Also write test AUROC by site as an SVG here.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the 60/20/20 train/val/test split and the bootstrap.", min=0)] = 0,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.", min=1)] = 16,
) -> None:
    """Fit a linear probe separating two sets of prompts, and save it for the 'probe' scorer.

    AUROC and accuracy come with intervals on held-out (and out-of-distribution) prompts.

    Example: refute interp probe --positive harmful --negative benign-lookalike --sites resid_pre.4-12
    """
    from refute.interp._probe_fit import fit_probe_on_prompts
    from refute.models import load_model, parse_spec

    if kind not in ("logistic", "diff_means"):
        raise typer.BadParameter(f"unknown probe kind '{kind}': use logistic or diff_means", param_hint="--kind")
    if bool(ood_positive) != bool(ood_negative):
        raise typer.BadParameter("give both --ood-positive and --ood-negative, or neither", param_hint="--ood-positive")
    site_list = _site_list(sites)
    for path, option in ((out_path, "--out"), (sweep, "--sweep")):
        if path is not None:
            check_output_path(path, option)
    with bad_input():  # the model spec and every prompt set, before loading a model
        parse_spec(model)
        pos, neg = _prompts(positive), _prompts(negative)
        ood = (_prompts(ood_positive), _prompts(ood_negative)) if ood_positive and ood_negative else None
    backend = load_model(model, dtype=dtype, batch_size=batch_size)
    try:
        fit = fit_probe_on_prompts(backend, pos, neg, site_list, position=position, kind=kind,  # type: ignore[arg-type]
                                   ood=ood, seed=seed, batch_size=batch_size)
    finally:
        backend.close()
    p = fit.probe
    lines = [fit.sweep.to_markdown(), "",
             f"Kept {p.site} (validation AUROC {fit.val_auroc[p.site or '']:.3f}), position {p.position}, {p.kind}."]
    lines += [f"{name}: AUROC {m.auroc}, accuracy {m.accuracy} (n={m.n}, 95% bootstrap)" for name, m in p.metrics.items()]
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    p.save(out_path)
    err.print(f"wrote {out_path}")
    if sweep:
        fit.sweep.plot(sweep)
        err.print(f"wrote {sweep}")


def _check_tasks_and_scorer(tasks: str | None, scorer: str) -> None:
    """What `make_splits` does not read: the task set (loaded whole) and the scorer's name."""
    from refute.datasets import load_dataset
    from refute.errors import ScorerError
    from refute.scorers import list_scorers

    if tasks:
        load_dataset(tasks)
    if scorer not in list_scorers():
        raise ScorerError(f"unknown scorer '{scorer}'; known scorers: {', '.join(list_scorers())}")


def _prompts(names: list[str] | None) -> list[str]:
    from refute.datasets import load_dataset

    return [r.prompt for name in names or [] for r in load_dataset(name).records]


def _site_list(text: str) -> list[str]:
    """``resid_pre.4-6,mlp_out.2`` -> resid_pre.4, resid_pre.5, resid_pre.6, mlp_out.2."""
    sites: list[str] = []
    for part in text.split(","):
        kind, _, layers = part.strip().rpartition(".")
        if not kind:
            raise typer.BadParameter(f"'{part}' is not a site such as resid_pre.12 or resid_pre.4-8", param_hint="--sites")
        sites += [f"{kind}.{layer}" for layer in _int_list(layers, "--sites")]
    return sites


#: The most values a range such as ``4-16`` may expand to (layers and positions are few).
_MAX_RANGE = 10_000


def _int_list(text: str, option: str) -> list[int]:
    """``4-6,8`` -> [4, 5, 6, 8]; a leading ``-`` is a sign (``-1,-2``). Raises BadParameter naming ``option``."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                start, stop = int(lo), int(hi)
                if not 0 <= stop - start < _MAX_RANGE:
                    raise ValueError
                values.extend(range(start, stop + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise typer.BadParameter(f"'{part}' is not a whole number or an increasing range such as 4-16",
                                     param_hint=option) from None
    return values


def _float_list(text: str, option: str) -> list[float]:
    """``1,1.5,2`` -> [1.0, 1.5, 2.0]; every value finite. Raises BadParameter naming ``option``."""
    values: list[float] = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise typer.BadParameter(f"'{part.strip()}' is not a finite number", param_hint=option)
        values.append(value)
    return values
