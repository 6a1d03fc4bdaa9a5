"""Attacks beside the transforms in a campaign: each one an engine run, with its capability control.

A transform rewrites one request; an attack works harder per request: ``pair`` (an attacker model
refines the prompt, a judge scores the replies), ``crescendo`` (a multi-turn escalation written by
the attacker), ``best_of_n`` (augmented draws until one succeeds) and ``gcg`` (an adversarial
suffix optimised on the target's own gradients, white-box). Each attack is a run of the harmful
prompts linked in the store to the campaign's harmful run (``role="attack:NAME"``), so the gap
table pairs it with the canonical requests by prompt. Its capability control is the same attack
on the benign tasks with known answers, linked to the attack run (``role="capability"``): an attack
that only "works" because the model no longer understands the request is an empty jailbreak.

GCG's suffixes are computed once per prompt and stored as a dataset file in the store's folder
(``attacks/gcg-<hash>.jsonl``: the request with its suffix, and the suffix, token ids and losses in
each record's metadata), which the engine then runs like any dataset: the suffixes are stored,
and measured by the same scorers. The capability control appends the same suffixes to the benign
tasks, in turn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refute.datasets import load_dataset
from refute.engine import PluginSpec, TaskConfig, check_helpers, get_solver, run_task
from refute.engine._progress import progress_bar
from refute.errors import ConfigError
from refute.models import ModelBackend
from refute.redteam._gcg import gcg_attack
from refute.store import RunRecord, Store

__all__ = ["ATTACKS", "AttackRuns", "attack_tasks", "parse_attack_args", "run_attacks"]

#: Attack name -> the solver arguments a campaign uses by default (small enough for a CPU).
ATTACKS: dict[str, dict[str, Any]] = {
    "pair": {"budget": 3},
    "crescendo": {"turns": 3},
    "best_of_n": {"n": 8},
    "gcg": {"n_steps": 20, "suffix_len": 10, "top_k": 64, "batch_size": 32},
}


@dataclass(frozen=True)
class AttackRuns:
    """One attack's run on the harmful prompts and its capability control."""

    name: str
    harmful: RunRecord
    capability: RunRecord | None


def parse_attack_args(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``pair.budget=5`` pairs -> {attack: {key: value}}; values read as JSON when they parse."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        attack, dot, arg = key.partition(".")
        if not sep or not dot or not arg or attack not in ATTACKS:
            raise ConfigError(f"--attack-arg '{pair}': expected ATTACK.KEY=VALUE with ATTACK one of "
                              f"{', '.join(ATTACKS)}, e.g. pair.budget=5")
        try:
            out.setdefault(attack, {})[arg] = json.loads(value)
        except json.JSONDecodeError:
            out.setdefault(attack, {})[arg] = value
    return out


def attack_tasks(attacks: Sequence[str], harmful: TaskConfig, capability: TaskConfig | None, *,
                 limit: int | None, args: dict[str, dict[str, Any]] | None = None,
                 helpers: dict[str, Any] | None = None) -> dict[str, tuple[TaskConfig, TaskConfig | None]]:
    """The (harmful, capability) tasks of each attack, every argument checked before anything runs.

    ``limit`` caps the harmful prompts an attack runs on (attacks cost many queries per prompt);
    ``helpers`` are the roles the caller will provide (``attacker``, ``judge``), so a solver that
    needs a model nobody gave fails here, before a run exists.
    """
    args = args or {}
    unknown = [a for a in [*attacks, *args] if a not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack '{unknown[0]}'; known: {', '.join(ATTACKS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"attack limit must be a whole number of at least 1, got {limit!r}")
    out: dict[str, tuple[TaskConfig, TaskConfig | None]] = {}
    limits = [x for x in (limit, harmful.limit) if x is not None]
    base = {"transforms": ["none"], "limit": min(limits) if limits else None}
    for name in attacks:
        settings = {**ATTACKS[name], **args.get(name, {})}
        if name == "gcg":
            _check_gcg(settings)
            solver = PluginSpec(name="single_turn")
        else:
            solver = PluginSpec(name=name, args=settings)
            check_helpers(harmful, get_solver(name, **settings), {**(helpers or {}), "target": None})
        task = harmful.model_copy(update={**base, "solver": solver})
        cap = None if capability is None else capability.model_copy(update={"transforms": ["none"], "solver": solver})
        out[name] = (task, cap)
    return out


_GCG_KEYS = ("n_steps", "suffix_len", "top_k", "batch_size", "target", "allow_non_ascii")


def _check_gcg(settings: dict[str, Any]) -> None:
    bad = sorted(set(settings) - set(_GCG_KEYS))
    if bad:
        raise ConfigError(f"attack 'gcg': unknown argument '{bad[0]}'; known: {', '.join(_GCG_KEYS)}")


def run_attacks(store: Store, model: ModelBackend, tasks: dict[str, tuple[TaskConfig, TaskConfig | None]],
                harmful_run: RunRecord, *, helpers: dict[str, ModelBackend] | None = None,
                args: dict[str, dict[str, Any]] | None = None, progress: bool = True,
                say: Callable[[str], None] = lambda _m: None) -> list[AttackRuns]:
    """Run each attack on the harmful prompts, then its capability control, linked in the store."""
    out = []
    for name, (task, cap_task) in tasks.items():
        settings = {**ATTACKS[name], **(args or {}).get(name, {})}
        use_helpers = {} if name == "gcg" else dict(helpers or {})
        if name == "gcg":
            say(f"gcg: optimising a suffix per prompt ({settings['n_steps']} steps each)")
            task, cap_task = _gcg_tasks(store, model, task, cap_task, settings, progress)
        say(f"attack {name}: {task.dataset}")
        attacked = run_task(task, model, store, name=f"attack:{name}", kind="redteam", helpers=use_helpers,
                            progress=progress, parent=harmful_run.id, role=f"attack:{name}")
        control = None
        if cap_task is not None:
            control = run_task(cap_task, model, store, name=f"attack:{name}:capability", kind="capability",
                               helpers=use_helpers, progress=progress, parent=attacked.id, role="capability")
        out.append(AttackRuns(name, attacked, control))
    return out


def _gcg_tasks(store: Store, model: ModelBackend, task: TaskConfig, cap_task: TaskConfig | None,
               settings: dict[str, Any], progress: bool) -> tuple[TaskConfig, TaskConfig | None]:
    """Optimise (or reuse) one suffix per harmful prompt; the tasks that send them."""
    records = load_dataset(task.dataset, adapter=task.dataset_adapter, columns=task.dataset_columns,
                           limit=task.limit).records
    key = hashlib.sha256(json.dumps({
        "model": model.info.spec, "revision": model.info.revision, "settings": settings, "seed": task.seed,
        "system": task.system, "prompts": [(r.id, task.template.replace("{prompt}", r.prompt)) for r in records],
    }, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(store.path).parent / "attacks"
    path = folder / f"gcg-{key}.jsonl"
    if not path.is_file():
        rows: list[dict[str, Any]] = []
        with progress_bar("gcg suffixes", total=len(records), enabled=progress) as bar:
            for r in records:
                message = task.template.replace("{prompt}", r.prompt)
                found = gcg_attack(model, message, seed=task.seed, system=task.system, **settings)
                rows.append({"id": r.id, "prompt": found.message, "category": r.category,
                             "metadata": {"gcg": {"suffix": found.suffix, "suffix_ids": list(found.suffix_ids),
                                                  "losses": list(found.losses), "target": found.target}}})
                bar.advance()
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        partial.replace(path)  # a killed attack leaves no half file behind
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    attacked = task.model_copy(update={"dataset": str(path), "template": "{prompt}", "limit": None,
                                       "dataset_adapter": None, "dataset_columns": None})
    if cap_task is None:
        return attacked, None
    suffixes = [row["metadata"]["gcg"]["suffix"] for row in rows]
    tasks = load_dataset(cap_task.dataset, adapter=cap_task.dataset_adapter, columns=cap_task.dataset_columns,
                         limit=cap_task.limit).records
    cap_path = folder / f"gcg-{key}-capability-{hashlib.sha256(cap_task.dataset.encode()).hexdigest()[:8]}.jsonl"
    cap_rows = [{**r.model_dump(mode="json"), "prompt": r.prompt + suffixes[i % len(suffixes)]}
                for i, r in enumerate(tasks)]
    cap_path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in cap_rows), encoding="utf-8")
    return attacked, cap_task.model_copy(update={"dataset": str(cap_path), "limit": None, "dataset_adapter": None,
                                                 "dataset_columns": None})
