"""`refute train data`: SFT rows built from stored runs (refusals for complied variants, the model's own
benign answers), with a held-out split of the prompts beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from refute.cli._common import StoreOption, bad_input, err, finite, friendly_errors, loaded_models, out, store_from
from refute.cli._train import train_app
from refute.train import build_train_data, prepare_train_data, read_refusals


def _none(value: str) -> str | None:
    return None if value.strip().lower() in ("", "none") else value


@train_app.command("data")
@friendly_errors
def data(
    runs: Annotated[list[str] | None, typer.Option("--from", help="A harmful run (`refute redteam`), scored for refusal; repeatable.", show_default=False)] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="JSONL file to write (must not exist); the split goes to OUT.split.json.", show_default=False)] = None,
    hold_out: Annotated[float, typer.Option("--hold-out", help="Fraction of prompts (harmful, benign and tasks) held out of training, for re-measuring.", min=0.0, max=0.99, callback=finite)] = 0.5,
    transforms: Annotated[str | None, typer.Option("--transforms", help="Comma-separated chains to take rows from (default: every chain in the runs, none included); the others stay held out.", show_default=False)] = None,
    benign: Annotated[str, typer.Option("--benign", help="Benign look-alikes to answer with the model ('none' to skip).")] = "benign-lookalike",
    tasks: Annotated[str, typer.Option("--tasks", help="Capability tasks to answer with the model ('none' to skip); only correct answers are kept.")] = "benign-tasks",
    benign_limit: Annotated[int, typer.Option("--benign-limit", help="Benign look-alikes to generate answers for.", min=1)] = 60,
    tasks_limit: Annotated[int, typer.Option("--tasks-limit", help="Tasks to generate answers for.", min=1)] = 60,
    benign_run: Annotated[list[str] | None, typer.Option("--benign-run", help="A stored run of the same model on benign look-alikes or tasks, used instead of generating; repeatable.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The model that answers the benign prompts (default: the runs' model; it must be that model).", show_default=False)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most new tokens per generated answer; a reply cut there is not used.", min=1)] = 256,
    refusals: Annotated[Path | None, typer.Option("--refusals", help="Refusal texts to train towards, one a line (default: ten built-in ones).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split and of each row's refusal.", min=0)] = 0,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
) -> None:
    """Build training rows from stored runs: refusals for complied variants, the model's own benign answers.

    A refusal for each transformed request the model complied with, and the model's own answers to
    benign look-alikes and tasks, so the fix keeps helpfulness.

    Prompts are split by a seeded hash into train and held out (--hold-out); rows come from train
    prompts only, and OUT.split.json lists both halves for re-measuring on prompts never trained on.
    Harmful completions are never written. Every row's source names its run, sample and transform.

    Example:

      refute redteam --model default --limit 80 --transforms base64,roleplay,prefix_injection

      refute train data --from RUN_ID --out train.jsonl

      refute train --data train.jsonl --out adapters/fix1
    """
    if not runs or out_file is None:
        missing = [name for name, value in (("--from", runs), ("--out", out_file)) if not value]
        raise typer.BadParameter(f"missing {' and '.join(missing)}; see refute train data --help",
                                 param_hint=" / ".join(missing))
    settings: dict[str, Any] = dict(
        out=out_file, benign=_none(benign), tasks=_none(tasks), benign_runs=benign_run or [],
        benign_limit=benign_limit, tasks_limit=tasks_limit, hold_out=hold_out, seed=seed, max_tokens=max_tokens,
        transforms=[t for t in transforms.split(",") if t.strip()] if transforms is not None else None)
    with store_from(store) as db:
        with bad_input():  # every run, scorer, chain and path is checked before a model loads
            settings["refusals"] = read_refusals(refusals) if refusals is not None else None
            plan = prepare_train_data(db, runs, **settings)
        if plan.needs_model:
            spec = model or plan.model_spec
            err.print(f"generating benign answers with {escape(spec)}", highlight=False)
            with loaded_models(spec, {}) as models:
                summary = build_train_data(db, runs, model=models["target"], progress=progress,
                                           **settings)
        else:
            summary = build_train_data(db, runs, progress=progress, **settings)
    for line in summary.lines():
        out.print(escape(line), highlight=False, soft_wrap=True)
    out.print(f"next: refute train --model {escape(plan.model_spec)} --data {escape(str(summary.out))} "
              "--out adapters/fix1", highlight=False, soft_wrap=True)
