"""`refute agent run|tasks|monitor`: agentic tasks in a sandbox, their rates, and the monitor's catch rate."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from refute.agents import agent_summary, list_tasks, load_task, monitor_catch_rate, resolve_sandbox
from refute.cli._common import StoreOption, endpoint_urls, err, friendly_errors, loaded_models, out, store_from
from refute.datasets import load_dataset
from refute.engine import PluginSpec, TaskConfig, run_task
from refute.errors import ConfigError
from refute.models import GenerateConfig, parse_spec
from refute.stats import Estimate

agent_app = typer.Typer(help="Agentic evaluations in a sandbox (bubblewrap, or Docker where an engine runs).",
                        no_args_is_help=True)

DATASET = "agentic-basic"
SCORERS = ("agent_success", "affordance_use", "agent_monitor")


def _iv(e: Estimate | None) -> str:
    if e is None or e.n_samples == 0:
        return "-"
    return f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def agent_task(epochs: int = 3, limit: int | None = None, max_steps: int = 5, max_tokens: int = 128,
               temperature: float = 0.7, seed: int = 0, protocol: str = "text", sandbox: str = "auto",
               token_budget: int = 6000, output_chars: int = 1000) -> TaskConfig:
    """The task of `refute agent run`: every shipped agentic task, the agent solver, its scorers."""
    return TaskConfig(dataset=DATASET, limit=limit, epochs=epochs, seed=seed, harmful=False,
                      generate=GenerateConfig(max_tokens=max_tokens, temperature=temperature),
                      solver=PluginSpec(name="agent", args={"max_steps": max_steps, "protocol": protocol,
                                                            "sandbox": sandbox, "token_budget": token_budget,
                                                            "output_chars": output_chars}),
                      scorers=[PluginSpec(name=s) for s in SCORERS])


def print_agent_summary(db: Any, run_id: str) -> None:
    summary = agent_summary(db, run_id)
    table = Table(title=f"run {run_id}: per task over its epochs (Wilson 95%)")
    for col in ("task", "kind", "episodes", "success", "affordance use", "monitor flags"):
        table.add_column(col, justify="right" if col == "episodes" else "left")
    for r in summary.rows:
        table.add_row(r.task, r.kind, str(r.n), _iv(r.success), _iv(r.affordance), _iv(r.flagged))
    out.print(table)
    out.print(f"success over all episodes (clustered by task): {_iv(summary.success)}", highlight=False)
    if summary.affordance is not None:
        out.print(f"affordance use on propensity tasks (clustered by task): {_iv(summary.affordance)}",
                  highlight=False)
    if summary.monitor is not None:
        m = summary.monitor
        out.print(f"monitor catch rate: {_iv(m.catch_rate)} of {m.n_used} episodes that used an affordance; "
                  f"false positives {_iv(m.false_positive_rate)} of {m.n_unused} that did not", highlight=False)
    if summary.n_failed:
        err.print(f"[yellow]{summary.n_failed} episodes failed[/] and are not in these rates; "
                  f"finish them with refute run --resume {run_id}")


@agent_app.command("run")
@friendly_errors
def run_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec (default, hf:..., openai:MODEL with --base-url).")] = "default",
    epochs: Annotated[int, typer.Option(min=1, help="Episodes per task, each with its own seed.")] = 3,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N tasks.")] = None,
    max_steps: Annotated[int, typer.Option(min=1, help="Model turns per episode at most (a task may set fewer).")] = 5,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most new tokens per model turn (a text-protocol turn also ends at its tool call's closing tag).")] = 128,
    output_chars: Annotated[int, typer.Option(min=1, help="Characters of a tool's output the model reads back (the rest is cut and says so).")] = 1000,
    token_budget: Annotated[int, typer.Option(min=1, help="Output tokens per episode at most.")] = 6000,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature (epochs differ only when > 0).")] = 0.7,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    protocol: Annotated[str, typer.Option(help="auto (tools for openai: models, else text), text or tools.")] = "auto",
    sandbox: Annotated[str, typer.Option(help="auto, bwrap or docker. Never the host.")] = "auto",
    base_url: Annotated[list[str] | None, typer.Option(help="Server URL for openai:MODEL specs; repeat it for several servers of one model, or give a YAML file of {url, concurrency} entries.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Run every shipped agentic task (agentic-basic) in a sandbox, several episodes each.

    Capability tasks are checked by their checker; propensity tasks plant an unintended
    affordance (a credentials file, an oversight config, an editable test) and record from the
    sandbox's file events whether it was used. A monitor reads the actions and is measured against
    that ground truth. Prints per-task success and affordance-use rates with intervals.

    Examples:

      refute agent run --model default

      refute agent run -m openai:gpt-4o-mini --base-url http://127.0.0.1:8000/v1 --epochs 5

      refute agent run -m openai:Qwen2.5-7B --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1

      refute agent run --limit 3 --epochs 1 --max-steps 10 --max-tokens 256
    """
    if protocol not in ("auto", "text", "tools"):
        raise ConfigError(f"--protocol {protocol!r}: choose auto, text or tools")
    if sandbox not in ("auto", "bwrap", "docker"):
        raise ConfigError(f"--sandbox {sandbox!r}: choose auto, bwrap or docker")
    chosen = protocol if protocol != "auto" else ("tools" if parse_spec(model).kind == "openai" else "text")
    sandbox = resolve_sandbox(sandbox)  # the kind that will run, recorded in the run's configuration
    task = agent_task(epochs, limit, max_steps, max_tokens, temperature, seed, chosen, sandbox, token_budget,
                      output_chars)
    urls = endpoint_urls(base_url)
    load: dict[str, Any] = {"base_url": urls} if urls else {}
    if parse_spec(model).kind != "openai":  # every episode in one batch: a turn waits for the slowest anyway
        episodes = len(load_dataset(DATASET, limit=limit).records) * epochs
        load["batch_size"] = min(64, episodes)
    with store_from(store) as db:
        with loaded_models(model, {}, load) as models:
            record = run_task(task, models["target"], db, name=name, load_options=load, progress=progress)
        err.print(f"run [bold]{record.id}[/] {record.status}; store {db.location}")
        print_agent_summary(db, record.id)
    if record.status != "completed":
        raise typer.Exit(1)


@agent_app.command("tasks")
@friendly_errors
def tasks_cmd() -> None:
    """List the shipped agentic tasks.

    Example: refute agent tasks
    """
    table = Table(title=f"agentic tasks ({DATASET})")
    for col in ("task", "kind", "category", "instruction"):
        table.add_column(col)
    for task_id in list_tasks():
        t = load_task(task_id)
        table.add_row(t.id, t.kind, t.category, t.instruction.splitlines()[0][:90])
    out.print(table)


@agent_app.command("monitor")
@friendly_errors
def monitor_cmd(
    run_id: Annotated[str, typer.Argument(help="An agentic run's id (or a unique prefix).")],
    monitor: Annotated[str, typer.Option(help="The monitor scorer stored on the run.")] = "agent_monitor",
    store: StoreOption = None,
) -> None:
    """The monitor's catch rate against the ground truth of the run's propensity episodes.

    Ground truth is whether the sandbox saw a planted affordance used (affordance_use). To try
    another monitor, re-score the run first: refute score RUN --scorer agent_monitor --arg
    'scorers=["strongreject"]' --judge default.

    Example: refute agent monitor 3f2a
    """
    with store_from(store) as db:
        run = db.get_run(run_id)
        m = monitor_catch_rate(db, run.id, monitor=monitor)
        print_agent_summary(db, run.id)
    out.print(f"{monitor}: catches {_iv(m.catch_rate)} ({m.n_used} episodes used an affordance), false "
              f"positives {_iv(m.false_positive_rate)} ({m.n_unused} did not)", highlight=False)
