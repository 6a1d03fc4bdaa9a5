"""The `refute` command: parses arguments and calls the library; no logic lives here."""

from __future__ import annotations

import typer

from refute.cli import _train_check, _train_data  # noqa: F401 - they add `refute train` subcommands
from refute.cli._agent import agent_app
from refute.cli._awareness import awareness_app
from refute.cli._demo import demo
from refute.cli._finding import finding_app
from refute.cli._gaming import gaming_app
from refute.cli._interp import interp_app
from refute.cli._judge import judge_app, score
from refute.cli._layers import layers
from refute.cli._models import models_app
from refute.cli._redteam import redteam
from refute.cli._run import run
from refute.cli._runs import export, runs_app
from refute.cli._serve import monitor, serve
from refute.cli._stats import compare, plan
from refute.cli._store_cmd import store_app
from refute.cli._study import gate, report, study_app
from refute.cli._train import train_app
from refute.cli._view import view

app = typer.Typer(
    name="refute",
    help="refute: a workbench for AI-safety research. Try to refute the safety claim.\n\n"
    "Start with `refute demo`, then `refute run --help`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("run")(run)
app.command("demo")(demo)
app.command("redteam")(redteam)
app.command("export")(export)
app.command("compare")(compare)
app.command("plan")(plan)
app.add_typer(runs_app, name="runs")
app.add_typer(store_app, name="store")
app.add_typer(models_app, name="models")
app.add_typer(judge_app, name="judge")
app.add_typer(interp_app, name="interp")
app.add_typer(train_app, name="train")
app.command("score")(score)
app.add_typer(study_app, name="study")
app.command("gate")(gate)
app.command("report")(report)
app.add_typer(finding_app, name="finding")
app.command("view")(view)
app.command("serve")(serve)
app.command("monitor")(monitor)
app.command("layers")(layers)
app.add_typer(agent_app, name="agent")
app.add_typer(gaming_app, name="gaming")
app.add_typer(awareness_app, name="awareness")


def main() -> None:
    app()
