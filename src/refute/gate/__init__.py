"""The deployment gate: a policy of capability and propensity thresholds, safeguards and decisions,
applied to measured intervals at their conservative end."""

from refute.gate._decide import (
    Check,
    GateDecision,
    Interval,
    SafeguardOutcome,
    ThresholdOutcome,
    decide,
)
from refute.gate._policy import (
    DECISIONS,
    CrossedIf,
    Decision,
    LoadedPolicy,
    PolicySpec,
    PolicyThreshold,
    Requirement,
    Safeguard,
    load_policy,
)
from refute.gate._study import StudyGate, gate_study, study_gate

__all__ = [
    "DECISIONS",
    "Check",
    "CrossedIf",
    "Decision",
    "GateDecision",
    "Interval",
    "LoadedPolicy",
    "PolicySpec",
    "PolicyThreshold",
    "Requirement",
    "Safeguard",
    "SafeguardOutcome",
    "StudyGate",
    "ThresholdOutcome",
    "decide",
    "gate_study",
    "load_policy",
    "study_gate",
]
