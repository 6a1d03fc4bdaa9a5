"""The one exception tree of refute.

Every message says what failed, where (file, line, field, run id) and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "RefuteError",
    "ConfigError",
    "DatasetError",
    "ModelError",
    "ModelNotInstalledError",
    "ChecksumError",
    "BackendRequestError",
    "StoreError",
    "RunNotFoundError",
    "FindingNotFoundError",
    "DisclosureError",
    "ScorerError",
    "TrainingError",
]


class RefuteError(Exception):
    """Base of every error refute raises on purpose."""


class ConfigError(RefuteError):
    """A setting, spec string or file of settings is invalid."""


class DatasetError(RefuteError):
    """A dataset file or row is malformed. Carries the file, line and field where known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path, self.line, self.field, self.hint = path, line, field, hint
        where = ":".join(str(p) for p in (path, line) if p is not None)
        parts = [f"{where}: " if where else ""]
        if field is not None:
            parts.append(f"field '{field}': ")
        parts.append(message)
        if hint:
            parts.append(f" ({hint})")
        super().__init__("".join(parts))


class ModelError(RefuteError):
    """A model could not be loaded or asked."""


class ModelNotInstalledError(ModelError):
    """An optional dependency or an embedded model's package is missing."""


class ChecksumError(ModelError):
    """An assembled model file does not have the published hash."""


class BackendRequestError(ModelError):
    """One request to a model failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.retryable, self.retry_after = status, retryable, retry_after


class StoreError(RefuteError):
    """The SQLite store is unreadable, of another schema version, or inconsistent."""


class RunNotFoundError(StoreError):
    """No run with the given id (or id prefix) exists in the store."""


class FindingNotFoundError(StoreError):
    """No finding with the given id (or id prefix) exists in the store."""


class DisclosureError(RefuteError):
    """A disclosure step is refused: a report before its embargo, a second approval, a leaking text."""


class ScorerError(RefuteError):
    """A scorer is unknown or was given invalid arguments."""


class TrainingError(RefuteError):
    """Fine-tuning stopped: a non-finite loss, out of memory. Says at which step, and which
    checkpoint was kept."""
