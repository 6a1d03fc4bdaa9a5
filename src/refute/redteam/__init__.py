"""Attacks: multi-turn escalation, attacker-judge loops, best-of-N, GCG, and the robustness gap.

The single-request transforms (encodings, framings, augmentations, rewrites) live one layer down
in `refute.transforms`; their names are re-exported here, where they were first published.

Attacks go further than one transform. Solvers (select them with ``TaskConfig(solver=...)`` and
pass helper models as ``run_task(..., helpers={"attacker": ..., "judge": ...})``): ``crescendo``
and ``scripted_escalation`` (multi-turn escalation), ``pair`` (attacker-judge loop, TAP-like
branching) and ``best_of_n`` (augmented draws until one succeeds, analysed by ``bon_scaling``).
``gcg_attack`` optimizes an adversarial suffix on a local ``hf`` model.

Importing this package registers the attack solvers; the engine finds them without importing it,
through the ``refute`` entry-point group (``pyproject.toml``), since attacks sit above the engine.
"""

from refute.redteam._bon_attack import (
    BonOutcomes,
    BonScaling,
    asr_at_n,
    best_of_n,
    bon_outcomes,
    bon_scaling,
    fit_power_law,
)
from refute.redteam._gcg import GCGResult, gcg_attack
from refute.redteam._multiturn import crescendo, escalation_turn, scripted_escalation
from refute.redteam._pair import JudgeKind, pair
from refute.transforms import (
    ChainSpec,
    Encoding,
    Transform,
    TransformChain,
    TransformInfo,
    TransformKind,
    TransformSpec,
    get_transform,
    list_transforms,
    parse_chain,
    transform,
)

__all__ = [
    "BonOutcomes",
    "BonScaling",
    "ChainSpec",
    "Encoding",
    "GCGResult",
    "JudgeKind",
    "Transform",
    "TransformChain",
    "TransformInfo",
    "TransformKind",
    "TransformSpec",
    "asr_at_n",
    "best_of_n",
    "bon_outcomes",
    "bon_scaling",
    "crescendo",
    "escalation_turn",
    "fit_power_law",
    "gcg_attack",
    "get_transform",
    "list_transforms",
    "pair",
    "parse_chain",
    "scripted_escalation",
    "transform",
]
