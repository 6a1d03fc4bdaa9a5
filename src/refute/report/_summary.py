"""A stored run as numbers with their uncertainty: rates per category and overall, per chain."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from refute.engine import primary_scorer, run_observations
from refute.errors import RefuteError
from refute.report.tables import rate_table
from refute.scorers import meaning_of
from refute.stats import CategoryRate, rates_by_category, rogan_gladen
from refute.store import Store
from refute.study import run_calibration

__all__ = [
    "ChainRates",
    "RunSummary",
    "calibration_line",
    "primary_scorer",
    "print_run_summary",
    "run_observations",
    "statistic_name",
    "summarize_run",
]


@dataclass(frozen=True)
class ChainRates:
    chain: str
    rows: list[CategoryRate]


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    scorer: str
    scorer_version: str
    chains: list[ChainRates]
    n_failed: int


def summarize_run(store: Store, run_id: str, scorer: str | None = None, *, seed: int = 0) -> RunSummary | None:
    """Rates with intervals (clustered by prompt when there are several epochs) for a run."""
    run = store.get_run(run_id)
    scorer = scorer or primary_scorer(store, run.id)
    if scorer is None:
        return None
    chains = []
    for chain, obs in sorted(run_observations(store, run.id, scorer).items(),
                             key=lambda kv: (kv[0] != "none", kv[0])):
        rows = rates_by_category([o.value for o in obs], [o.prompt_id for o in obs],
                                 [o.category for o in obs], rng=seed)
        chains.append(ChainRates(chain, rows))
    _, failed = store.sample_counts(run.id)
    return RunSummary(run.id, scorer, store.scorers_of(run.id).get(scorer, "?"), chains, failed)


def statistic_name(scorer: str) -> str:
    """What a rate of ``scorer`` is called in a table ("refusal rate", "accuracy", ...)."""
    meaning = meaning_of(scorer)
    return f"mean {scorer}" if meaning.higher_is == "undeclared" else meaning.statistic


def calibration_line(store: Store, summary: RunSummary, chain: ChainRates) -> str | None:
    """Which calibration a refusal rate of a run has: its own labels (with the corrected overall
    rate) or none; None for a scorer that is not a refusal scorer."""
    if meaning_of(summary.scorer).higher_is != "refusal":
        return None
    cal, stale = run_calibration(store, summary.run_id, summary.scorer)
    overall = next((r.estimate for r in chain.rows if r.overall), None)
    if cal is None or overall is None:
        return ("calibration: none (the scorer's own rates, uncorrected"
                + (f"; {stale})" if stale else f"; label a sample of this run's replies to correct them: "
                   f"refute judge sample {summary.run_id} --n 100, then label them in refute view)"))
    try:
        fixed = rogan_gladen(overall, cal.sensitivity_counts, cal.specificity_counts)
    except RefuteError as exc:
        return f"calibration: run's own labels (n={cal.n}), but the overall rate cannot be corrected: {exc}"
    return (f"calibration: run's own labels (n={cal.n}); overall {statistic_name(summary.scorer)} corrected for "
            f"the scorer's error (Rogan-Gladen): {fixed} (uncorrected {overall.value:.3f})")


def print_run_summary(store: Store, run_id: str, console: Console) -> RunSummary | None:
    """Print one rate table per transform chain; returns the summary it printed."""
    summary = summarize_run(store, run_id)
    if summary is None:
        console.print(f"run {run_id}: no scores yet")
        return None
    meaning = statistic_name(summary.scorer)
    for chain in summary.chains:
        where = "canonical prompts" if chain.chain == "none" else f"transform {chain.chain}"
        title = f"{meaning} ({summary.scorer} v{summary.scorer_version}), {where}, run {summary.run_id}"
        console.print(rate_table(chain.rows, title=title))
        line = calibration_line(store, summary, chain)
        if line:
            console.print(line, highlight=False, soft_wrap=True)
    if summary.n_failed:
        console.print(f"[yellow]{summary.n_failed} samples failed[/] and are not in these rates; "
                      f"retry them with `refute run --resume {summary.run_id}`")
    return summary
