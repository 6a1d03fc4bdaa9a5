"""`refute run`: evaluate a model on a dataset, or resume an interrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refute.cli._common import StoreOption, err, friendly_errors, out, store_from
from refute.errors import ConfigError


@friendly_errors
def run(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec: default, gemma3-270m, hf:REPO_OR_DIR, gguf:FILE, openai:MODEL.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Built-in name (harmful, benign-lookalike, benign-tasks) or a JSONL/CSV file.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts.")] = None,
    epochs: Annotated[int, typer.Option(help="Samples per prompt, each with its own seed.")] = 1,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per reply.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Run seed; each sample's seed derives from it.")] = 0,
    system: Annotated[str | None, typer.Option(help="System prompt (default: the model's own).")] = None,
    template: Annotated[str, typer.Option(help="User message template containing {prompt}.")] = "{prompt}",
    scorer: Annotated[list[str] | None, typer.Option("--scorer", help="Scorer name (repeatable). Default: match for tasks with answers, else refusal (the measured scorer).")] = None,
    transform: Annotated[list[str] | None, typer.Option("--transform", "-t", help="Transform chain such as base64 or rot13+roleplay (repeatable); the canonical prompt always runs too.")] = None,
    adapter: Annotated[str | None, typer.Option(help="Dataset adapter: harmbench, advbench, jailbreakbench, strongreject, xstest.")] = None,
    solver: Annotated[str, typer.Option(help="How each conversation unfolds: single_turn, scripted_escalation (multi-turn, no attacker model), ...")] = "single_turn",
    solver_arg: Annotated[list[str] | None, typer.Option("--solver-arg", help="Solver argument KEY=VALUE (repeatable; values parsed as JSON when they can be), e.g. turns=3.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for openai:MODEL specs.")] = None,
    dtype: Annotated[str, typer.Option(help="Local models: auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    batch_size: Annotated[int | None, typer.Option(help="Local models: prompts per batch (default 32).")] = None,
    concurrency: Annotated[int, typer.Option(help="Remote models: requests in flight.")] = 8,
    resume: Annotated[str | None, typer.Option("--resume", help="Finish the run with this id; nothing completed is redone.")] = None,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Run an eval and store every sample as it completes.

    Examples:

      refute run --model default --dataset harmful --limit 20

      refute run -m default -d benign-tasks --epochs 3 --temperature 0.7

      refute run -m openai:gpt-4o-mini --base-url http://localhost:8000/v1 -d my_prompts.jsonl

      refute run -m default -d harmful --solver scripted_escalation --solver-arg turns=3

      refute run --resume 3f2a9c1b7d4e
    """
    from refute.engine import PluginSpec, TaskConfig, resume_run, run_task
    from refute.models import GenerateConfig, load_model
    from refute.report import print_run_summary

    with store_from(store) as db:
        if resume:
            record = resume_run(resume, db, progress=progress)
        else:
            if not model or not dataset:
                raise ConfigError("refute run needs --model and --dataset (or --resume RUN_ID); see --help")
            if Path(dataset).exists():  # store an absolute path so --resume works from anywhere
                dataset = str(Path(dataset).resolve())
            task = TaskConfig(
                dataset=dataset, dataset_adapter=adapter, limit=limit, epochs=epochs, system=system,
                template=template, seed=seed,
                generate=GenerateConfig(max_tokens=max_tokens, temperature=temperature, top_p=top_p),
                scorers=[PluginSpec(name=s) for s in scorer] if scorer else None,
                transforms=["none", *(transform or [])],
                solver=PluginSpec(name=solver, args=_parse_args(solver_arg or [])),
            )
            from refute.datasets import load_dataset

            load_dataset(dataset, adapter=adapter, limit=limit)  # fail fast, before loading a model
            options = {"dtype": dtype, "batch_size": batch_size, "concurrency": concurrency,
                       "base_url": base_url}
            options = {k: v for k, v in options.items() if v is not None}
            backend = load_model(model, **options)
            try:
                record = run_task(task, backend, db, name=name, load_options=options, progress=progress)
            finally:
                backend.close()
        err.print(f"run [bold]{record.id}[/] {record.status}; store {Path(db.path)}")
        print_run_summary(db, record.id, out)


def _parse_args(pairs: list[str]) -> dict[str, object]:
    """KEY=VALUE pairs; a value is read as JSON when it parses (numbers, booleans), else a string."""
    import json

    args: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--solver-arg '{pair}': expected KEY=VALUE, e.g. turns=3")
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError:
            args[key] = value
    return args
