"""What every model backend speaks: chat messages in; completion, token counts and timing out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Role = Field(description="Who speaks: system, user, assistant, or a tool's result.")
    content: str = Field(description="The text of the message.")
    tool_calls: tuple[dict[str, Any], ...] = Field(
        (), description="An assistant's OpenAI-style tool calls: {id, name, arguments (JSON text)} each.")
    tool_call_id: str | None = Field(None, description="A tool result: the id of the call it answers.")


class GenerateConfig(BaseModel):
    """Sampling settings shared by every backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(64, ge=1, description="Most new tokens to generate.")
    temperature: float = Field(0.0, ge=0.0, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: tuple[str, ...] = Field((), description="End each reply right after the first of these strings "
                                  "(kept in the reply). Local models stop generating there; an endpoint's "
                                  "reply is cut there.")


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to and including the first of the ``stop`` strings it contains."""
    ends = [i + len(s) for s in stop if s and (i := text.find(s)) >= 0]
    return text[: min(ends)] if ends else text


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: a conversation, the settings and the seed that makes it reproducible."""

    messages: tuple[Message, ...]
    config: GenerateConfig
    seed: int
    #: Which model answers: "target" (the model under test) or a helper role such as
    #: "attacker" or "judge" that a solver asks (multi-turn and attacker loops).
    role: str = "target"
    #: OpenAI function definitions the model may call (endpoint backends; local ones ignore them).
    tools: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Completion:
    """What came back for one request. ``error`` is set (and ``text`` empty) when it failed."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    #: OpenAI-style tool calls of the reply: {id, name, arguments (JSON text)} each.
    tool_calls: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ModelInfo:
    """What a run records about the model that answered it."""

    spec: str
    backend: str
    revision: str | None = None
    #: JSON values: backend settings (dtype, device, ...) and, for a spec with edits, ``spec``:
    #: ``{"base": ..., "edits": [{"kind": ..., "file": ..., "sha256": ..., ...}, ...]}``.
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelBackend(Protocol):
    """A model behind one interface.

    ``generate`` yields ``(index, completion)`` pairs, in any order, as each request finishes,
    so the engine can commit each sample as soon as it exists. A request that fails yields a
    completion with ``error`` set; it never raises for one bad request.
    """

    info: ModelInfo

    @property
    def preferred_batch_size(self) -> int:
        """How many requests the engine should hand over at once (a batch or a concurrency window).

        Read-only here, so a wrapper (an edited variant) may pass its base's value through."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]: ...

    def close(self) -> None: ...
