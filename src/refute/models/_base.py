"""What every model backend speaks: chat messages in; completion, token counts and timing out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Role = Field(description="Who speaks: system, user or assistant.")
    content: str = Field(description="The text of the message.")


class GenerateConfig(BaseModel):
    """Sampling settings shared by every backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(64, ge=1, description="Most new tokens to generate.")
    temperature: float = Field(0.0, ge=0.0, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: a conversation, the settings and the seed that makes it reproducible."""

    messages: tuple[Message, ...]
    config: GenerateConfig
    seed: int
    #: Which model answers: "target" (the model under test) or a helper role such as
    #: "attacker" or "judge" that a solver asks (multi-turn and attacker loops).
    role: str = "target"


@dataclass(frozen=True)
class Completion:
    """What came back for one request. ``error`` is set (and ``text`` empty) when it failed."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    error: str | None = None

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
