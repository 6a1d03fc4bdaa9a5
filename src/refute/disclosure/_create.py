"""Turn measured results into a finding: the evidence (rates, intervals, sample ids) and, apart
from it, the reproduction recipe (transform chains, attack settings, the exact prompts sent).

A red-team run's evidence is its robustness gap (`refute.redteam.robustness_gap`, with the
capability control linked as ``role="capability"`` and the attacks linked as ``role="attack:NAME"``);
``kind="attack"`` keeps the attack rows only; ``kind="gate"`` keeps the run's rate per chain with
its interval (a run that crossed a gate threshold). The finding's evidence holds no prompt or reply
text: that goes in the recipe, which only the vendor report reads.
"""

from __future__ import annotations

import getpass
from dataclasses import asdict
from typing import Any, Literal

from refute.engine import primary_scorer, run_observations
from refute.errors import ConfigError
from refute.redteam._gap import robustness_gap
from refute.stats import rate
from refute.store import FindingRecord, RunRecord, SampleRecord, Store

__all__ = ["FindingKind", "MAX_DEFAULT_SAMPLES", "create_finding", "default_actor"]

FindingKind = Literal["robustness_gap", "attack", "gate"]

#: With no ``sample_ids``, at most this many complied samples (non-canonical chains first) are cited.
MAX_DEFAULT_SAMPLES = 10


def default_actor() -> str:
    """The login name, for records where no ``--by`` was given."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _run_recipe(run: RunRecord) -> dict[str, Any]:
    cfg = run.config
    return {"id": run.id, "name": run.name, "role": run.role, "model_spec": run.model_spec,
            "dataset": run.dataset_name, "transforms": cfg.get("transforms", ["none"]),
            "solver": cfg.get("solver"), "system": cfg.get("system"), "template": cfg.get("template"),
            "generate": cfg.get("generate"), "seed": cfg.get("seed")}


def _sample_recipe(s: SampleRecord) -> dict[str, Any]:
    return {"id": s.id, "run_id": s.run_id, "prompt_id": s.prompt_id, "category": s.category,
            "chain": s.transform_chain, "epoch": s.epoch, "seed": s.seed, "messages": s.messages,
            "completion": s.completion, "metadata": s.metadata}


def _gap_evidence(store: Store, run: RunRecord, capability: RunRecord | None, kind: FindingKind) -> dict[str, Any]:
    gap = robustness_gap(store, run.id, capability.id if capability else None)
    rows = [r for r in gap.rows if kind != "attack" or r.chain.startswith("attack:")]
    if not rows:
        raise ConfigError(f"run {run.id} has no attack runs linked to it (role attack:NAME); "
                          "use --kind robustness_gap, or run the attacks with `refute redteam --attack`")
    return {"scorer": gap.scorer, "alpha": gap.alpha, "capability_run": gap.capability_run,
            "canonical_refusal": asdict(gap.canonical_refusal),
            "canonical_capability": asdict(gap.canonical_capability) if gap.canonical_capability else None,
            "rows": [{"chain": r.chain, "refusal": asdict(r.refusal), "change": asdict(r.change),
                      "p_holm": r.p_holm, "p_bh": r.p_bh, "understanding": r.understanding,
                      "verdict": r.verdict,
                      "capability": asdict(r.capability) if r.capability else None} for r in rows],
            "significant_drops": [c for c in gap.significant_drops if any(r.chain == c for r in rows)]}


def _rate_evidence(store: Store, run: RunRecord) -> dict[str, Any]:
    scorer = primary_scorer(store, run.id)
    if scorer is None:
        raise ConfigError(f"run {run.id} has no scores; score it first (`refute score {run.id}`)")
    by_chain = run_observations(store, run.id, scorer)
    return {"scorer": scorer, "rates": {
        chain: asdict(rate([o.value for o in obs], [str(o.prompt_id) for o in obs]))
        for chain, obs in sorted(by_chain.items())}}


def _complied(store: Store, run_ids: list[str], scorer: str) -> set[int]:
    return {int(s.sample_id) for rid in run_ids for s in store.scores(rid, scorer)
            if s.sample_id is not None and s.value == 0}


def create_finding(store: Store, run_id: str, *, title: str, kind: FindingKind = "robustness_gap",
                   sample_ids: list[int] | None = None, by: str | None = None) -> FindingRecord:
    """Store a finding about ``run_id`` (and the attack runs linked to it).

    ``sample_ids`` are stored sample ids of those runs cited as evidence; with none, the samples
    the scorer marked as complied are cited (transformed and attacked ones first, at most
    `MAX_DEFAULT_SAMPLES`). Every id is checked before anything is stored.
    """
    if not title.strip():
        raise ConfigError("--title: say in one line what was found")
    run = store.get_run(run_id)
    attacks = [c for c in store.children(run.id) if (c.role or "").startswith("attack:")]
    controls = store.children(run.id, role="capability")
    capability = controls[-1] if controls else None
    harmful = [run, *attacks]
    evidence = _rate_evidence(store, run) if kind == "gate" else _gap_evidence(store, run, capability, kind)
    samples = {s.id: s for r in harmful for s in store.samples(r.id, include_errors=False) if s.id is not None}
    if sample_ids is None:
        complied = _complied(store, [r.id for r in harmful], evidence["scorer"])
        ranked = sorted(complied & set(samples), key=lambda i: (samples[i].transform_chain == "none", i))
        chosen = ranked[:MAX_DEFAULT_SAMPLES]
    else:
        unknown = [i for i in sample_ids if i not in samples]
        if unknown:
            raise ConfigError(f"--samples: sample {unknown[0]} is not a completed sample of run {run.id} or "
                              "its attack runs; `refute export RUN` lists the sample ids (column id)")
        chosen = list(dict.fromkeys(sample_ids))
    evidence["samples"] = [{"id": i, "run_id": samples[i].run_id, "prompt_id": samples[i].prompt_id,
                            "category": samples[i].category, "chain": samples[i].transform_chain}
                           for i in chosen]
    recipe = {"runs": [_run_recipe(r) for r in harmful],
              "samples": [_sample_recipe(samples[i]) for i in chosen]}
    run_ids = [r.id for r in harmful] + ([capability.id] if capability else [])
    finding = FindingRecord(id="", title=" ".join(title.split()), kind=kind, created_by=by or default_actor(),
                            run_ids=run_ids, models=sorted({r.model_spec for r in harmful}),
                            sample_ids=chosen, evidence=evidence)
    return store.add_finding(finding, recipe)
