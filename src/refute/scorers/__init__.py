"""Scorers: refusal, harmfulness judges, capability matches, validation, and their registry.

Each scorer declares what its values mean (`ScorerMeaning`: direction, positive label, range,
display names) where it is registered; `meaning_of(name)` reads it. The probe scorer is registered
by `refute.interp` through the ``refute`` entry-point group.
"""

from refute.scorers import _judge, _match, _refusal, _refusal_scorer  # noqa: F401  (registers the built-ins)
from refute.scorers._base import (
    Score,
    ScoreInput,
    Scorer,
    get_scorer,
    list_scorers,
    meaning_of,
    scorer,
    scorer_names,
)
from refute.scorers._judge import StrongRejectJudge, parse_judgement, strongreject_score
from refute.scorers._match import Match, check, normalize
from refute.scorers._meaning import (
    CORRECTNESS,
    DETECTION,
    HARMFULNESS,
    REFUSAL,
    UNDECLARED,
    HigherIs,
    ScorerMeaning,
)
from refute.scorers._refusal import RefusalPatterns
from refute.scorers._refusal_rules import decode_reply
from refute.scorers._refusal_scorer import RefusalScorer
from refute.scorers._rescore import rescore_run
from refute.scorers._run_labels import (
    Agreement,
    LabelSheet,
    RunValidation,
    calibration_record,
    draw_label_sample,
    label_agreement,
    label_scorer,
    queue_label_sample,
    validate_run,
    validate_run_labels,
    write_label_sheet,
)
from refute.scorers._validate import (
    LabelRow,
    ValidationResult,
    cohen_kappa,
    load_labels,
    save_validation,
    validate,
)

__all__ = [
    "CORRECTNESS",
    "DETECTION",
    "HARMFULNESS",
    "REFUSAL",
    "UNDECLARED",
    "Agreement",
    "HigherIs",
    "LabelRow",
    "LabelSheet",
    "Match",
    "RefusalPatterns",
    "RefusalScorer",
    "RunValidation",
    "ScorerMeaning",
    "Score",
    "ScoreInput",
    "Scorer",
    "StrongRejectJudge",
    "ValidationResult",
    "calibration_record",
    "check",
    "cohen_kappa",
    "decode_reply",
    "draw_label_sample",
    "get_scorer",
    "label_agreement",
    "label_scorer",
    "list_scorers",
    "load_labels",
    "meaning_of",
    "normalize",
    "parse_judgement",
    "queue_label_sample",
    "rescore_run",
    "save_validation",
    "scorer",
    "scorer_names",
    "strongreject_score",
    "validate",
    "validate_run",
    "validate_run_labels",
    "write_label_sheet",
]
