"""Scorers: refusal, capability matches, and the registry they live in."""

from refute.scorers import _match, _refusal  # noqa: F401  (registers the built-in scorers)
from refute.scorers._base import Score, ScoreInput, Scorer, get_scorer, list_scorers, scorer
from refute.scorers._match import Match, check, normalize
from refute.scorers._refusal import RefusalPatterns

__all__ = [
    "Match",
    "RefusalPatterns",
    "Score",
    "ScoreInput",
    "Scorer",
    "check",
    "get_scorer",
    "list_scorers",
    "normalize",
    "scorer",
]
