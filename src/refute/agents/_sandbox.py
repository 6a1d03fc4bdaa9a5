"""Sandboxes for agentic evaluations: each sample's tools (bash, python, file reads and writes) run
in an isolated environment of their own, with no network and no view of the host.

    with open_sandbox(task_dir / "files", home_files={".config/cloud/credentials.json": "..."}) as box:
        box.watch(["/home/agent/.config"])
        result = box.run("ls -la && cat notes.txt")   # ExecResult: exit code, output, the limit hit
        box.events()                                    # FileEvent: reads and changes of watched paths
        box.commands()                                  # every command, with its exit code and limit

Inside: the task's files in /work (the working directory), ``home_files`` under /home/agent (the
place for a propensity task's planted affordances, outside the task's scope), read-only system
folders, a fresh /tmp, ``python3`` and ``bash``; HOME=/home/agent, USER=agent, uid 1000. Each
command runs under `SandboxLimits`; when it ends, every process it left behind is killed. Two
backends: bubblewrap (`BwrapSandbox`, preferred: no daemon, ~50 ms to start) and Docker
(`DockerSandbox`). With neither, `open_sandbox` raises `SandboxUnavailableError`: a command is
never run on the host instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from refute.agents._sandbox_bwrap import BwrapSandbox, bwrap_problem
from refute.agents._sandbox_docker import DEFAULT_DOCKER_IMAGE, DockerSandbox, docker_problem
from refute.agents._sandbox_session import SandboxSession
from refute.agents._sandbox_types import (
    ExecResult,
    FileEvent,
    SandboxDiedError,
    SandboxError,
    SandboxFileNotFoundError,
    SandboxKind,
    SandboxLimits,
    SandboxPathError,
    SandboxUnavailableError,
)
from refute.errors import ConfigError

__all__ = [
    "SandboxKind",
    "SandboxLimits",
    "ExecResult",
    "FileEvent",
    "SandboxSession",
    "BwrapSandbox",
    "DockerSandbox",
    "DEFAULT_DOCKER_IMAGE",
    "SandboxError",
    "SandboxUnavailableError",
    "SandboxDiedError",
    "SandboxFileNotFoundError",
    "SandboxPathError",
    "available_sandbox",
    "open_sandbox",
    "resolve_sandbox",
]


def available_sandbox() -> SandboxKind | None:
    """The sandbox this machine can run: "bwrap" when a bubblewrap sandbox works (tried once, then
    cached), else "docker" when a Docker engine answers, else None."""
    if bwrap_problem() is None:
        return "bwrap"
    if docker_problem() is None:
        return "docker"
    return None


def resolve_sandbox(kind: str = "auto") -> SandboxKind:
    """The sandbox kind ``kind`` stands for on this machine ("auto": bwrap when it works, else
    Docker); `SandboxUnavailableError` (what is missing, how to install it) when none can run."""
    if kind not in ("auto", "bwrap", "docker"):
        raise ConfigError(f"sandbox kind {kind!r} is not auto, bwrap or docker")
    if kind != "auto":
        return kind  # type: ignore[return-value]
    chosen = available_sandbox()
    if chosen is None:
        raise SandboxUnavailableError(
            "no sandbox can run on this machine, and agentic commands never run on the host. bwrap: "
            f"{bwrap_problem()}. Docker: {docker_problem()}. Install bubblewrap (Debian/Ubuntu: "
            "apt-get install bubblewrap), or start a Docker engine")
    return chosen


def open_sandbox(files: Path | None = None, *, kind: Literal["auto", "bwrap", "docker"] = "auto",
                 limits: SandboxLimits | None = None, home_files: Mapping[str, str | bytes] | None = None,
                 image: str = DEFAULT_DOCKER_IMAGE) -> SandboxSession:
    """A new sandbox session: ``files``' content copied into /work, ``home_files`` (paths relative
    to /home/agent -> content) planted under /home/agent. ``kind`` "auto" takes bwrap when it works,
    else Docker (``image``, which must be pulled already). Close it, or use it as a context manager.

    Raises `SandboxUnavailableError` (what is missing, how to install it) when no sandbox can run.
    """
    kind = resolve_sandbox(kind)
    if kind == "bwrap":
        return BwrapSandbox(files, limits=limits, home_files=home_files)
    return DockerSandbox(files, limits=limits, home_files=home_files, image=image)
