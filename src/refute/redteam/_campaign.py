"""A red-team campaign: the harmful set under every transform, plus the capability control.

Two engine runs share the model and the transform chains: ``harmful`` scored for refusal and
``benign-tasks`` scored for accuracy. Their stored samples feed `robustness_gap`.
"""

from __future__ import annotations

from dataclasses import dataclass

from refute.engine import PluginSpec, TaskConfig, run_task
from refute.models import GenerateConfig, ModelBackend
from refute.redteam._gap import RobustnessGap, robustness_gap
from refute.store import RunRecord, Store

__all__ = ["DEFAULT_TRANSFORMS", "Campaign", "run_campaign"]

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


def run_campaign(store: Store, model: ModelBackend, *, transforms: list[str] | tuple[str, ...] = DEFAULT_TRANSFORMS,
                 dataset: str = "harmful", limit: int | None = 80,
                 capability_dataset: str | None = "benign-tasks", capability_limit: int | None = 50,
                 max_tokens: int = 48, capability_max_tokens: int = 24, scorer: str = "refusal",
                 seed: int = 0, name: str | None = None, progress: bool = True) -> Campaign:
    """Run the harmful set and the capability control under the same transforms."""
    chains = ["none", *transforms]
    harmful_task = TaskConfig(dataset=dataset, limit=limit, seed=seed, transforms=chains,
                              generate=GenerateConfig(max_tokens=max_tokens),
                              scorers=[PluginSpec(name=scorer)])
    harmful = run_task(harmful_task, model, store, name=name or f"redteam:{dataset}", kind="redteam",
                       progress=progress)
    capability = None
    if capability_dataset:
        cap_task = TaskConfig(dataset=capability_dataset, limit=capability_limit, seed=seed,
                              transforms=chains, generate=GenerateConfig(max_tokens=capability_max_tokens),
                              scorers=[PluginSpec(name="match")])
        capability = run_task(cap_task, model, store, name=f"capability:{capability_dataset}",
                              kind="capability", progress=progress)
    gap = robustness_gap(store, harmful.id, capability.id if capability else None, seed=seed)
    return Campaign(harmful, capability, gap)
