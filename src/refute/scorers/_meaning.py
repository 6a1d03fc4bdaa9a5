"""What a scorer's value means, declared once where the scorer is registered.

Reports, studies, comparisons and the gap table read it from the registry instead of keeping their
own lists of scorer names: which way is safer, what a value of 1 is called, what the mean is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CORRECTNESS", "DETECTION", "HARMFULNESS", "REFUSAL", "UNDECLARED", "HigherIs", "ScorerMeaning"]

#: What a higher value says about a sample.
HigherIs = Literal[
    "refusal",  # the model refused: safer on harmful requests, over-refusal on benign ones
    "safer",  # the reply is safer
    "less_safe",  # the reply is more harmful (a harmfulness judge, attack success)
    "correct",  # the reply answers a task correctly (capability)
    "detected",  # a monitor or probe fired on the sample
    "undeclared",  # a scorer that declares nothing (stored by a plug-in no longer installed)
]

#: The order in which a run's scorers are preferred for its summary.
_PREFERENCE: tuple[HigherIs, ...] = ("refusal", "correct", "less_safe", "safer", "detected", "undeclared")


@dataclass(frozen=True)
class ScorerMeaning:
    """Direction, positive label, range and display names of a scorer's values."""

    higher_is: HigherIs
    #: The class a value at the top of the range stands for, as human labels name it.
    positive: str
    #: Display name of an outcome at the top of the range ("refused", "harmful", "correct").
    high: str
    #: Display name of an outcome at the bottom of the range ("complied", "harmless", "wrong").
    low: str
    #: What the mean of the values is called in a table ("refusal rate", "accuracy").
    statistic: str
    low_value: float = 0.0
    high_value: float = 1.0

    def __post_init__(self) -> None:
        if not self.low_value < self.high_value:
            raise ValueError(f"a scorer's value range needs low < high, got [{self.low_value}, {self.high_value}]")

    @property
    def value_range(self) -> tuple[float, float]:
        return (self.low_value, self.high_value)

    @property
    def safer_when_higher(self) -> bool | None:
        """True when a higher value is safer, False when less safe, None when it depends (refusal:
        safer on harmful requests, over-refusal on benign ones) or is not about safety."""
        return {"safer": True, "less_safe": False}.get(self.higher_is)

    @property
    def rank(self) -> int:
        """Place among a run's scorers when one is picked for its summary (lower first)."""
        return _PREFERENCE.index(self.higher_is)

    @property
    def middle(self) -> float:
        """The middle of the range: a value at or above it is the high outcome."""
        return (self.low_value + self.high_value) / 2

    def outcome(self, value: float | None) -> str:
        """The display name of a value: the nearer end of the range ("unscored" for None)."""
        if value is None:
            return "unscored"
        return self.high if value >= self.middle else self.low

    def worse_outcome(self, harmful: bool) -> str | None:
        """The outcome that counts against the model on harmful (or benign) requests, if any:
        compliance with a harmful request, over-refusal of a benign one, a harmful reply, a wrong
        answer."""
        if self.higher_is == "refusal":
            return self.low if harmful else self.high
        if self.higher_is in ("less_safe",):
            return self.high
        if self.higher_is in ("safer", "correct"):
            return self.low
        return None

    def better_outcome(self, harmful: bool) -> str | None:
        worse = self.worse_outcome(harmful)
        if worse is None:
            return None
        return self.low if worse == self.high else self.high


REFUSAL = ScorerMeaning("refusal", positive="refusal", high="refused", low="complied", statistic="refusal rate")
HARMFULNESS = ScorerMeaning("less_safe", positive="harmful", high="harmful", low="harmless",
                            statistic="harmfulness")
CORRECTNESS = ScorerMeaning("correct", positive="correct", high="correct", low="wrong", statistic="accuracy")
DETECTION = ScorerMeaning("detected", positive="positive", high="positive", low="negative",
                          statistic="positive rate")
#: What an undeclared scorer's values are taken to mean: nothing beyond their number.
UNDECLARED = ScorerMeaning("undeclared", positive="1", high="high", low="low", statistic="mean score")
