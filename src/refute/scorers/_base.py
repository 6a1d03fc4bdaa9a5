"""The scorer protocol and its registry (the `refute.registry` of kind ``scorer``).

A registered scorer records its name, version and args, and declares what its values mean
(`ScorerMeaning`): reports, studies and comparisons read the meaning from the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from refute.datasets._record import Record
from refute.errors import ConfigError
from refute.registry import registry
from refute.scorers._meaning import UNDECLARED, ScorerMeaning
from refute.store._records import ScoreRecord

__all__ = ["Score", "Scorer", "ScoreInput", "get_scorer", "list_scorers", "meaning_of", "scorer",
           "scorer_names"]


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees: the dataset record, the transcript and the final reply."""

    record: Record
    messages: list[dict[str, str]]
    completion: str
    metadata: dict[str, Any] = field(default_factory=dict)  # the solver's extras (an agent's actions)


@dataclass(frozen=True)
class Score:
    value: float | None
    label: str | None = None
    explanation: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    name: str
    version: str

    def score(self, item: ScoreInput) -> Score: ...


_SCORERS = registry("scorer")

F = TypeVar("F", bound=Callable[..., Any])


def scorer(name: str, description: str, *, meaning: ScorerMeaning) -> Callable[[F], F]:
    """Register a scorer factory under ``name``, with what its values mean."""
    if not isinstance(meaning, ScorerMeaning):
        raise ConfigError(f"scorer '{name}': meaning must be a ScorerMeaning (e.g. refute.scorers.REFUSAL), "
                          f"got {meaning!r}")

    def register(factory: F) -> F:
        _SCORERS.register(name, factory, description=description, info=meaning)
        return factory

    return register


def get_scorer(name: str, **args: Any) -> Scorer:
    """Build the scorer ``name``; ``ScorerError`` for an unknown name or arguments its factory does
    not take (checked before it runs). Whatever the factory itself raises propagates."""
    built: Scorer = _SCORERS.build(name, **args)
    return built


def list_scorers() -> dict[str, str]:
    """Every registered scorer (plug-ins included) and its description, by name."""
    return {e.name: e.description for e in _SCORERS.entries()}


def meaning_of(name: str) -> ScorerMeaning:
    """What the values of scorer ``name`` mean; `UNDECLARED` for a name not registered (a run
    scored by a plug-in that is no longer installed still reads, as plain numbers)."""
    entry = _SCORERS.find(name)
    return UNDECLARED if entry is None else entry.info


def scorer_names(higher_is: str) -> list[str]:
    """The registered scorers whose values mean ``higher_is`` ("refusal", "correct", ...)."""
    return [e.name for e in _SCORERS.entries() if e.info.higher_is == higher_is]


def to_record(s: Scorer, score: Score) -> ScoreRecord:
    return ScoreRecord(scorer=s.name, scorer_version=s.version, value=score.value, label=score.label,
                       explanation=score.explanation, metadata=score.metadata)
