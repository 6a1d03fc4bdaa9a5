"""`refute interp causal` (does a refusal direction cause refusal? Arditi et al. 2024) and `refute interp probe`."""

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
    report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML page (SVG interval plots, tables, checks) here, and Markdown beside it.")] = None,
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
    model: Annotated[str, typer.Option("--model", "-m", help="A local model: default, hf:REPO_OR_DIR, gguf:FILE.")] = "default",
    position: Annotated[int, typer.Option(help="Token position in the rendered prompt (-1: last).")] = -1,
    kind: Annotated[str, typer.Option(help="logistic or diff_means.")] = "logistic",
    ood_positive: Annotated[list[str] | None, typer.Option("--ood-positive", help="Out-of-distribution class-1 prompts for a second evaluation.")] = None,
    ood_negative: Annotated[list[str] | None, typer.Option("--ood-negative", help="Out-of-distribution class-0 prompts.")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="Where to save the probe (.safetensors); use it with the 'probe' scorer.")] = Path("probe.safetensors"),
    sweep: Annotated[Path | None, typer.Option("--sweep", help="Also write test AUROC by site as an SVG here.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the 60/20/20 train/val/test split and the bootstrap.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.")] = 16,
) -> None:
    """Fit a linear probe separating two sets of prompts, with AUROC and accuracy intervals on
    held-out (and out-of-distribution) prompts, and save it for the 'probe' scorer.

    Example: refute interp probe --positive harmful --negative benign-lookalike --sites resid_pre.4-12
    """
    from refute.interp._probe_fit import fit_probe_on_prompts
    from refute.models import load_model

    if kind not in ("logistic", "diff_means"):
        raise typer.BadParameter(f"unknown probe kind '{kind}': use logistic or diff_means", param_hint="--kind")
    if bool(ood_positive) != bool(ood_negative):
        raise typer.BadParameter("give both --ood-positive and --ood-negative, or neither", param_hint="--ood-positive")
    site_list = _site_list(sites)
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
        sites += [f"{kind}.{layer}" for layer in _int_list(layers)]
    return sites


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
