"""The interp error, a branch of refute's one exception tree."""

from __future__ import annotations

from refute.errors import RefuteError

__all__ = ["InterpError"]


class InterpError(RefuteError):
    """An interpretability request cannot be done: unknown site, unsupported model, bad shapes."""
