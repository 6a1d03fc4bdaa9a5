"""What one guarded exchange leaves behind: each layer's score, decision and time, and the reply."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Decision", "GuardedReply", "LayerRecord"]

#: What a layer did with one exchange. ``applied``: a system prompt was put in; ``error``: it raised.
Decision = Literal["pass", "flag", "block", "rewrite", "applied", "error"]


@dataclass(frozen=True)
class LayerRecord:
    """One layer's part in one exchange."""

    name: str
    type: str
    phase: str  # input, system or output
    score: float | None
    fired: bool
    decision: Decision
    ms: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GuardedReply:
    """The answer the client gets, and how the stack came to it."""

    text: str
    #: stop or length (the model's), content_filter (a layer blocked or rewrote the reply).
    finish_reason: str
    layers: tuple[LayerRecord, ...]
    blocked_by: str | None = None
    model_ms: float = 0.0
    total_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    #: The model (or the upstream endpoint) failed: no reply; the server answers 502 with this.
    upstream_error: str | None = None
    #: The messages the model was sent (after system prompts and input rewrites); empty when blocked first.
    sent: tuple[dict[str, str], ...] = field(default=())

    @property
    def flagged(self) -> tuple[str, ...]:
        """Layers that fired (whatever their action)."""
        return tuple(r.name for r in self.layers if r.fired)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.layers if r.decision == "error")
