"""Chains of transforms, named by a string such as ``"rot13+roleplay"`` or ``"bon(sigma=0.4)"``.

A chain applies its steps in order. Step ``i`` draws from its own ``random.Random`` seeded
from ``(seed, i)``, so a sample is rebuilt from the chain's name and its seed alone, and
adding a step does not change the draws of the steps before it. The canonical name spells out
every argument, defaults included; the chain with no steps is ``"none"``.

Chain grammar: ``step ("+" step)*``, where ``step`` is ``name`` or ``name(key=value, ...)``;
a value is JSON (``0.4``, ``16``, ``true``, ``"a, b"``) or a bare string (``French``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refute.errors import ConfigError
from refute.models._base import Message
from refute.transforms._base import ArgValue, Transform, get_transform, transform_kind
from refute.transforms._rewrite import model_spec

IDENTITY_NAME = "none"

_STEP = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/@-]*(?: [A-Za-z0-9_.:/@-]+)*")


class TransformSpec(BaseModel):
    """One step of a chain as the store records it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Registered transform name, e.g. 'rot13'.")
    args: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Every argument of the step, defaults included.")


class ChainSpec(BaseModel):
    """A transform chain as the store records it: enough to rebuild it exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = Field(1, description="Schema version of this record.")
    steps: tuple[TransformSpec, ...] = Field((), description="The steps, in the order applied.")


def step_seed(seed: int, index: int) -> int:
    """The seed of step ``index`` of a chain applied with ``seed`` (stable across processes)."""
    # the salt keeps the package's old name: changing it would change every stored sample's draws
    digest = hashlib.sha256(f"refute.redteam:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def format_value(value: ArgValue) -> str:
    """A value as written in a chain name; ``parse_value`` reads it back unchanged."""
    if isinstance(value, str) and _BARE.fullmatch(value) and parse_value(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def parse_value(text: str) -> ArgValue:
    """A value from a chain name: JSON if it parses, else the bare string."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, list | dict):
        raise ConfigError(f"transform argument values must be scalars, got {text}")
    return value


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and double-quoted strings."""
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced ')' in transform chain {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth or quoted:
        raise ConfigError(f"unbalanced parenthesis or quote in transform chain {text!r}")
    parts.append(text[start:])
    return parts


def _build_step(name: str, args: dict[str, Any], model: Any) -> Transform:
    if transform_kind(name) == "rewrite":
        recorded = args.pop("model", None)
        if model is None:
            raise ConfigError(f"transform '{name}' rewrites with a model: pass the backend, "
                              f"e.g. parse_chain(..., model=backend)"
                              + (f" (the chain was recorded with model '{recorded}')"
                                 if recorded else ""))
        if recorded is not None and recorded != model_spec(model):
            raise ConfigError(f"transform '{name}' was recorded with model '{recorded}' but "
                              f"the backend given is '{model_spec(model)}'")
        args["model"] = model
    return get_transform(name, **args)


@dataclass(frozen=True)
class TransformChain:
    """Transforms applied in order; ``apply(messages, seed)`` is reproducible from the seed."""

    steps: tuple[Transform, ...] = ()

    @property
    def name(self) -> str:
        """Canonical name: ``"rot13+roleplay"``, ``"bon(sigma=0.4)"``; ``"none"`` if empty."""
        if not self.steps:
            return IDENTITY_NAME
        rendered = []
        for step in self.steps:
            if step.args:
                inner = ",".join(f"{k}={format_value(v)}" for k, v in step.args.items())
                rendered.append(f"{step.name}({inner})")
            else:
                rendered.append(step.name)
        return "+".join(rendered)

    def apply(self, messages: Sequence[Message], seed: int) -> tuple[Message, ...]:
        """The conversation after every step; step ``i`` uses ``Random(step_seed(seed, i))``."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"transform chain '{self.name}': seed must be an int, got {seed!r}")
        out = tuple(messages)
        for i, step in enumerate(self.steps):
            out = step.apply(out, random.Random(step_seed(seed, i)))
        return out

    def to_spec(self) -> ChainSpec:
        return ChainSpec(steps=tuple(TransformSpec(name=s.name, args=dict(s.args))
                                     for s in self.steps))

    def to_json(self) -> str:
        """The chain as a JSON ``ChainSpec``, for the store."""
        return self.to_spec().model_dump_json()

    @classmethod
    def from_spec(cls, spec: ChainSpec, *, model: Any = None) -> TransformChain:
        """Rebuild a chain; ``model`` is the backend for rewrite steps."""
        return cls(tuple(_build_step(s.name, dict(s.args), model) for s in spec.steps))

    @classmethod
    def from_json(cls, text: str, *, model: Any = None) -> TransformChain:
        """Rebuild a chain from ``to_json`` output; ``model`` is the backend for rewrite steps."""
        try:
            spec = ChainSpec.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"invalid transform chain record: {exc}") from exc
        return cls.from_spec(spec, model=model)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.steps)

    def __str__(self) -> str:
        return self.name


def parse_chain(text: str, *, model: Any = None) -> TransformChain:
    """Parse a chain name such as ``"rot13+roleplay"`` or ``"bon(sigma=0.2)+fiction"``.

    ``""`` and ``"none"`` give the identity chain. ``model`` is the backend that rewrite steps
    (paraphrase, translation) use. Raises ``ConfigError`` naming the valid transforms for an
    unknown name, and for malformed text or arguments.
    """
    if not isinstance(text, str):
        raise ConfigError(f"a transform chain is a string such as 'rot13+roleplay', got {text!r}")
    if text.strip() in ("", IDENTITY_NAME):
        return TransformChain()
    steps = []
    for part in _split_top(text, "+"):
        match = _STEP.match(part)
        if match is None:
            raise ConfigError(f"cannot parse transform step {part.strip()!r} in chain {text!r}; "
                              f"write name or name(key=value, ...)")
        name, body = match.group(1), match.group(2)
        if name == IDENTITY_NAME:
            continue
        args: dict[str, Any] = {}
        if body is not None and body.strip():
            for item in _split_top(body, ","):
                key, eq, value = item.partition("=")
                key = key.strip()
                if not eq or not key.isidentifier():
                    raise ConfigError(f"transform '{name}': argument {item.strip()!r} is not "
                                      f"key=value (in chain {text!r})")
                if key in args:
                    raise ConfigError(f"transform '{name}': argument '{key}' given twice")
                args[key] = parse_value(value)
        steps.append(_build_step(name, args, model))
    return TransformChain(tuple(steps))
