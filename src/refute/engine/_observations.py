"""A stored run read back as observations: one value per completed sample, by transform chain.

What the robustness gap, a study's measures, comparisons and summaries all start from. Which scorer
a run is summarised by comes from what its scorers declare (`refute.scorers.meaning_of`): refusal
scorers first, then correctness, then the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from refute.scorers import meaning_of
from refute.stats import Observation
from refute.store import Store

__all__ = ["primary_of", "primary_scorer", "run_observations"]


def primary_of(scorers: Iterable[str]) -> str | None:
    """The scorer a run with these scorers is summarised by: refusal before correctness before the
    rest, then by name (``refusal`` before ``refusal_patterns``); None when there are none."""
    return min(scorers, key=lambda name: (meaning_of(name).rank, name), default=None)


def primary_scorer(store: Store, run_id: str) -> str | None:
    """`primary_of` the run's scorers; None when the run has no scores."""
    return primary_of(store.scorers_of(run_id))


def run_observations(store: Store, run_id: str, scorer: str) -> dict[str, list[Observation]]:
    """Per transform chain, one observation per completed sample (value None when unscorable)."""
    values = {s.sample_id: s.value for s in store.scores(run_id, scorer)}
    out: dict[str, list[Observation]] = defaultdict(list)
    for sample in store.samples(run_id, include_errors=False):
        out[sample.transform_chain].append(
            Observation(sample.prompt_id, sample.category, values.get(sample.id))
        )
    return dict(out)
