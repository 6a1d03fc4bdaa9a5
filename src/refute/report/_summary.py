"""A stored run as numbers with their uncertainty: rates per category and overall, per chain."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from refute.engine import primary_scorer, run_observations
from refute.report.tables import rate_table
from refute.scorers import meaning_of
from refute.stats import CategoryRate, rates_by_category
from refute.store import Store

__all__ = [
    "ChainRates",
    "RunSummary",
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
    if summary.n_failed:
        console.print(f"[yellow]{summary.n_failed} samples failed[/] and are not in these rates; "
                      f"retry them with `refute run --resume {summary.run_id}`")
    return summary
