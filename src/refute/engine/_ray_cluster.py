"""Connecting to a Ray cluster for the ``ray`` executor: an existing one, or a local one started here.

Ray is imported only here and in `refute.engine._ray`, inside functions: ``import refute`` and
``--executor local`` never load it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from refute.errors import ConfigError

__all__ = ["ActorPool", "import_ray", "ray_cluster"]

#: Seconds to wait for a cluster address to answer before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0


def import_ray() -> Any:
    """The ``ray`` module, or a `ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--executor ray needs Ray, which is not installed: pip install 'refute[ray]'") from exc
    return ray


class ActorPool:
    """The session's actors, kept between runs: the models they load stay loaded, so a study's or a
    campaign's runs on one model load it once per worker."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.start: Callable[[], Any] | None = None
        self.share: Any = None
        self.pool: list[Any] = []

    def actors(self, n: int, start: Callable[[], Any], share: Any = None) -> list[Any]:
        """``n`` actors; ``start()`` starts one more when there are fewer. Actors started with
        another ``share`` of the cluster (CPUs, GPUs) are replaced."""
        if share != self.share:
            self.close()
        self.start, self.share = start, share
        while len(self.pool) < n:
            self.pool.append(start())
        return self.pool[:n]

    def replace(self, actor: Any) -> Any:
        """A fresh actor in place of ``actor`` (dead, or stopped mid-task)."""
        self._kill(actor)
        if self.start is None:  # pragma: no cover - only actors handed out are replaced
            raise RuntimeError("no actors to replace")
        fresh = self.start()
        self.pool = [fresh if a is actor else a for a in self.pool]
        return fresh

    def close(self) -> None:
        for actor in self.pool:
            self._kill(actor)
        self.pool = []

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):  # already dead, or the cluster is going away
            self.ray.kill(actor, no_restart=True)


@contextmanager
def ray_cluster(address: str | None, workers: int | None) -> Iterator[tuple[str | None, int, ActorPool]]:
    """Connect to Ray; yields the address (None for a local cluster started here), the number of
    workers and the session's actor pool. A cluster started here is shut down on exit; one that was
    already running (an ``address``, or Ray already initialised in this process) is left running."""
    ray = import_ray()
    owned = False
    if address is not None:
        _check_reachable(address)
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "configure_logging": True, "logging_level": "ERROR"}
        if address is None:
            options["num_cpus"] = max(2, workers or os.cpu_count() or 2)
        try:
            ray.init(address=address, **options)
        except Exception as exc:  # Ray raises many kinds; each means no cluster
            where = f"at --ray-address {address}" if address else "locally"
            raise ConfigError(f"could not start or reach a Ray cluster {where}: {exc}. Start one with "
                              "`ray start --head` and pass --ray-address auto, or drop --ray-address to "
                              "start a local cluster") from exc
        owned = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        n = workers or max(2, cpus)
        sys.stderr.write(f"ray: {n} worker{'s' if n != 1 else ''} on "
                         f"{'a local cluster' if address is None else address} ({cpus} CPUs)\n")
        pool = ActorPool(ray)
        try:
            yield address, n, pool
        finally:
            pool.close()
    finally:
        if owned:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """``HOST:PORT`` and ``ray://HOST:PORT`` must answer a TCP connection (Ray itself would retry
    for minutes); ``auto`` finds a running cluster on this machine (Ray fails fast)."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--ray-address '{address}': give auto, HOST:PORT (the head's GCS port, 6379 "
                          "by default) or ray://HOST:PORT (Ray Client, 10001 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start "
                          "the cluster with `ray start --head`, or drop --ray-address to start a local "
                          "cluster") from None
