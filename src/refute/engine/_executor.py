"""Where a run's samples are generated: in this process (``local``) or across Ray actors (``ray``).

The setting is scoped, not passed down: a command wraps its body in `use_executor`, and every run
the engine starts inside it (a study's runs, a campaign's, an interp experiment's) uses it.
``local`` never imports Ray.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from refute.errors import ConfigError

__all__ = ["EXECUTORS", "Executor", "ExecutorKind", "current_executor", "use_executor"]

ExecutorKind = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("local", "ray")


@dataclass(frozen=True)
class Executor:
    """The executor runs use: ``kind``, and for Ray the cluster ``address`` (None: one started
    here) and the number of ``workers`` (actors, each holding one replica of every model)."""

    kind: ExecutorKind = "local"
    address: str | None = None
    workers: int = 1
    pool: Any = field(default=None, compare=False, repr=False)  # Ray: the session's actors


_LOCAL = Executor()
_CURRENT: ContextVar[Executor] = ContextVar("refute_executor", default=_LOCAL)


def current_executor() -> Executor:
    """The executor of the innermost `use_executor` block (``local`` outside any)."""
    return _CURRENT.get()


@contextmanager
def use_executor(kind: str = "local", address: str | None = None, workers: int | None = None
                 ) -> Iterator[Executor]:
    """Run every sample of the runs started inside the block on ``kind``.

    ``ray`` connects first (a bad address, or Ray not installed, is a `ConfigError` before any run
    exists): to the cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``), or to
    a local cluster started here with ``workers`` CPUs, shut down when the block ends. ``workers``
    defaults to the cluster's CPU count (at least 2).
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor '{kind}': choose {' or '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1")
    if kind == "local":
        if address is not None or workers is not None:
            raise ConfigError(f"{'--ray-address' if address is not None else '--workers'} applies only with "
                              "--executor ray")
        token = _CURRENT.set(Executor())
        try:
            yield _CURRENT.get()
        finally:
            _CURRENT.reset(token)
        return
    from refute.engine._ray_cluster import ray_cluster  # deferred: keeps Ray out of local runs

    with ray_cluster(address, workers) as (resolved, n, pool):
        token = _CURRENT.set(Executor("ray", resolved, n, pool))
        try:
            yield _CURRENT.get()
        finally:
            _CURRENT.reset(token)
