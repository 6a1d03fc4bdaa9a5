"""Which scorers people's labels of a run's replies can check, and how.

Two kinds: a *refusal scorer* (`ScorerMeaning.higher_is` ``refusal``) is checked against the three
XSTest refusal labels (``full_compliance``, ``partial_refusal``, ``full_refusal``; a partial refusal
is a refusal), and a *harm judge* (``less_safe``, its top outcome what human labels name
``harmful``: `ScorerMeaning.positive`) against ``harmful`` / ``not_harmful``. Either way the
scorer's verdict on a reply is binary: a value at or above the middle of its range is the positive
class (a refusal, a harmful reply). Accuracy scorers, monitors and probes are neither: no label
here says whether they are right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from refute.errors import ConfigError
from refute.scorers._base import meaning_of, scorer_names
from refute.store import HumanLabel, ScorerLabel, Store

__all__ = ["HARM_LABELS", "REFUSAL_LABELS", "LabelKind", "Positive", "LabelScorer", "as_label_scorer", "label_scorer",
           "pick_label_scorer"]


#: The positive class of a kind: a refusal (refusal scorer) or a harmful reply (harm judge).
Positive = Literal["refusal", "harmful"]


@dataclass(frozen=True)
class LabelKind:
    """What a person labels for one kind of scorer, and which class each label stands for."""

    name: Literal["refusal", "harm"]
    verdicts: tuple[Positive, ScorerLabel]  # the scorer's binary verdicts, the positive class first
    labels: tuple[HumanLabel, ...]  # the human labels compared, in the order of their keys
    negative: HumanLabel  # the human label of the negative class; the others are of the positive class
    named: tuple[str, str]  # a reply of each class in a sentence: "no reply is labelled <named>"

    @property
    def positive(self) -> Positive:
        return self.verdicts[0]

    def gold(self, label: str) -> ScorerLabel:
        """The class a person's label stands for (a partial refusal is a refusal)."""
        return self.verdicts[1] if label == self.negative else self.verdicts[0]


REFUSAL_LABELS = LabelKind("refusal", ("refusal", "compliance"), ("full_compliance", "partial_refusal", "full_refusal"),
                           "full_compliance", ("a refusal", "a compliance"))
HARM_LABELS = LabelKind("harm", ("harmful", "not_harmful"), ("harmful", "not_harmful"), "not_harmful",
                        ("harmful", "not harmful"))


@dataclass(frozen=True)
class LabelScorer:
    """A scorer people's labels can check: its name, its kind, and where its verdict turns."""

    name: str
    kind: LabelKind
    middle: float  # the middle of its value range: a value at or above it is the positive class

    def said(self, value: float | None) -> ScorerLabel:
        """The scorer's binary verdict on a reply it gave ``value``."""
        positive, negative = self.kind.verdicts
        return positive if value is not None and value >= self.middle else negative


def _harm_judges() -> list[str]:
    return [n for n in scorer_names("less_safe") if meaning_of(n).positive == "harmful"]


def _kind(name: str) -> LabelKind | None:
    meaning = meaning_of(name)
    if meaning.higher_is == "refusal":
        return REFUSAL_LABELS
    if meaning.higher_is == "less_safe" and meaning.positive == "harmful":
        return HARM_LABELS
    return None


def _allowed() -> str:
    return (f"refusal scorers: {', '.join(scorer_names('refusal')) or 'none'}; "
            f"harm judges: {', '.join(_harm_judges()) or 'none'}")


def as_label_scorer(name: str) -> LabelScorer:
    """``name`` as a scorer people's labels can check; ConfigError when it is neither a refusal
    scorer nor a harm judge."""
    kind = _kind(name)
    if kind is None:
        raise ConfigError(f"'{name}' is neither a refusal scorer nor a harm judge, so no human label says "
                          f"whether it is right ({_allowed()}); name one of them (--scorer)")
    return LabelScorer(name, kind, meaning_of(name).middle)


def pick_label_scorer(store: Store, run_id: str, scorer: str | None) -> LabelScorer:
    """``scorer``, checked to be a refusal scorer or a harm judge that scored the run (full id); by
    default the run's first refusal scorer by name (``refusal`` before ``refusal_patterns``), else
    its first harm judge."""
    have = store.scorers_of(run_id)
    if scorer is None:
        for kind in (REFUSAL_LABELS, HARM_LABELS):
            found = sorted(s for s in have if _kind(s) is kind)
            if found:
                return as_label_scorer(found[0])
        judges = _harm_judges()
        raise ConfigError(f"run {run_id} has no refusal or harm-judge scores (it is scored by: "
                          f"{', '.join(have) or 'nothing'}); score it first: refute score {run_id} --scorer refusal"
                          + (f" (or a harm judge: --scorer {judges[0]})" if judges else ""))
    picked = as_label_scorer(scorer)
    if scorer not in have:
        raise ConfigError(f"run {run_id} has no scores from '{scorer}' (it is scored by: "
                          f"{', '.join(have) or 'nothing'}); pass --scorer, or score it first: "
                          f"refute score {run_id} --scorer {scorer}")
    return picked


def label_scorer(store: Store, run_id: str, scorer: str | None = None) -> str:
    """The scorer whose replies of the run (full id) a person labels: ``scorer`` checked to be a
    refusal scorer or a harm judge that scored the run, by default the run's first refusal scorer,
    else its first harm judge. ConfigError names what is allowed."""
    return pick_label_scorer(store, run_id, scorer).name
