"""`refute run`: evaluate a model on a dataset, or resume an interrupted run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from refute.agents import resolve_sandbox
from refute.cli._common import StoreOption, endpoint_urls, err, finite, friendly_errors, loaded_models, out, store_from
from refute.cli._executor import ExecutorName, ExecutorOption, RayAddressOption, WorkersOption, executor_from
from refute.datasets import load_dataset
from refute.engine import PluginSpec, TaskConfig, check_helpers, get_solver, resume_run, run_task
from refute.errors import ConfigError
from refute.models import GenerateConfig, parse_spec
from refute.report import print_run_summary
from refute.scorers import get_scorer

#: Options that define a run; a resumed run keeps its own and refuses new ones.
_TASK_OPTIONS = ("dataset", "limit", "epochs", "max_tokens", "temperature", "top_p", "seed", "system",
                 "template", "scorer", "transform", "adapter", "solver", "solver_arg", "name", "dtype",
                 "batch_size", "harm")
#: TaskConfig / GenerateConfig fields -> the option that sets them, for error messages.
_OPTION_OF = {"limit": "--limit", "epochs": "--epochs", "max_tokens": "--max-tokens",
              "temperature": "--temperature", "top_p": "--top-p", "template": "--template",
              "system": "--system", "seed": "--seed", "dataset": "--dataset"}


@friendly_errors
def run(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec: default, gemma3-270m, hf:REPO_OR_DIR, gguf:FILE, openai:MODEL; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES, +lora:DIR (see refute models list).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Built-in name (harmful, benign-lookalike, benign-tasks, agentic-basic) or a JSONL/CSV file.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N prompts.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Samples per prompt, each with its own seed.")] = 1,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most new tokens per reply.")] = 64,
    temperature: Annotated[float, typer.Option(min=0.0, callback=finite, help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass, in (0, 1].")] = 1.0,
    seed: Annotated[int, typer.Option(help="Run seed; each sample's seed derives from it.")] = 0,
    system: Annotated[str | None, typer.Option(help="System prompt (default: the model's own).")] = None,
    template: Annotated[str, typer.Option(help="User message template containing {prompt}.")] = "{prompt}",
    scorer: Annotated[list[str] | None, typer.Option("--scorer", help="Scorer name (repeatable). Default: match for tasks with answers, else refusal (the measured scorer).")] = None,
    transform: Annotated[list[str] | None, typer.Option("--transform", "-t", help="Transform chain such as base64 or rot13+roleplay (repeatable); the canonical prompt always runs too.")] = None,
    adapter: Annotated[str | None, typer.Option(help="Dataset adapter: harmbench, advbench, jailbreakbench, strongreject, xstest.")] = None,
    harm: Annotated[str | None, typer.Option(help="Declare the dataset 'harmful' or 'benign' (decides report redaction). Default: the built-in dataset's declaration; any file counts as harmful.")] = None,
    solver: Annotated[str, typer.Option(help="How each conversation unfolds: single_turn, scripted_escalation (multi-turn, no attacker model), agent (tools in a sandbox; the default for agentic datasets such as agentic-basic), ...")] = "single_turn",
    solver_arg: Annotated[list[str] | None, typer.Option("--solver-arg", help="Solver argument KEY=VALUE (repeatable; values parsed as JSON when they can be), e.g. turns=3.")] = None,
    attacker: Annotated[str | None, typer.Option(help="Model spec of the attacker that attack solvers (pair, crescendo) ask; may be the target's own spec.")] = None,
    judge: Annotated[str | None, typer.Option(help="Model spec of the judge that attack solvers ask (pair, best_of_n with judge=model).")] = None,
    rewriter: Annotated[str | None, typer.Option(help="Model spec that rewrite transforms (paraphrase, translate) ask.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    base_url: Annotated[list[str] | None, typer.Option(help="Server URL for openai:MODEL specs; repeat it for several servers of one model, or give a YAML file of {url, concurrency} entries (with --resume: where the run goes on).")] = None,
    dtype: Annotated[str, typer.Option(help="Local models: auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    batch_size: Annotated[int | None, typer.Option(min=1, help="Local models: prompts per batch (default 32).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Remote models: requests in flight per server.")] = 8,
    timeout: Annotated[float | None, typer.Option(min=0.0, help="Remote models: seconds one request may take (default 60).")] = None,
    retries: Annotated[int | None, typer.Option(min=0, help="Remote models: tries after a transient failure (default 6).")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Finish the run with this id; nothing completed is redone. --base-url, --concurrency, --timeout and --retries may change.")] = None,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    executor: ExecutorOption = ExecutorName.local,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run an eval and store every sample as it completes.

    Exit code 0 when every sample completed; 1 when any failed (the count and the resume command
    are printed); 2 for bad input, before any run is created; 130 on Ctrl-C.

    Examples:

      refute run --model default --dataset harmful --limit 20

      refute run -m default -d benign-tasks --epochs 3 --temperature 0.7

      refute run -m openai:gpt-4o-mini --base-url http://localhost:8000/v1 -d my_prompts.jsonl

      refute run -m openai:Qwen2.5-7B --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1 -d harmful

      refute run -m default -d harmful --solver scripted_escalation --solver-arg turns=3

      refute run -m default -d harmful --limit 3 --solver pair --attacker default --judge default

      refute run -m default -d harmful -t paraphrase --rewriter default

      refute run -m default -d agentic-basic --epochs 3 --temperature 0.7

      refute run --resume 3f2a9c1b7d4e --base-url http://new-host:8000/v1

      refute run -m default -d harmful --epochs 5 --executor ray --workers 4

      refute run --resume 3f2a9c1b7d4e --executor ray --ray-address auto
    """
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"--dtype '{dtype}': choose auto, float32 or bfloat16")
    urls = endpoint_urls(base_url)
    options = {"dtype": dtype, "batch_size": batch_size, "concurrency": concurrency,
               "base_url": urls, "timeout_s": timeout, "max_retries": retries}
    with store_from(store) as db:
        if resume:
            given = [f"--{o.replace('_', '-')}" for o in _TASK_OPTIONS if _given(ctx, o)]
            if given:
                raise ConfigError(f"--resume keeps the run's own settings; drop {', '.join(given)} "
                                  "(only --model, --base-url, --concurrency, --timeout, --retries apply)")
            overrides = {k: v for k, v in options.items()
                         if v is not None and _given(ctx, _PARAM_OF.get(k, k))}
            with executor_from(executor, ray_address, workers):
                record = resume_run(resume, db, progress=progress, model_spec=model, load_options=overrides)
        else:
            if not model or not dataset:
                raise ConfigError("refute run needs --model and --dataset (or --resume RUN_ID); see --help")
            if _agentic(dataset, adapter) and not _given(ctx, "solver"):
                solver = "agent"  # agentic tasks run in the sandbox, with the text protocol or tool calls
                solver_arg = [f"protocol={'tools' if parse_spec(model).kind == 'openai' else 'text'}",
                              f"sandbox={resolve_sandbox()}", *(solver_arg or [])]
                max_tokens = max_tokens if _given(ctx, "max_tokens") else 256
            task = _task(dataset, adapter, limit, epochs, max_tokens, temperature, top_p, seed, system,
                         template, scorer, transform, solver, solver_arg, harm)
            roles = {r: s for r, s in (("attacker", attacker), ("judge", judge), ("rewriter", rewriter)) if s}
            _check_before_loading(task, model, roles)
            load = {k: v for k, v in options.items() if v is not None}
            with executor_from(executor, ray_address, workers), loaded_models(model, roles, load) as models:
                target = models.pop("target")
                record = run_task(task, target, db, name=name, load_options=load, progress=progress,
                                  helpers=models)
        err.print(f"run [bold]{record.id}[/] {record.status}; store {db.location}")
        print_run_summary(db, record.id, out)
        ok, bad = db.sample_counts(record.id)
    if record.status != "completed":
        err.print(f"[bold red]{bad} of {record.n_planned} samples failed[/]"
                  + (f", {record.n_planned - ok - bad} not run" if ok + bad < record.n_planned else "")
                  + f"; fix the cause, then finish it with: refute run --resume {record.id}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(1)


#: load_model keyword -> the CLI parameter that sets it.
_PARAM_OF = {"timeout_s": "timeout", "max_retries": "retries"}


def _given(ctx: typer.Context, param: str) -> bool:
    """Whether the user typed ``param`` on the command line (not a default or the environment)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def _task(dataset: str, adapter: str | None, limit: int | None, epochs: int, max_tokens: int,
          temperature: float, top_p: float, seed: int, system: str | None, template: str,
          scorer: list[str] | None, transform: list[str] | None, solver: str,
          solver_arg: list[str] | None, harm: str | None) -> Any:
    """The task the options describe; a bad value is a `ConfigError` naming its option."""
    if harm not in (None, "harmful", "benign"):
        raise ConfigError(f"--harm '{harm}': choose harmful or benign")
    if Path(dataset).exists():  # store an absolute path so --resume works from anywhere
        dataset = str(Path(dataset).resolve())
    try:
        return TaskConfig(
            dataset=dataset, dataset_adapter=adapter, limit=limit, epochs=epochs, system=system,
            template=template, seed=seed,
            generate=GenerateConfig(max_tokens=max_tokens, temperature=temperature, top_p=top_p),
            scorers=[PluginSpec(name=s) for s in scorer] if scorer else None,
            transforms=["none", *(transform or [])],
            solver=PluginSpec(name=solver, args=_parse_args(solver_arg or [])),
            harmful=None if harm is None else harm == "harmful",
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][-1]) if first["loc"] else ""
        where = _OPTION_OF.get(field, f"--{field.replace('_', '-')}")
        raise ConfigError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


def _agentic(dataset: str, adapter: str | None) -> bool:
    """Whether the dataset's records are agentic tasks (their metadata names an ``agent_task``)."""
    return any("agent_task" in r.metadata for r in load_dataset(dataset, adapter=adapter).records)


def _check_before_loading(task: Any, model: str, roles: dict[str, str]) -> None:
    """Everything that can be wrong with a task, found before a model loads or a run exists:
    the dataset, solver, scorers, transforms, every model spec, and the helper models that the
    solver and the transforms ask."""
    load_dataset(task.dataset, adapter=task.dataset_adapter, limit=task.limit)
    for spec in (model, *roles.values()):
        parse_spec(spec)
    check_helpers(task, get_solver(task.solver.name, **task.solver.args), roles)
    for spec in task.scorers or []:
        get_scorer(spec.name, **spec.args)


def _parse_args(pairs: list[str]) -> dict[str, object]:
    """KEY=VALUE pairs; a value is read as JSON when it parses (numbers, booleans), else a string."""
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
