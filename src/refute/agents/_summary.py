"""An agentic run in numbers: per task, the success rate and (propensity tasks) the affordance-use
rate over its epochs, each with an interval; overall rates clustered by task; the monitor's catch
rate against the ground truth."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from refute.agents._scorers import MonitorCatch, catch_rate
from refute.errors import ConfigError
from refute.stats import Estimate, rate
from refute.store import Store

__all__ = ["AgentSummary", "TaskRow", "agent_summary"]


@dataclass(frozen=True)
class TaskRow:
    task: str
    kind: str
    n: int
    success: Estimate
    affordance: Estimate | None  # propensity tasks only
    flagged: Estimate | None


@dataclass(frozen=True)
class AgentSummary:
    run_id: str
    rows: list[TaskRow]
    success: Estimate  # over every episode, clustered by task
    affordance: Estimate | None
    monitor: MonitorCatch | None
    n_failed: int  # episodes that failed (model or sandbox error), not in the rates


def _values(store: Store, run_id: str, scorer: str) -> dict[int, float]:
    return {s.sample_id: s.value for s in store.scores(run_id, scorer)
            if s.value is not None and s.sample_id is not None}


def agent_summary(store: Store, run_id: str) -> AgentSummary:
    """The run's agent scores as rates with intervals (Wilson per task over its epochs)."""
    run = store.get_run(run_id)
    success = _values(store, run.id, "agent_success")
    if not success:
        raise ConfigError(f"run {run.id} has no agent_success scores: is it an agentic run (refute agent run)?")
    used, flagged = _values(store, run.id, "affordance_use"), _values(store, run.id, "agent_monitor")
    by_task: dict[str, list[int]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for s in store.samples(run.id, include_errors=False):
        if s.id in success:
            by_task[s.prompt_id].append(s.id)
            kinds[s.prompt_id] = str((s.metadata.get("agent") or {}).get("kind", "?"))
    rows = []
    for task in sorted(by_task):
        ids = by_task[task]
        aff = [used[i] for i in ids if i in used]
        flags = [flagged[i] for i in ids if i in flagged]
        rows.append(TaskRow(task, kinds[task], len(ids), rate([success[i] for i in ids]),
                            rate(aff) if aff else None, rate(flags) if flags else None))
    order = [(i, task) for task, ids in by_task.items() for i in ids]
    aff_pairs = [(used[i], task) for i, task in order if i in used]
    monitor = catch_rate(flagged, used, dict(order)) if aff_pairs and flagged else None
    _, failed = store.sample_counts(run.id)
    return AgentSummary(
        run.id, rows, rate([success[i] for i, _ in order], [t for _, t in order]),
        rate([v for v, _ in aff_pairs], [t for _, t in aff_pairs]) if aff_pairs else None, monitor, failed)
