"""Compare two stored runs (or two chains of one run) per category, paired on prompts."""

from __future__ import annotations

from refute.engine import primary_scorer, run_observations
from refute.errors import ConfigError
from refute.scorers import meaning_of
from refute.stats import ComparisonTable, Direction, Plan, compare_conditions, plan_from_pilot, sample_size
from refute.stats._multiple import Correction
from refute.store import Store

__all__ = ["compare_runs", "default_direction", "plan_from_rate", "plan_from_run"]

def default_direction(scorer: str) -> Direction:
    """Lower is safer for a scorer that declares higher values less safe (a harmfulness judge);
    higher is safer for every other (refusal, safety, accuracy)."""
    return "lower_is_safer" if meaning_of(scorer).safer_when_higher is False else "higher_is_safer"


def _observations(store: Store, run_id: str, scorer: str, chain: str) -> list:
    by_chain = run_observations(store, run_id, scorer)
    if chain not in by_chain:
        raise ConfigError(f"run {run_id} has no samples for chain '{chain}' scored by '{scorer}'; "
                          f"chains there: {', '.join(sorted(by_chain)) or 'none'}")
    return by_chain[chain]


def compare_runs(store: Store, run_a: str, run_b: str, *, scorer: str | None = None,
                 chain_a: str = "none", chain_b: str | None = None,
                 direction: Direction | None = None, correction: Correction = "holm",
                 alpha: float = 0.05, seed: int = 0) -> ComparisonTable:
    """B versus A per category and overall, paired on prompt ids where both runs have them."""
    a, b = store.get_run(run_a), store.get_run(run_b)
    scorer = scorer or primary_scorer(store, a.id)
    if scorer is None:
        raise ConfigError(f"run {a.id} has no scores; score it first (refute score {a.id} --scorer ...)")
    obs_a = _observations(store, a.id, scorer, chain_a)
    obs_b = _observations(store, b.id, scorer, chain_b or chain_a)
    label_a = _label(a.id, a.name, chain_a)
    label_b = _label(b.id, b.name, chain_b or chain_a)
    return compare_conditions(obs_a, obs_b, direction=direction or default_direction(scorer),
                              correction=correction, alpha=alpha, labels=(label_a, label_b), rng=seed)


def _label(run_id: str, name: str | None, chain: str) -> str:
    label = f"{run_id} ({name})" if name else run_id
    return label if chain == "none" else f"{label} {chain}"


def plan_from_run(store: Store, run_id: str, d: float, *, scorer: str | None = None,
                  samples_per_prompt: int | None = None, icc: float | None = None,
                  alpha: float = 0.05, power: float = 0.8, paired: bool = False) -> Plan:
    """Sample size to detect a change of ``d``, with the rate (and, when the pilot sampled
    prompts several times, the intra-prompt correlation) estimated from a pilot run.

    ``paired``: the same prompts in both conditions, one sample per prompt (exact McNemar); only
    the pilot's rate (mean over prompts) is used."""
    scorer = scorer or primary_scorer(store, run_id)
    if scorer is None:
        raise ConfigError(f"run {run_id} has no scores to plan from")
    obs = [o for o in _observations(store, run_id, scorer, "none") if o.value is not None]
    if not obs:
        raise ConfigError(f"run {run_id} has no scored samples to plan from")
    values, prompts = [o.value for o in obs], [o.prompt_id for o in obs]
    if paired:
        return plan_from_pilot(values, prompts, d, samples_per_prompt=samples_per_prompt,
                               alpha=alpha, power=power, paired=True)
    if len(set(prompts)) < len(prompts) and icc is None:
        return plan_from_pilot(values, prompts, d, samples_per_prompt=samples_per_prompt,
                               alpha=alpha, power=power)
    k = samples_per_prompt or 1
    if k > 1 and icc is None:
        raise ConfigError(
            f"pilot run {run_id} has one sample per prompt, so it cannot estimate the intra-prompt "
            "correlation needed for several samples per prompt; give --icc, or pilot with --epochs 2+"
        )
    p = sum(values) / len(values)
    return sample_size(p, d, alpha=alpha, power=power, samples_per_prompt=k, icc=icc or 0.0)


def plan_from_rate(p: float, d: float, *, samples_per_prompt: int = 1, icc: float = 0.0,
                   alpha: float = 0.05, power: float = 0.8, paired: bool = False) -> Plan:
    return sample_size(p, d, alpha=alpha, power=power, samples_per_prompt=samples_per_prompt,
                       icc=icc, paired=paired)
