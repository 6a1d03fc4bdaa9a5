"""The ``--executor``, ``--ray-address`` and ``--workers`` options of the commands that run samples."""

from __future__ import annotations

from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Annotated

import typer

from refute.engine import Executor, use_executor

__all__ = ["ExecutorName", "ExecutorOption", "RayAddressOption", "WorkersOption", "executor_from"]


class ExecutorName(StrEnum):
    local = "local"
    ray = "ray"


ExecutorOption = Annotated[
    ExecutorName,
    typer.Option("--executor", help="Where samples are generated: local (this process) or ray (sharded across "
                 "Ray actors, each holding a replica of every model; needs pip install 'refute[ray]')."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option("--ray-address", help="With --executor ray: an existing cluster (auto, HOST:PORT or "
                 "ray://HOST:PORT), left running. Default: start a local cluster for this command.",
                 show_default=False),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="With --executor ray: actors, each loading its own replica of the "
                 "models (default: the cluster's CPU count, at least 2).", show_default=False),
]


def executor_from(executor: ExecutorName, ray_address: str | None, workers: int | None
                  ) -> AbstractContextManager[Executor]:
    """The block inside which every run the command starts uses the chosen executor."""
    return use_executor(executor.value, ray_address, workers)
