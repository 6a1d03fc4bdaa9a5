"""Solvers: how a sample's conversation unfolds.

A solver is a generator function. It yields each ``GenerateRequest`` it needs and receives the
``Completion`` back, so the engine can batch requests from many samples at once (a local model
wants batches) while each solver stays a plain sequential story. Single-turn asks once;
multi-turn conversations and attacker loops yield several times.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from refute.datasets import Record
from refute.models._base import Completion, GenerateConfig, GenerateRequest, Message
from refute.registry import registry

__all__ = ["SampleState", "Solver", "get_solver", "list_solvers", "single_turn", "solver"]


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
    record: Record | None = None  # the dataset record (an agent solver reads its task from it)

    def request(self) -> GenerateRequest:
        """The next request to the model under test, on the conversation so far."""
        return GenerateRequest(messages=tuple(self.messages), config=self.config,
                               seed=self.seed + len(self.turns))


SolverRun = Generator[GenerateRequest, Completion, None]
Solver = Callable[[SampleState], SolverRun]

_SOLVERS = registry("solver")

F = TypeVar("F", bound=Callable[..., Solver])


def solver(name: str) -> Callable[[F], F]:
    """Register a solver factory under ``name`` (its docstring's first line describes it)."""

    def register(factory: F) -> F:
        _SOLVERS.register(name, factory)
        return factory

    return register


def get_solver(name: str, **args: Any) -> Solver:
    """Build the solver ``name``; ``ConfigError`` for an unknown name or arguments its factory does
    not take (checked before it runs). The attack solvers (``pair``, ``crescendo``, ...) register
    from `refute.redteam` through the ``refute`` entry-point group, loaded on first need."""
    built: Solver = _SOLVERS.build(name, **args)
    return built


def list_solvers() -> dict[str, str]:
    """Every registered solver (plug-ins included) and its description, by name."""
    return {e.name: e.description for e in _SOLVERS.entries()}


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


def asks(run: Solver, *roles: str) -> Solver:
    """Declare that the solver ``run`` asks the helper models ``roles`` (``attacker``, ``judge``)
    besides the target, so a run that lacks one fails before it is created."""
    run.roles = frozenset(roles)  # type: ignore[attr-defined]
    return run


def helper_roles(run: Solver) -> frozenset[str]:
    """The helper models a solver asks (none for single-turn solvers)."""
    return frozenset(getattr(run, "roles", frozenset()))
