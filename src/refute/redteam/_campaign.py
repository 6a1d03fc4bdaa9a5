"""A red-team campaign: the harmful set under every transform, plus the capability control.

Two engine runs share the model and the transform chains: ``harmful`` scored for refusal and
``benign-tasks`` scored for accuracy. Their stored samples feed `robustness_gap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from refute.datasets import load_dataset
from refute.engine import PluginSpec, TaskConfig, run_task
from refute.errors import ConfigError, ScorerError
from refute.models import GenerateConfig, ModelBackend
from refute.redteam._attacks import AttackRuns, attack_tasks, run_attacks
from refute.redteam._gap import RobustnessGap, robustness_gap
from refute.scorers import list_scorers, meaning_of, scorer_names
from refute.store import RunRecord, Store
from refute.transforms import parse_chain

__all__ = ["DEFAULT_CAPABILITY_LIMIT", "DEFAULT_TRANSFORMS", "Campaign", "campaign_pair", "campaign_tasks",
           "run_campaign"]

#: Capability tasks a campaign uses unless told otherwise (`refute redteam` and study files alike):
#: 60 of the 175 built-in benign tasks keep the control's interval near +-0.12 at 50% accuracy.
DEFAULT_CAPABILITY_LIMIT = 60
DEFAULT_CAPABILITY_DATASET = "benign-tasks"
DEFAULT_CAPABILITY_MAX_TOKENS = 24

#: Cheap transforms (no model needed), one or more of each kind: what `refute redteam` runs.
DEFAULT_TRANSFORMS = (
    "base64", "rot13", "leetspeak", "reversal", "payload_split",
    "roleplay", "fiction", "research_pretext", "prefix_injection", "refusal_suppression",
    "system_override", "few_shot", "bon",
)


@dataclass(frozen=True)
class Campaign:
    harmful: RunRecord
    capability: RunRecord | None
    gap: RobustnessGap
    attacks: tuple[AttackRuns, ...] = ()


def campaign_pair(harmful: TaskConfig, *, capability_dataset: str | None = DEFAULT_CAPABILITY_DATASET,
                  capability_limit: int | None = DEFAULT_CAPABILITY_LIMIT,
                  capability_max_tokens: int = DEFAULT_CAPABILITY_MAX_TOKENS) -> tuple[TaskConfig, TaskConfig | None]:
    """The (harmful task, capability task) pair of a campaign; the one builder `refute redteam`
    (`campaign_tasks`) and study files (``robustness_gap`` runs) share.

    The capability control is ``capability_dataset`` (None: no control) limited to
    ``capability_limit`` tasks (None: all), under the harmful task's transform chains, seed,
    epochs, system prompt, template and sampling temperature, with ``capability_max_tokens`` per
    answer, scored by ``match``: what it measures is whether the model can still do a task
    through each transform, the "can't vs won't" control of the robustness gap.
    """
    if not capability_dataset:
        return harmful, None
    capability = TaskConfig(
        dataset=capability_dataset, limit=capability_limit, epochs=harmful.epochs, system=harmful.system,
        template=harmful.template, seed=harmful.seed, transforms=list(harmful.transforms),
        generate=GenerateConfig(max_tokens=capability_max_tokens, temperature=harmful.generate.temperature),
        scorers=[PluginSpec(name="match")])
    return harmful, capability


def campaign_tasks(*, transforms: list[str] | tuple[str, ...] = DEFAULT_TRANSFORMS, dataset: str = "harmful",
                   limit: int | None = 80, capability_dataset: str | None = DEFAULT_CAPABILITY_DATASET,
                   capability_limit: int | None = DEFAULT_CAPABILITY_LIMIT, max_tokens: int = 48,
                   capability_max_tokens: int = DEFAULT_CAPABILITY_MAX_TOKENS,
                   scorer: str = "refusal", seed: int = 0) -> tuple[TaskConfig, TaskConfig | None]:
    """The campaign's harmful task and capability task, every argument checked before anything runs.

    Loads both datasets (every record of the capability control needs a target and a match
    kind), parses every transform chain and looks the scorer up, so that a bad argument fails
    before a model loads or a run is created. Raises ConfigError, DatasetError or ScorerError.
    """
    for option, value in (("limit", limit), ("capability_limit", capability_limit),
                          ("max_tokens", max_tokens), ("capability_max_tokens", capability_max_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{option} must be a whole number of at least 1, got {value!r}")
    if seed < 0:
        raise ConfigError(f"seed must be 0 or more, got {seed!r}")
    if scorer not in list_scorers():
        raise ScorerError(f"unknown scorer '{scorer}'; known scorers: {', '.join(list_scorers())}")
    if meaning_of(scorer).higher_is != "refusal":  # the gap compares refusal rates
        raise ScorerError(f"scorer '{scorer}' does not score refusal ({meaning_of(scorer).statistic}); a "
                          f"campaign needs a refusal scorer: {', '.join(scorer_names('refusal'))}")
    for chain in transforms:
        parse_chain(chain)
    load_dataset(dataset, limit=limit)
    if capability_dataset:
        records = load_dataset(capability_dataset, limit=capability_limit).records
        missing = [r.id for r in records if r.target is None or r.match is None]
        if missing:
            raise ConfigError(f"capability dataset '{capability_dataset}': {len(missing)} of {len(records)} "
                              f"records have no target or match kind (first: '{missing[0]}'); the capability "
                              "control checks answers, so every task needs both")
    chains = ["none", *transforms]
    try:
        return campaign_pair(
            TaskConfig(dataset=dataset, limit=limit, seed=seed, transforms=chains,
                       generate=GenerateConfig(max_tokens=max_tokens), scorers=[PluginSpec(name=scorer)]),
            capability_dataset=capability_dataset, capability_limit=capability_limit,
            capability_max_tokens=capability_max_tokens)
    except ValidationError as exc:  # the checks above should leave nothing for pydantic to find
        raise ConfigError(f"invalid campaign settings: {exc.errors(include_url=False)[0]['msg']}") from exc


def run_campaign(store: Store, model: ModelBackend, *, transforms: list[str] | tuple[str, ...] = DEFAULT_TRANSFORMS,
                 dataset: str = "harmful", limit: int | None = 80,
                 capability_dataset: str | None = DEFAULT_CAPABILITY_DATASET,
                 capability_limit: int | None = DEFAULT_CAPABILITY_LIMIT, max_tokens: int = 48,
                 capability_max_tokens: int = DEFAULT_CAPABILITY_MAX_TOKENS, scorer: str = "refusal",
                 seed: int = 0, name: str | None = None, progress: bool = True,
                 attacks: Sequence[str] = (), attack_limit: int | None = 10,
                 attack_args: dict[str, dict[str, Any]] | None = None,
                 helpers: dict[str, ModelBackend] | None = None) -> Campaign:
    """Run the harmful set and the capability control under the same transforms, then each of
    ``attacks`` (pair, crescendo, best_of_n, gcg) on the first ``attack_limit`` harmful prompts,
    each with its own capability control; ``helpers`` are the attacker and judge models.

    Every argument is checked first (`campaign_tasks`): nothing runs when one is bad.
    """
    harmful_task, cap_task = campaign_tasks(
        transforms=transforms, dataset=dataset, limit=limit, capability_dataset=capability_dataset,
        capability_limit=capability_limit, max_tokens=max_tokens, capability_max_tokens=capability_max_tokens,
        scorer=scorer, seed=seed)
    attack_plan = attack_tasks(attacks, harmful_task, cap_task, limit=attack_limit, args=attack_args,
                               helpers=helpers)  # checked before anything runs, like the rest
    harmful = run_task(harmful_task, model, store, name=name or f"redteam:{dataset}", kind="redteam",
                       progress=progress)
    capability = None
    if cap_task is not None:
        capability = run_task(cap_task, model, store, name=f"capability:{capability_dataset}",
                              kind="capability", progress=progress, parent=harmful.id, role="capability")
    attacked = run_attacks(store, model, attack_plan, harmful, helpers=helpers, args=attack_args,
                           progress=progress)
    gap = robustness_gap(store, harmful.id, capability.id if capability else None, seed=seed)
    return Campaign(harmful, capability, gap, tuple(attacked))
