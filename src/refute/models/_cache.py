"""Backends loaded on first use, one per spec, shared by everyone who asks for that spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from refute.models._base import ModelBackend
from refute.models._spec import load_model, parse_spec, prepare_embedded

__all__ = ["ModelCache"]


class ModelCache:
    """``get(spec)`` loads each spec once (with ``options``, e.g. dtype) and returns the same backend
    after; ``close()`` closes them all. ``given``: one backend answering every spec (tests)."""

    def __init__(self, given: ModelBackend | None = None, say: Callable[[str], None] = lambda _msg: None,
                 **options: Any) -> None:
        self._given, self._say, self._options = given, say, options
        self._loaded: dict[str, ModelBackend] = {}

    def get(self, spec: str) -> ModelBackend:
        if self._given is not None:
            return self._given
        if spec not in self._loaded:
            parsed = parse_spec(spec)
            if parsed.kind == "embedded":
                self._say(f"preparing the embedded model '{parsed.target}' (first time: about a minute)")
                prepare_embedded(parsed.target)
            self._say(f"loading model '{spec}'")
            self._loaded[spec] = load_model(spec, **self._options)
        return self._loaded[spec]

    def close(self) -> None:
        for backend in self._loaded.values():
            backend.close()
