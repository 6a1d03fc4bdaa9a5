"""Scorers: refusal, harmfulness judges, capability matches, validation, and their registry."""

from refute.scorers import _judge, _match, _refusal, _refusal_scorer  # noqa: F401  (registers the built-ins)
from refute.scorers import _probe  # noqa: F401  (registers the probe scorer)
from refute.scorers._base import Score, ScoreInput, Scorer, get_scorer, list_scorers, scorer
from refute.scorers._judge import StrongRejectJudge, parse_judgement, strongreject_score
from refute.scorers._match import Match, check, normalize
from refute.scorers._refusal import RefusalPatterns
from refute.scorers._refusal_rules import decode_reply
from refute.scorers._refusal_scorer import RefusalScorer
from refute.scorers._rescore import rescore_run
from refute.scorers._validate import (
    LabelRow,
    ValidationResult,
    cohen_kappa,
    load_labels,
    save_validation,
    validate,
)

__all__ = [
    "LabelRow",
    "Match",
    "RefusalPatterns",
    "RefusalScorer",
    "Score",
    "ScoreInput",
    "Scorer",
    "StrongRejectJudge",
    "ValidationResult",
    "check",
    "cohen_kappa",
    "decode_reply",
    "get_scorer",
    "list_scorers",
    "load_labels",
    "normalize",
    "parse_judgement",
    "rescore_run",
    "save_validation",
    "scorer",
    "strongreject_score",
    "validate",
]
