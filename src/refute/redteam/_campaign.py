"""A red-team campaign: the harmful set under every transform, plus the capability control.

Two engine runs share the model and the transform chains: ``harmful`` scored for refusal and
``benign-tasks`` scored for accuracy. Their stored samples feed `robustness_gap`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from refute.engine import PluginSpec, TaskConfig, run_task
from refute.errors import ConfigError, ScorerError
from refute.models import GenerateConfig, ModelBackend
from refute.redteam._gap import RobustnessGap, robustness_gap
from refute.store import RunRecord, Store

__all__ = ["DEFAULT_TRANSFORMS", "Campaign", "campaign_tasks", "run_campaign"]

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


def campaign_tasks(*, transforms: list[str] | tuple[str, ...] = DEFAULT_TRANSFORMS, dataset: str = "harmful",
                   limit: int | None = 80, capability_dataset: str | None = "benign-tasks",
                   capability_limit: int | None = 50, max_tokens: int = 48, capability_max_tokens: int = 24,
                   scorer: str = "refusal", seed: int = 0) -> tuple[TaskConfig, TaskConfig | None]:
    """The campaign's harmful task and capability task, every argument checked before anything runs.

    Loads both datasets (every record of the capability control needs a target and a match
    kind), parses every transform chain and looks the scorer up, so that a bad argument fails
    before a model loads or a run is created. Raises ConfigError, DatasetError or ScorerError.
    """
    from refute.datasets import load_dataset
    from refute.redteam._chain import parse_chain
    from refute.scorers import list_scorers

    for option, value in (("limit", limit), ("capability_limit", capability_limit),
                          ("max_tokens", max_tokens), ("capability_max_tokens", capability_max_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{option} must be a whole number of at least 1, got {value!r}")
    if seed < 0:
        raise ConfigError(f"seed must be 0 or more, got {seed!r}")
    if scorer not in list_scorers():
        raise ScorerError(f"unknown scorer '{scorer}'; known scorers: {', '.join(list_scorers())}")
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
        harmful = TaskConfig(dataset=dataset, limit=limit, seed=seed, transforms=chains,
                             generate=GenerateConfig(max_tokens=max_tokens), scorers=[PluginSpec(name=scorer)])
        capability = None if not capability_dataset else TaskConfig(
            dataset=capability_dataset, limit=capability_limit, seed=seed, transforms=chains,
            generate=GenerateConfig(max_tokens=capability_max_tokens), scorers=[PluginSpec(name="match")])
    except ValidationError as exc:  # the checks above should leave nothing for pydantic to find
        raise ConfigError(f"invalid campaign settings: {exc.errors(include_url=False)[0]['msg']}") from exc
    return harmful, capability


def run_campaign(store: Store, model: ModelBackend, *, transforms: list[str] | tuple[str, ...] = DEFAULT_TRANSFORMS,
                 dataset: str = "harmful", limit: int | None = 80,
                 capability_dataset: str | None = "benign-tasks", capability_limit: int | None = 50,
                 max_tokens: int = 48, capability_max_tokens: int = 24, scorer: str = "refusal",
                 seed: int = 0, name: str | None = None, progress: bool = True) -> Campaign:
    """Run the harmful set and the capability control under the same transforms.

    Every argument is checked first (`campaign_tasks`): nothing runs when one is bad.
    """
    harmful_task, cap_task = campaign_tasks(
        transforms=transforms, dataset=dataset, limit=limit, capability_dataset=capability_dataset,
        capability_limit=capability_limit, max_tokens=max_tokens, capability_max_tokens=capability_max_tokens,
        scorer=scorer, seed=seed)
    harmful = run_task(harmful_task, model, store, name=name or f"redteam:{dataset}", kind="redteam",
                       progress=progress)
    capability = None
    if cap_task is not None:
        capability = run_task(cap_task, model, store, name=f"capability:{capability_dataset}",
                              kind="capability", progress=progress)
    gap = robustness_gap(store, harmful.id, capability.id if capability else None, seed=seed)
    return Campaign(harmful, capability, gap)
