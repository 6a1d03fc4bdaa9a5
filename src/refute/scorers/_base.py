"""The scorer protocol and its registry. A registered scorer records its name, version and args."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from refute.datasets._record import Record
from refute.errors import ScorerError
from refute.store._records import ScoreRecord

__all__ = ["Score", "Scorer", "ScoreInput", "scorer", "get_scorer", "list_scorers"]


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees: the dataset record, the transcript and the final reply."""

    record: Record
    messages: list[dict[str, str]]
    completion: str


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


_REGISTRY: dict[str, tuple[Callable[..., Scorer], str]] = {}


def scorer(name: str, description: str) -> Callable[[Callable[..., Scorer]], Callable[..., Scorer]]:
    """Register a scorer factory under ``name``."""

    def register(factory: Callable[..., Scorer]) -> Callable[..., Scorer]:
        _REGISTRY[name] = (factory, description)
        return factory

    return register


def get_scorer(name: str, **args: Any) -> Scorer:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ScorerError(f"unknown scorer '{name}'; known scorers: {known}")
    try:
        return _REGISTRY[name][0](**args)
    except TypeError as exc:
        raise ScorerError(f"scorer '{name}': bad arguments {args}: {exc}") from exc


def list_scorers() -> dict[str, str]:
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def to_record(s: Scorer, score: Score) -> ScoreRecord:
    return ScoreRecord(scorer=s.name, scorer_version=s.version, value=score.value, label=score.label,
                       explanation=score.explanation, metadata=score.metadata)
