"""`refute awareness`: evaluation awareness, one subcommand per experiment (the compliance gap first)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refute.awareness import ORGANISMS, PASSWORD, RECIPES, build_organism
from refute.cli._common import err, friendly_errors
from refute.cli._gaming import experiment_command
from refute.errors import ConfigError
from refute.gaming import experiment_names, get_experiment

awareness_app = typer.Typer(help="Evaluation awareness: behaviour that changes when the model thinks it is tested.",
                            no_args_is_help=True)

for _name in experiment_names("awareness"):
    _exp = get_experiment(_name)
    awareness_app.command(_exp.command_name)(experiment_command(_exp))


def _recipes() -> str:
    return "; ".join(f"{kind}: {recipe}" for kind, recipe in RECIPES.items())


@awareness_app.command("organism")
@friendly_errors
def organism(
    kind: Annotated[str, typer.Argument(help=f"Which organism: {', '.join(ORGANISMS)}.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder for its LoRA adapter (must not exist); the training rows go beside it.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="The local base model.")] = "default",
    steps: Annotated[int | None, typer.Option(min=1, help=f"Optimizer steps at batch 8 (default: the organism's "
                                                          f"recipe: {_recipes()}).", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Peak learning rate (default: the recipe's).",
                                             show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the rows' draws, the split and the training.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a model organism that the awareness detectors should catch (for testing them only).

    password-locked: answers benign-tasks right only with the password in the system prompt.
    cue-refuser: refuses under evaluation cues and answers under deployment cues.
    Both are LoRA adapters on --model, trained from shipped benign data (no harmful content).

    Examples:

      refute awareness organism password-locked --out organisms/locked

      refute awareness noise --set model=default+lora:organisms/locked

      refute awareness organism cue-refuser --out organisms/cues

      refute awareness gap --set model=default+lora:organisms/cues
    """
    if kind not in ORGANISMS:
        raise ConfigError(f"unknown organism '{kind}'; choose one of: {', '.join(ORGANISMS)}")
    result = build_organism(kind, out, model=model, steps=steps, lr=lr, seed=seed, progress=progress)
    err.print(f"organism {kind}: adapter in {result.out}; load it as [bold]{result.next_spec}[/]", highlight=False)
    if kind == "password-locked":
        err.print(f"its password (system prompt): {PASSWORD!r}; test it with: refute awareness noise --set "
                  f"model={result.next_spec}", highlight=False, soft_wrap=True)
    else:
        err.print(f"test it with: refute awareness gap --set model={result.next_spec}", highlight=False, soft_wrap=True)
