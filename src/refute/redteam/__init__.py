"""Off-distribution variants of a request: encodings, framings, augmentations and rewrites.

Every refusal measurement is repeated under transforms of the same request, and the same
transforms are applied to benign tasks with known answers as a capability control (can't vs
won't). Build one with ``get_transform(name, **args)`` or a whole chain with
``parse_chain("rot13+roleplay")``; ``list_transforms()`` shows what is registered.

Attacks go further than one transform. Solvers (select them with ``TaskConfig(solver=...)`` and
pass helper models as ``run_task(..., helpers={"attacker": ..., "judge": ...})``): ``crescendo``
and ``scripted_escalation`` (multi-turn escalation), ``pair`` (attacker-judge loop, TAP-like
branching) and ``best_of_n`` (augmented draws until one succeeds, analysed by ``bon_scaling``).
``gcg_attack`` optimizes an adversarial suffix on a local ``hf`` model.
"""

from refute.redteam import _bon, _encodings, _framings, _rewrite  # noqa: F401  (registration)
from refute.redteam._base import (
    Encoding,
    Transform,
    TransformInfo,
    TransformKind,
    get_transform,
    list_transforms,
    transform,
)
from refute.redteam._bon_attack import (
    BonOutcomes,
    BonScaling,
    asr_at_n,
    best_of_n,
    bon_outcomes,
    bon_scaling,
    fit_power_law,
)
from refute.redteam._chain import ChainSpec, TransformChain, TransformSpec, parse_chain
from refute.redteam._gcg import GCGResult, gcg_attack
from refute.redteam._multiturn import crescendo, escalation_turn, scripted_escalation
from refute.redteam._pair import JudgeKind, pair

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
