"""What a transform is, and its registry (the `refute.registry` of kind ``transform``).

A transform rewrites a conversation into an off-distribution variant of the same request
(an encoding, a framing, a noise augmentation or a model rewrite). Every transform is built
from a name and JSON-able arguments, so the pair ``(name, args)`` recorded in the store
rebuilds it exactly; with the same ``random.Random`` state it produces the same output.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from refute.errors import ConfigError
from refute.models._base import Message
from refute.registry import registry

TransformKind = Literal["encoding", "framing", "augmentation", "rewrite"]

#: The types an argument may have: what JSON and a chain string can carry.
ArgValue = str | int | float | bool | None


@runtime_checkable
class Transform(Protocol):
    """Turns a conversation into a variant of itself, deterministically given ``rng``.

    ``args`` holds every argument (defaults included) as JSON-able values; it is what the
    store records, and ``get_transform(name, **args)`` rebuilds the same transform from it.
    """

    name: str
    kind: TransformKind
    args: dict[str, ArgValue]

    def apply(self, messages: tuple[Message, ...], rng: random.Random) -> tuple[Message, ...]: ...


@runtime_checkable
class Encoding(Transform, Protocol):
    """A transform whose payload is an invertible text encoding."""

    def encode(self, text: str) -> str: ...

    def decode(self, text: str) -> str: ...


@dataclass(frozen=True)
class TransformInfo:
    """One registry entry, as ``list_transforms`` shows it."""

    name: str
    kind: TransformKind
    description: str
    #: Argument names and their defaults (``inspect.Parameter.empty`` rendered as ``None``).
    defaults: dict[str, Any]


_TRANSFORMS = registry("transform")

T = TypeVar("T", bound=type)

_KINDS: tuple[TransformKind, ...] = ("encoding", "framing", "augmentation", "rewrite")


def transform(name: str) -> Callable[[T], T]:
    """Register a transform class under ``name``.

    The class sets ``kind``, takes its arguments as keyword parameters of ``__init__``
    and stores them (validated, defaults included) in ``self.args``. The first line of its
    docstring is the description that ``list_transforms`` shows.
    """

    def register(cls: T) -> T:
        kind = getattr(cls, "kind", None)
        if kind not in _KINDS:
            raise ConfigError(f"transform class {cls.__qualname__} must set a valid 'kind' "
                              f"({', '.join(_KINDS)})")
        _TRANSFORMS.register(name, cls, info=kind)
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return register


def transform_kind(name: str) -> TransformKind:
    """The kind of the registered transform ``name`` (``ConfigError`` listing the valid ones)."""
    kind: TransformKind = _TRANSFORMS.get(name).info
    return kind


def get_transform(name: str, **args: Any) -> Transform:
    """Build the registered transform ``name`` with ``args``.

    Raises ``ConfigError`` for an unknown name (listing the valid ones), an unknown argument
    (listing the accepted ones), a missing one, or an invalid value.
    """
    built: Transform = _TRANSFORMS.build(name, **args)
    return built


def list_transforms() -> list[TransformInfo]:
    """Every registered transform, sorted by kind then name, with a one-line description."""
    infos = []
    for entry in _TRANSFORMS.entries():
        defaults = {k: (None if p.default is inspect.Parameter.empty else p.default)
                    for k, p in entry.parameters().items()}
        infos.append(TransformInfo(name=entry.name, kind=entry.info, description=entry.description,
                                   defaults=defaults))
    return sorted(infos, key=lambda i: (_KINDS.index(i.kind), i.name))


# --- helpers shared by the transform modules -------------------------------------------------


def last_user_index(messages: tuple[Message, ...], transform_name: str) -> int:
    """Index of the last user message; ``ConfigError`` if there is none."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    raise ConfigError(f"transform '{transform_name}' needs a user message to act on; "
                      f"the conversation has roles {[m.role for m in messages]}")


def replace_last_user(messages: tuple[Message, ...], content: str,
                      transform_name: str) -> tuple[Message, ...]:
    """The conversation with the last user message's content replaced."""
    i = last_user_index(messages, transform_name)
    return (*messages[:i], Message(role="user", content=content), *messages[i + 1:])


class TextTransform:
    """Base for transforms that rewrite the text of the last user message only.

    Subclasses set ``kind`` and implement ``transform_text``.
    """

    name: ClassVar[str]
    kind: ClassVar[TransformKind]

    def __init__(self) -> None:
        self.args: dict[str, ArgValue] = {}

    def transform_text(self, text: str, rng: random.Random) -> str:
        raise NotImplementedError

    def apply(self, messages: tuple[Message, ...], rng: random.Random) -> tuple[Message, ...]:
        i = last_user_index(messages, self.name)
        return replace_last_user(messages, self.transform_text(messages[i].content, rng), self.name)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{type(self).__name__}({inner})"


def check_number(transform_name: str, arg: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float in ``[lo, hi]``, or ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"transform '{transform_name}': {arg} must be a number in "
                          f"[{lo}, {hi}], got {value!r}")
    return float(value)


def check_int(transform_name: str, arg: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``, or ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"transform '{transform_name}': {arg} must be an integer in "
                          f"[{lo}, {hi}], got {value!r}")
    return value
