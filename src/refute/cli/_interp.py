"""`refute interp causal` (does a refusal direction cause refusal? Arditi et al. 2024), `refute interp probe`,
`refute interp capture`, `refute interp patch` and `refute interp sae train|features`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import typer
from rich.markup import escape

from refute.cli._common import StoreOption, bad_input, check_output_path, err, finite, friendly_errors, out, store_from
from refute.cli._executor import ExecutorName, ExecutorOption, RayAddressOption, WorkersOption, executor_from
from refute.datasets import load_dataset
from refute.errors import ConfigError, ScorerError
from refute.interp import CausalConfig, run_causal
from refute.interp._capture_file import capture_prompts, save_capture
from refute.interp._causal import make_splits
from refute.interp._errors import InterpError
from refute.interp._manifest import build_manifest, manifest_path, write_manifest
from refute.interp._model_config import (
    ModelShape,
    check_sites,
    model_shape,
    peek_model_shape,
)
from refute.interp._patch_run import patch_prompts
from refute.interp._probe_fit import fit_probe_on_prompts
from refute.interp._sae import SAEConfig
from refute.interp._sae_file import load_sae, save_sae
from refute.interp._sae_run import (
    feature_top_prompts,
    features_markdown,
    parse_width,
    train_sae_on_prompts,
)
from refute.interp._sites import SiteKind, parse_site
from refute.models import load_model, parse_spec
from refute.models._edits import file_sha256
from refute.report import write_causal_report
from refute.scorers import list_scorers

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
    exhaustive: Annotated[bool, typer.Option("--exhaustive", help="Ablate every candidate direction on validation prompts (slow) instead of stopping once the first-order estimates rule the rest out.")] = False,
    min_screen: Annotated[int, typer.Option(help="Candidates ablated exactly before the estimates may rule others out.", min=2)] = 8,
    screen_margin: Annotated[float, typer.Option(help="Safety margin of that rule, in RMS residuals of the estimate's fitted line.", min=0.0, callback=finite)] = 3.0,
    per_pass: Annotated[int, typer.Option(help="Candidates ablated in one forward pass (more helps on a GPU, not on a CPU).", min=1)] = 1,
    scorer: Annotated[str, typer.Option(help="Refusal scorer for every condition (refusal_patterns, refusal, ...).")] = "refusal_patterns",
    seed: Annotated[int, typer.Option(help="Splits, random controls and run seeds derive from it.", min=0)] = 0,
    dtype: Annotated[str, typer.Option(help="auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.", min=1)] = 32,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON here.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML page (SVG interval plots, tables, checks) here, and Markdown beside it.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
    store: StoreOption = None,
    executor: ExecutorOption = ExecutorName.local,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Test a refusal direction causally, against a random control, on held-out prompts.

    Finds the direction, chooses layer/position/coefficient on validation prompts, and
    measures on held-out prompts: ablation vs baseline vs a norm-matched random control, addition on
    harmless prompts, and the cost (cross-entropy on benign text, task accuracy).

    Every condition is a run in the store (kind 'interp'); differences are paired by prompt.

    The direction is chosen as in Arditi et al. (best validation ablation score that passes the
    filters), but candidates are ablated best first-order estimate first, and only until no other
    can rank above the choice; --exhaustive ablates all of them.

    Example: refute interp causal --model default --n-test 100
    """
    config = CausalConfig(
        harmful=tuple(harmful or ["harmful"]), harmless=tuple(harmless or ["benign-lookalike", "benign-tasks"]),
        tasks=None if tasks == "none" else tasks, n_train=n_train, n_val=n_val, n_test=n_test,
        n_tasks=n_tasks, max_tokens=max_tokens, seed=seed,
        layers=tuple(_int_list(layers, "--layers")) if layers is not None else None,
        positions=tuple(_int_list(positions, "--positions")),
        coefficients=tuple(_float_list(coefficients, "--coefficients")),
        batch_size=batch_size, scorer=scorer, max_kl=max_kl, max_ce=max_ce,
        exhaustive=exhaustive, min_screen=min_screen, screen_margin=screen_margin, per_pass=per_pass,
    )
    for path, option in ((json_out, "--json"), (report, "--report")):
        if path is not None:
            check_output_path(path, option)
    with bad_input():  # the model spec, datasets, split sizes and scorer; fail before loading a model
        parse_spec(model)
        make_splits(config)
        _check_tasks_and_scorer(config.tasks, scorer)
    with store_from(store) as db, executor_from(executor, ray_address, workers):
        backend = load_model(model, dtype=dtype, batch_size=batch_size)
        try:
            result = run_causal(backend, db, config, progress=lambda msg: err.print(f"[dim]{msg}[/]"), bars=progress)
        finally:
            backend.close()
    out.print(result.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    if json_out:
        json_out.write_text(json.dumps(result.to_dict(), indent=1, default=str))
        err.print(f"wrote {json_out}")
    if report:
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


_MODEL_HELP = ("A local model: default, hf:REPO_OR_DIR, gguf:FILE; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, "
               "+sae:FILE#FEATURES, +lora:DIR (see refute models list).")


@interp_app.command("capture")
@friendly_errors
def capture(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Prompts: built-in dataset or JSONL/CSV file.")],
    sites: Annotated[str, typer.Option("--sites", help="Sites, e.g. resid_pre.4,mlp_out.6 or resid_post.2-5.")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)] = "default",
    positions: Annotated[str, typer.Option(help="last, all (every token; rows of all prompts in order), or positions such as -1,-2 or 0.")] = "last",
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.", min=1)] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The .npz to write (one array per site, prompt_ids, manifest).")] = Path("acts.npz"),
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.", min=1)] = 16,
) -> None:
    """Capture activations of a dataset's prompts at named sites into a compressed .npz.

    Prompts are rendered as generation renders them (chat template). With one position each site
    is an (N prompts x d_model) array; with several, (N x P x d_model); with 'all', one row per
    token and 'token_counts' saying how many belong to each prompt. A manifest (model, dataset hash,
    settings, refute version) is saved in the file and beside it as NAME.manifest.json.

    Example: refute interp capture -m default -d harmful --sites resid_pre.8,mlp_out.8 --limit 50 -o acts.npz
    """
    chosen = _positions(positions)
    site_list = _site_list(sites)
    manifest_file = _outputs(out_path, "--out", suffix=".npz")
    with bad_input():  # the model spec, the dataset and the sites, before loading a model
        data = _load_prompts(dataset, limit)
        _check_against_config(model, site_list)
    backend = _load(model, dtype, batch_size)
    try:
        with bad_input():  # a layer the model lacks, a position past a prompt's end
            check_sites(site_list, model_shape(backend.model))
            err.print(f"[dim]capturing {len(data)} prompts at {', '.join(site_list)}[/]")
            result = capture_prompts(backend, [r.prompt for r in data.records], [r.id for r in data.records],
                                     site_list, positions=chosen, batch_size=batch_size)
        manifest = build_manifest("interp capture", backend=backend, dataset=data, outputs=[out_path], settings={
            "sites": site_list, "positions": positions, "layout": result.layout, "limit": limit, "dtype": dtype,
            "batch_size": batch_size}, results={s: {"shape": list(shape), "mean_norm": norm}
                                                for s, shape, norm in result.summary()})
    finally:
        backend.close()
    save_capture(out_path, result, manifest.model_dump(mode="json"))
    write_manifest(manifest_file, manifest)
    out.print(result.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    err.print(f"wrote {out_path} and {manifest_file}")


class _Direction(StrEnum):
    clean_to_corrupt = "clean_to_corrupt"
    corrupt_to_clean = "corrupt_to_clean"


@interp_app.command("patch")
@friendly_errors
def patch(
    clean: Annotated[str, typer.Option("--clean", help="The clean prompt.")],
    corrupt: Annotated[str, typer.Option("--corrupt", help="The corrupted prompt: as many tokens as the clean one.")],
    answer: Annotated[str, typer.Option("--answer", help="The clean answer: one token (mind a leading space).")],
    wrong: Annotated[str, typer.Option("--wrong", help="The corrupted answer: one token.")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)] = "default",
    sites: Annotated[str, typer.Option("--sites", help="Site kinds (every layer) or sites: resid_pre, mlp_out.0-5, attn_out.3.")] = "resid_pre",
    positions: Annotated[str | None, typer.Option(help="Token positions to patch, e.g. -1,-2 (default: every token).")] = None,
    direction: Annotated[_Direction, typer.Option(help="clean_to_corrupt (denoising: what suffices) or corrupt_to_clean (noising: what is necessary).")] = _Direction.clean_to_corrupt,
    raw: Annotated[bool, typer.Option("--raw", help="Feed the prompts as they are, without the chat template.")] = False,
    json_out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the full result as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write the effects as an SVG heatmap here.")] = None,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16.")] = "auto",
) -> None:
    """Patch activations from one prompt's run into another's and print each site's effect.

    The metric is logit(answer) - logit(wrong) at the last position; a cell's effect is the patched
    run's metric minus the unpatched one's. With --out or --plot, a manifest is saved beside it.

    Example: refute interp patch -m default --clean "The capital of France is" --corrupt "The capital of Italy is" --answer " Paris" --wrong " Rome" --raw --sites resid_pre,mlp_out --plot patch.svg
    """
    kinds = _kind_layers(sites)
    pos = _int_list(positions, "--positions") if positions is not None else None
    manifest_file = None
    for path, option, suffix in ((json_out, "--out", None), (plot, "--plot", ".svg")):
        if path is not None:
            found = _outputs(path, option, suffix=suffix)
            manifest_file = manifest_file or found
    with bad_input():
        _check_against_config(model, [f"{kind}.{max(layers)}" for kind, layers in kinds.items() if layers])
    backend = _load(model, dtype, 1)
    try:
        with bad_input():  # answers that are not single tokens, prompts of unequal length, bad layers
            err.print(f"[dim]patching {', '.join(kinds)} ({direction.value})[/]")
            table = patch_prompts(backend, clean, corrupt, answer, wrong, sites=kinds, positions=pos,
                                  direction=direction.value, chat=not raw)
        manifest = build_manifest("interp patch", backend=backend, outputs=[p for p in (json_out, plot) if p],
                                  settings={"clean": clean, "corrupt": corrupt, "answer": answer, "wrong": wrong,
                                            "sites": sites, "positions": positions, "direction": direction.value,
                                            "chat_template": not raw, "dtype": dtype},
                                  results={"clean": table.clean, "corrupt": table.corrupt})
    finally:
        backend.close()
    out.print(table.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    if json_out:
        json_out.write_text(json.dumps({**table.to_dict(), "manifest": manifest.model_dump(mode="json")}, indent=1))
        err.print(f"wrote {json_out}")
    if plot:
        table.plot(plot)
        err.print(f"wrote {plot}")
    if manifest_file:
        write_manifest(manifest_file, manifest)
        err.print(f"wrote {manifest_file}")


sae_app = typer.Typer(help="Sparse autoencoders: train one on a model's activations, list what its features fire on.",
                      no_args_is_help=True)
interp_app.add_typer(sae_app, name="sae")


@sae_app.command("train")
@friendly_errors
def sae_train(
    site: Annotated[str, typer.Option("--site", help="The one site to train on, e.g. resid_post.6.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Prompts: built-in dataset or JSONL/CSV file.")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)] = "default",
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.", min=1)] = None,
    positions: Annotated[str, typer.Option(help="all (every token), last, or positions such as -1,-2.")] = "all",
    k: Annotated[int, typer.Option("--k", help="Active features per vector (TopK).", min=1)] = 32,
    width: Annotated[str, typer.Option(help="Features: a multiple of the model width (4x) or a count (4096).")] = "4x",
    epochs: Annotated[int, typer.Option(help="Passes over the training vectors.", min=1)] = 10,
    lr: Annotated[float, typer.Option(help="Adam learning rate (above 0).", callback=_positive)] = 4e-4,
    vectors_per_step: Annotated[int, typer.Option(help="Activation vectors per optimiser step.", min=1)] = 1024,
    held_out: Annotated[float, typer.Option(help="Share of prompts kept out of training to measure FVU on (0: none).", min=0.0, max=0.9, callback=finite)] = 0.2,
    seed: Annotated[int, typer.Option(help="Seeds the initialisation, the shuffling and the prompt split.", min=0)] = 0,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The .safetensors to write; use it as BASE+sae:FILE#FEATURES.")] = Path("sae.safetensors"),
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per forward batch.", min=1)] = 16,
) -> None:
    """Train a TopK sparse autoencoder on one site's activations and save it for +sae: model specs.

    Prints the fraction of variance unexplained (FVU), L0 and the share of dead features on the
    training prompts and on held-out prompts. The manifest (NAME.manifest.json) lists both sets.

    Example: refute interp sae train -m default --site resid_post.6 -d harmful --k 32 --width 4x -o sae.safetensors
    """
    chosen = _positions(positions)
    site_list = _site_list(site)
    if len(site_list) != 1:
        raise typer.BadParameter("an SAE reads one site, such as resid_post.6", param_hint="--site")
    manifest_file = _outputs(out_path, "--out", suffix=".safetensors")
    with bad_input():
        n_fixed = parse_width(width)
        if n_fixed is not None and k > n_fixed:
            raise ConfigError(f"--k {k} is more than the {n_fixed} features of --width {width}")
        data = _load_prompts(dataset, limit)
        shape = _check_against_config(model, site_list)
        if shape is not None:
            _check_k(k, width, shape.d_model)
    backend = _load(model, dtype, batch_size)
    try:
        with bad_input():
            shape = model_shape(backend.model)
            check_sites(site_list, shape)
            n_features = _check_k(k, width, shape.d_model)
            config = SAEConfig(n_features=n_features, k=k, lr=lr, epochs=epochs, batch_size=vectors_per_step, seed=seed)
            err.print(f"[dim]capturing {len(data)} prompts at {site_list[0]}, training {n_features} features[/]")
            trained = train_sae_on_prompts(backend, [r.prompt for r in data.records], [r.id for r in data.records],
                                           site_list[0], config=config, positions=chosen, eval_fraction=held_out,
                                           batch_size=batch_size)
        manifest = build_manifest("interp sae train", backend=backend, dataset=data, outputs=[out_path], settings={
            "site": site_list[0], "positions": positions, "k": k, "width": width, "n_features": n_features,
            "epochs": epochs, "lr": lr, "vectors_per_step": vectors_per_step, "held_out": held_out, "seed": seed,
            "limit": limit, "dtype": dtype}, results=trained.results())
        save_sae(trained.sae, out_path, site=site_list[0], model=backend.info.spec)
    finally:
        backend.close()
    write_manifest(manifest_file, manifest)
    out.print(trained.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    err.print(f"wrote {out_path} and {manifest_file}; edit features with -m '{model}+sae:{out_path}#FEATURES'",
              markup=False, highlight=False)


@sae_app.command("features")
@friendly_errors
def sae_features(
    sae: Annotated[Path, typer.Option("--sae", help="An SAE written by refute interp sae train.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Prompts: built-in dataset or JSONL/CSV file.")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)] = "default",
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.", min=1)] = None,
    top: Annotated[int, typer.Option(help="Prompts listed per feature.", min=1)] = 10,
    features: Annotated[str | None, typer.Option(help="Features to list, e.g. 3,40-42 (default: the --n-features with the largest activations).")] = None,
    n_features: Annotated[int, typer.Option(help="How many features to list when --features is not given.", min=1)] = 10,
    json_out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the listing as JSON here (with a manifest beside it).")] = None,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.", min=1)] = 16,
) -> None:
    """List the prompts each SAE feature fires on hardest, with the token where it peaks.

    Every token of every prompt is encoded at the SAE's site; a prompt's score for a feature is
    its largest activation on any token.

    Example: refute interp sae features --sae sae.safetensors -m default -d harmful --limit 200 --top 5
    """
    wanted = _int_list(features, "--features") if features is not None else None
    manifest_file = _outputs(json_out, "--out", suffix=None) if json_out is not None else None
    with bad_input():
        loaded, site = load_sae(sae)
        n_total, d_sae = (int(n) for n in loaded.W_dec.shape)
        bad = [f for f in wanted or () if not 0 <= f < n_total]
        if bad:
            raise ConfigError(f"--features: feature {bad[0]} does not exist; the SAE has {n_total} (0-{n_total - 1})")
        data = _load_prompts(dataset, limit)
        shape = _check_against_config(model, [str(site)])
        if shape is not None and shape.d_model != d_sae:
            raise ConfigError(f"the SAE in {sae} reads {d_sae}-dimensional activations; {model} has {shape.d_model}")
    backend = _load(model, dtype, batch_size)
    try:
        with bad_input():
            shape = model_shape(backend.model)
            check_sites([site], shape)
            if shape.d_model != d_sae:
                raise ConfigError(f"the SAE in {sae} reads {d_sae}-dimensional activations; {model} has {shape.d_model}")
            loaded.to(next(backend.model.parameters()).device)
            err.print(f"[dim]encoding {len(data)} prompts at {site}[/]")
            tops = feature_top_prompts(backend, loaded, str(site), [r.prompt for r in data.records],
                                       [r.id for r in data.records], top=top, features=wanted,
                                       n_features=n_features, batch_size=batch_size)
        manifest = build_manifest("interp sae features", backend=backend, dataset=data,
                                  outputs=[json_out] if json_out else [],
                                  settings={"sae": str(sae), "sae_sha256": file_sha256(sae), "site": str(site),
                                            "top": top, "features": features, "n_features": n_features,
                                            "limit": limit, "dtype": dtype})
    finally:
        backend.close()
    out.print(features_markdown(tops), markup=False, highlight=False, soft_wrap=True)
    if json_out and manifest_file:
        json_out.write_text(json.dumps({"site": str(site), "features": [asdict(t) for t in tops],
                                        "manifest": manifest.model_dump(mode="json")}, indent=1))
        write_manifest(manifest_file, manifest)
        err.print(f"wrote {json_out} and {manifest_file}")


def _positive(value: float) -> float:
    """Option callback: a finite number above zero."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a finite number above 0")
    return value


def _outputs(path: Path, option: str, *, suffix: str | None) -> Path:
    """Check ``path`` (and its suffix) and the manifest beside it; return the manifest's path."""
    check_output_path(path, option)
    if suffix is not None and path.suffix.lower() != suffix:
        hint = " (the format +sae:FILE#FEATURES loads)" if suffix == ".safetensors" else ""
        raise ConfigError(f"{option} {path}: name the file with {suffix}{hint}")
    return check_output_path(manifest_path(path), f"{option} (its manifest)")


def _load_prompts(dataset: str, limit: int | None) -> Any:
    data = load_dataset(dataset, limit=limit)
    if not len(data):
        raise ConfigError(f"--dataset {dataset} has no prompts")
    return data


def _check_against_config(model: str, sites: list[str]) -> ModelShape | None:
    """Parse the spec; when the model's config.json is at hand, refuse sites past its last layer."""
    parse_spec(model)
    for site in sites:
        parse_site(site)  # an unknown kind fails here even when the model's config is not at hand
    shape = peek_model_shape(model)
    if shape is not None:
        check_sites(sites, shape)
    return shape


def _check_k(k: int, width: str, d_model: int) -> int:
    n = parse_width(width, d_model)
    if n is None or k > n:
        raise ConfigError(f"--k {k} is more than the {n} features --width {width} gives this model")
    return n


def _load(model: str, dtype: str, batch_size: int) -> Any:
    err.print(f"[dim]loading {escape(model)}[/]")
    return load_model(model, dtype=dtype, batch_size=batch_size)


def _positions(text: str) -> tuple[int, ...] | Literal["all"]:
    """``last`` -> (-1,), ``all``, or a list of positions."""
    word = text.strip().lower()
    if word == "last":
        return (-1,)
    if word == "all":
        return "all"
    return tuple(_int_list(text, "--positions"))


def _kind_layers(text: str) -> dict[SiteKind, list[int] | None]:
    """``resid_pre,mlp_out.0-2`` -> {resid_pre: None (every layer), mlp_out: [0, 1, 2]}."""
    kinds: dict[SiteKind, list[int] | None] = {}
    for part in text.split(","):
        part = part.strip()
        if part in get_args(SiteKind):
            kinds[part] = None  # type: ignore[index]
            continue
        if "." not in part:
            raise typer.BadParameter(f"unknown site kind '{part}': use resid_pre, resid_post, attn_out or "
                                     "mlp_out, alone (every layer) or with layers (mlp_out.0-5)", param_hint="--sites")
        for name in _site_list(part):
            try:
                s = parse_site(name)
            except InterpError as exc:
                raise typer.BadParameter(f"{exc}; or a kind alone for every layer (resid_pre)",
                                         param_hint="--sites") from None
            if kinds.get(s.kind, []) is not None:
                kinds[s.kind] = sorted({*(kinds.get(s.kind) or []), s.layer})
    return kinds


def _check_tasks_and_scorer(tasks: str | None, scorer: str) -> None:
    """What `make_splits` does not read: the task set (loaded whole) and the scorer's name."""
    if tasks:
        load_dataset(tasks)
    if scorer not in list_scorers():
        raise ScorerError(f"unknown scorer '{scorer}'; known scorers: {', '.join(list_scorers())}")


def _prompts(names: list[str] | None) -> list[str]:
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
