"""`refute compare` (with a CI regression gate) and `refute plan` (power and sample size)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from refute.cli._common import StoreOption, err, finite, friendly_errors, out, store_from
from refute.errors import ConfigError
from refute.report import compare_runs, plan_from_rate, plan_from_run
from refute.report.tables import comparison_table, plan_table
from refute.stats import Direction


def _open_unit(value: float) -> float:
    """Option callback: a level or power strictly between 0 and 1 (typer's bounds are closed)."""
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(f"{value} is not strictly between 0 and 1")
    return value


class CorrectionChoice(StrEnum):
    holm = "holm"
    bh = "bh"


class DirectionChoice(StrEnum):
    auto = "auto"
    higher_is_safer = "higher_is_safer"
    lower_is_safer = "lower_is_safer"


_DIRECTIONS: dict[DirectionChoice, Direction | None] = {
    DirectionChoice.auto: None,  # compare_runs picks it from the scorer
    DirectionChoice.higher_is_safer: "higher_is_safer",
    DirectionChoice.lower_is_safer: "lower_is_safer",
}


@friendly_errors
def compare(
    run_a: Annotated[str, typer.Argument(help="Baseline run id (or prefix).")],
    run_b: Annotated[str, typer.Argument(help="Run to compare with it.")],
    scorer: Annotated[str | None, typer.Option(help="Scorer to compare (default: the runs' refusal scorer).")] = None,
    chain_a: Annotated[str, typer.Option(help="Transform chain of run A ('none' = canonical).")] = "none",
    chain_b: Annotated[str | None, typer.Option(help="Transform chain of run B (default: same as A).")] = None,
    direction: Annotated[DirectionChoice, typer.Option(help="Which way is safer; auto: higher for refusal and accuracy, lower for attack success.")] = DirectionChoice.auto,
    correction: Annotated[CorrectionChoice, typer.Option(help="Correction that decides a regression (both are shown).")] = CorrectionChoice.holm,
    alpha: Annotated[float, typer.Option(help="Significance level after correction, in (0, 1).", min=0.0, max=1.0, callback=_open_unit)] = 0.05,
    fail_on_regression: Annotated[bool, typer.Option("--fail-on-regression", help="Exit 1 when any category got significantly less safe after correction (for CI).")] = False,
    store: StoreOption = None,
) -> None:
    """Per-category differences between two runs with intervals and corrected p-values.

    Prompts present in both runs are compared paired (exact McNemar for one sample per prompt, an
    exact sign-flip test for several); otherwise the comparison is unpaired and labelled so. Each
    interval is at 1 - alpha and excludes 0 exactly when its p <= alpha.

    Examples:

      refute compare 3f2a 9c1b

      refute compare BASELINE CANDIDATE --fail-on-regression   # in CI

      refute compare RUN RUN --chain-b base64                  # canonical vs a transform
    """
    with store_from(store) as db:
        table = compare_runs(db, run_a, run_b, scorer=scorer, chain_a=chain_a, chain_b=chain_b,
                             direction=_DIRECTIONS[direction],
                             correction=correction.value, alpha=alpha)
    out.print(comparison_table(table, title=f"{table.label_b} versus {table.label_a}"))
    if table.regressions:
        err.print(f"[bold red]significant regression[/] after {correction.value} correction in: "
                  f"{', '.join(table.regressions)}")
        if fail_on_regression:
            raise typer.Exit(1)
    else:
        err.print(f"no significant regression at alpha {alpha} after {correction.value} correction")


@friendly_errors
def plan(
    d: Annotated[float, typer.Option("--d", help="Change to detect, e.g. -0.10 for a 10-point drop.", min=-1.0, max=1.0, callback=finite)],
    p: Annotated[float | None, typer.Option("--p", help="Current rate (or give --pilot RUN).", min=0.0, max=1.0, callback=finite)] = None,
    pilot: Annotated[str | None, typer.Option(help="Pilot run: rate and intra-prompt correlation from its samples.")] = None,
    samples_per_prompt: Annotated[int | None, typer.Option("--samples", help="Samples per prompt (default: 1, or the pilot's).", min=1)] = None,
    icc: Annotated[float | None, typer.Option(help="Intra-prompt correlation (default: from the pilot, else 0).", min=0.0, max=1.0, callback=finite)] = None,
    alpha: Annotated[float, typer.Option(help="Significance level, in (0, 1).", min=0.0, max=1.0, callback=_open_unit)] = 0.05,
    power: Annotated[float, typer.Option(help="Power wanted, in (0, 1).", min=0.0, max=1.0, callback=_open_unit)] = 0.8,
    paired: Annotated[bool, typer.Option(help="Same prompts in both conditions (one sample each).")] = False,
    scorer: Annotated[str | None, typer.Option(help="Pilot scorer (default: its refusal scorer).")] = None,
    store: StoreOption = None,
) -> None:
    """How many prompts and samples per prompt detect a change of d from rate p.

    Includes the design effect of clustering, 1 + (k - 1) * ICC, with the ICC estimated from a
    pilot run in the store when --pilot is given.

    Examples:

      refute plan --p 0.45 --d -0.10

      refute plan --pilot 3f2a --d -0.05 --samples 5

      refute plan --pilot 3f2a --d -0.05 --paired              # same prompts, McNemar
    """
    if pilot is not None and p is None:
        with store_from(store) as db:
            result = plan_from_run(db, pilot, d, scorer=scorer, samples_per_prompt=samples_per_prompt,
                                   icc=icc, alpha=alpha, power=power, paired=paired)
    elif p is not None and pilot is None:
        result = plan_from_rate(p, d, samples_per_prompt=samples_per_prompt or 1, icc=icc or 0.0,
                                alpha=alpha, power=power, paired=paired)
    else:
        raise ConfigError("give exactly one of --p RATE or --pilot RUN_ID")
    out.print(plan_table(result))
