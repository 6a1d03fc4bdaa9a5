"""`refute gaming`: specification-gaming and scalable-oversight experiments, one subcommand each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel

from refute._paths import store_path
from refute.cli._common import StoreOption, err, friendly_errors, store_from
from refute.errors import ConfigError
from refute.gaming import Context, Experiment, experiment_names, get_experiment, parse_settings, run_experiment
from refute.gaming import settings_digest as digest
from refute.models import ModelCache
from refute.report._experiments import write_experiment_report

gaming_app = typer.Typer(help="Experiments where the metric and the goal come apart: specification gaming and "
                              "scalable oversight.", no_args_is_help=True)

_RESULTS = "gaming"
RESULTS_HINT = ".refute/gaming/*"


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs, each value read as YAML (numbers, lists, true/false, strings)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"--set {pair!r}: write NAME=VALUE, for example --set seeds=5")
        out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def _settings_help(settings: type[BaseModel]) -> str:
    lines = []
    for name, field in settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        lines.append(f"  {name} = {default!r}: {field.description or ''}")
    return "\n\n".join(lines)


def experiment_command(exp: Experiment) -> Any:
    """The CLI command that runs ``exp``: its settings as --set/--settings, a result folder and reports."""
    @friendly_errors
    def command(
        model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec for every model role of the "
                                                  "experiment (a --set of a role overrides it).",
                                                  show_default=False)] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="A setting as NAME=VALUE (repeatable); "
                                                       "the settings are listed above.", show_default=False)] = None,
        settings_file: Annotated[Path | None, typer.Option("--settings", help="A YAML file of settings (--set "
                                                           "overrides it).", show_default=False)] = None,
        store: StoreOption = None,
        out: Annotated[Path | None, typer.Option(help="Folder for result.json and report.html (default: "
                                                 ".refute/gaming/NAME-DIGEST/ beside the store).",
                                                 show_default=False)] = None,
        dtype: Annotated[str, typer.Option(help="Weights' dtype for local models (auto, float32, bfloat16).")]
        = "auto",
        progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    ) -> None:
        values: dict[str, Any] = {}
        if settings_file is not None:
            loaded = yaml.safe_load(settings_file.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"{settings_file}: a settings file is a mapping of NAME: VALUE")
            values.update(loaded)
        if model is not None:
            if not exp.model_fields:
                raise ConfigError(f"experiment '{exp.name}' uses no model: drop --model")
            values.update({f: model for f in exp.model_fields})
        values.update(parse_sets(set_ or []))
        where = str(settings_file) if settings_file is not None else "--set"
        settings = parse_settings(exp.name, values, where=where)
        out_dir = out if out is not None else (store_path(store).parent / _RESULTS
                                               / f"{exp.name}-{digest(exp.name, settings)}")
        err.print(f"refute {exp.group} {exp.command_name}: results in {out_dir}", highlight=False)
        models = ModelCache(say=lambda s: err.print(s, highlight=False), dtype=dtype)
        try:
            with store_from(store) as st:
                ctx = Context(store=st, out_dir=out_dir, models=models.get, progress=progress,
                              say=lambda s: err.print(s, highlight=False, soft_wrap=True))
                result = run_experiment(exp.name, settings, ctx)
        finally:
            models.close()
        html, md = write_experiment_report(result, out_dir / "report.html")
        typer.echo(result.to_markdown())
        err.print(f"wrote {out_dir / 'result.json'}, {html} and {md}", highlight=False)

    name, field = next((n, f) for n, f in exp.settings.model_fields.items() if n not in exp.model_fields)
    example = f"{name}={json.dumps(field.get_default(call_default_factory=True), separators=(',', ':'))}"
    command.__doc__ = (f"{exp.summary}\n\n{exp.title}. Every model reply is stored in the store; the "
                       "result (figures with 95% intervals, curves, tables) goes to result.json and an HTML "
                       f"report.\n\nSettings (--set NAME=VALUE):\n\n{_settings_help(exp.settings)}\n\n"
                       f"Examples:\n\n  refute {exp.group} {exp.command_name}\n\n"
                       f"  refute {exp.group} {exp.command_name} --set '{example}' --out results/\n\n"
                       f"  refute gaming report {RESULTS_HINT}  # several results on one page")
    return command


for _name in experiment_names("gaming"):
    gaming_app.command(_name)(experiment_command(get_experiment(_name)))


@gaming_app.command("report")
@friendly_errors
def report(
    results: Annotated[list[Path], typer.Argument(help="Result folders (or their result.json files).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write (Markdown beside it).")]
    = Path("gaming-report.html"),
) -> None:
    """Put saved experiment results on one HTML page, one section each.

    Examples:

      refute gaming report .refute/gaming/* -o gaming.html
    """
    html, md = write_experiment_report(results, out)
    typer.echo(f"wrote {html} and {md}")
