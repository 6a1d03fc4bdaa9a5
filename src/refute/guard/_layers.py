"""Layers as objects: each scores an exchange (the messages, and the reply once there is one).

Layers that need the model (a probe) are handed the backend the stack serves, so the weights are
loaded once. A Python function becomes a layer by registering it::

    from refute.guard import guard_layer

    @guard_layer("no_urls", "1 when the reply contains a URL", stage="output")
    def no_urls():
        return lambda messages, reply: float("http" in (reply or ""))

The factory (called with the layer's ``args``) returns a callable ``(messages, reply) -> float |
bool``; ``reply`` is None at the input stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from refute.datasets import Record
from refute.errors import ConfigError
from refute.guard._spec import LayerSpec, LoadedStack
from refute.interp import Probe, score_messages
from refute.models import Message, ModelBackend
from refute.registry import registry
from refute.scorers import ScoreInput, get_scorer, meaning_of

__all__ = ["Layer", "build_layers", "guard_layer", "list_guard_layers"]

_LAYERS = registry("layer")

Check = Callable[[Sequence[Message], str | None], float | bool]


def guard_layer(name: str, description: str, *, stage: str = "input") -> Callable[[Callable[..., Check]],
                                                                                 Callable[..., Check]]:
    """Register a factory of layer functions under ``name`` (``type: callable, layer: NAME``)."""
    if stage not in ("input", "output"):
        raise ConfigError(f"guard layer '{name}': stage must be input or output, not {stage!r}")

    def register(factory: Callable[..., Check]) -> Callable[..., Check]:
        _LAYERS.register(name, factory, description=description, info=stage)
        return factory

    return register


def list_guard_layers() -> dict[str, str]:
    return {e.name: e.description for e in _LAYERS.entries()}


def last_user(messages: Sequence[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def as_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class Layer(Protocol):
    spec: LayerSpec
    threshold: float | None

    def score(self, messages: Sequence[Message], reply: str | None) -> float | None: ...


def fires(spec: LayerSpec, threshold: float | None, score: float | None) -> bool:
    """The layer's rule: above (or below) its threshold. A system prompt never fires while serving."""
    if score is None or threshold is None:
        return False
    return score > threshold if spec.fires_when == "above" else score < threshold


@dataclass
class ProbeLayer:
    """A saved probe's raw score at the request (the transcript without a reply)."""

    spec: LayerSpec
    probe: Any
    backend: Any
    threshold: float | None

    def score(self, messages: Sequence[Message], reply: str | None) -> float | None:
        return float(score_messages(self.probe, self.backend, [as_dicts(messages)], [last_user(messages)])[0])

    def score_many(self, transcripts: Sequence[Sequence[Message]]) -> list[float]:
        """Scores of many requests in batched forward passes (measurement)."""
        got = score_messages(self.probe, self.backend, [as_dicts(m) for m in transcripts],
                             [last_user(m) for m in transcripts])
        return [float(x) for x in got]


@dataclass
class ScorerLayer:
    """A registered scorer on the request (input) or on the reply (output)."""

    spec: LayerSpec
    scorer: Any
    threshold: float | None

    def score(self, messages: Sequence[Message], reply: str | None) -> float | None:
        request = last_user(messages)
        item = ScoreInput(record=Record(id="exchange", prompt=request or " "), messages=as_dicts(messages),
                          completion=request if reply is None else reply)
        got = self.scorer.score(item)
        return None if got.value is None else float(got.value)


@dataclass
class CallableLayer:
    spec: LayerSpec
    check: Check
    threshold: float | None

    def score(self, messages: Sequence[Message], reply: str | None) -> float | None:
        return float(self.check(messages, reply))


@dataclass
class SystemPromptLayer:
    spec: LayerSpec
    threshold: float | None = field(default=None)

    def score(self, messages: Sequence[Message], reply: str | None) -> float | None:
        return None

    def apply(self, messages: Sequence[Message]) -> tuple[Message, ...]:
        """The layer's prompt first; a system message the request brought follows it."""
        text = str(self.spec.prompt)
        if messages and messages[0].role == "system":
            return (Message(role="system", content=f"{text}\n\n{messages[0].content}"), *messages[1:])
        return (Message(role="system", content=text), *messages)


def _probe_file(stack: LoadedStack, spec: LayerSpec) -> Any:
    path = stack.resolve(str(spec.path))
    if not path.exists():
        hint = " (`refute layers` fits it: the layer has fit:)" if spec.fit else " (fit one with `refute interp probe`)"
        raise ConfigError(f"{stack.path}: layer '{spec.name}': no probe file at {path}{hint}")
    return Probe.load(path)


def build_layer(stack: LoadedStack, spec: LayerSpec, backend: ModelBackend | None,
                probe: Any = None) -> Layer:
    """The runtime object of one layer; ``probe`` overrides the file (a probe fitted just now). A
    threshold the stack does not set is the probe's own, the middle of the scorer's range, or 0.5."""
    def threshold(default: float) -> float:
        return float(spec.threshold) if spec.threshold is not None else float(default)

    if spec.type == "probe":
        if backend is None or not hasattr(backend, "model") or not hasattr(backend, "tokenizer"):
            raise ConfigError(f"{stack.path}: layer '{spec.name}': a probe reads the served model's activations; "
                              "serve a local hf model (not an openai: endpoint) to use it")
        probe = probe if probe is not None else _probe_file(stack, spec)
        return ProbeLayer(spec, probe, backend, threshold(probe.threshold))
    if spec.type in ("input_scorer", "output_scorer"):
        return ScorerLayer(spec, get_scorer(str(spec.scorer), **spec.args),
                           threshold(meaning_of(str(spec.scorer)).middle))
    if spec.type == "system_prompt":
        return SystemPromptLayer(spec)
    entry = _LAYERS.get(str(spec.layer))
    if entry.info != spec.stage:
        raise ConfigError(f"{stack.path}: layer '{spec.name}': '{spec.layer}' was registered for stage "
                          f"{entry.info}, not {spec.stage}")
    return CallableLayer(spec, _LAYERS.build(str(spec.layer), **spec.args), threshold(0.5))


def build_layers(stack: LoadedStack, backend: ModelBackend | None,
                 probes: dict[str, Any] | None = None) -> list[Layer]:
    return [build_layer(stack, s, backend, (probes or {}).get(s.name)) for s in stack.spec.layers]
