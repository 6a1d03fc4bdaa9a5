"""Solvers: how a sample's conversation unfolds.

A solver is a generator function. It yields each ``GenerateRequest`` it needs and receives the
``Completion`` back, so the engine can batch requests from many samples at once (a local model
wants batches) while each solver stays a plain sequential story. Single-turn asks once;
multi-turn conversations and attacker loops yield several times.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from refute.errors import ConfigError
from refute.models._base import Completion, GenerateConfig, GenerateRequest, Message

__all__ = ["SampleState", "Solver", "solver", "get_solver", "single_turn"]


@dataclass
class SampleState:
    """The conversation of one sample as it grows."""

    messages: list[Message]
    config: GenerateConfig
    seed: int
    completion: Completion | None = None
    turns: list[Completion] = field(default_factory=list)
    cached: bool = False  # any turn answered from the request cache
    metadata: dict[str, Any] = field(default_factory=dict)  # stored with the sample

    def request(self) -> GenerateRequest:
        """The next request to the model under test, on the conversation so far."""
        return GenerateRequest(messages=tuple(self.messages), config=self.config,
                               seed=self.seed + len(self.turns))


SolverRun = Generator[GenerateRequest, Completion, None]
Solver = Callable[[SampleState], SolverRun]

_SOLVERS: dict[str, Callable[..., Solver]] = {}


def solver(name: str) -> Callable[[Callable[..., Solver]], Callable[..., Solver]]:
    def register(factory: Callable[..., Solver]) -> Callable[..., Solver]:
        _SOLVERS[name] = factory
        return factory

    return register


def get_solver(name: str, **args: Any) -> Solver:
    if name not in _SOLVERS:
        import refute.redteam  # noqa: F401  (registers the attack solvers: crescendo, pair, ...)
    if name not in _SOLVERS:
        raise ConfigError(f"unknown solver '{name}'; known: {', '.join(sorted(_SOLVERS))}")
    try:
        return _SOLVERS[name](**args)
    except TypeError as exc:
        raise ConfigError(f"solver '{name}': bad arguments {args}: {exc}") from exc


@solver("single_turn")
def single_turn() -> Solver:
    """Ask once; the reply is the sample's completion."""

    def run(state: SampleState) -> SolverRun:
        completion = yield state.request()
        state.turns.append(completion)
        state.completion = completion
        if completion.ok:
            state.messages.append(Message(role="assistant", content=completion.text))

    return run
