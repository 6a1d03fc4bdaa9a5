"""What a sandbox session is configured with and answers: its limits, a command's result, a file
event, and the errors a sandbox raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from refute.errors import ConfigError, RefuteError

__all__ = [
    "SandboxKind",
    "LimitName",
    "EventKind",
    "OUTPUT_KILL_FACTOR",
    "SandboxLimits",
    "ExecResult",
    "FileEvent",
    "SandboxError",
    "SandboxUnavailableError",
    "SandboxDiedError",
    "SandboxFileNotFoundError",
    "SandboxPathError",
]

SandboxKind = Literal["bwrap", "docker"]
LimitName = Literal["wall", "cpu", "memory", "disk", "procs", "output"]
EventKind = Literal["read", "modified", "created", "deleted"]

#: A command that prints more than this many times ``output_bytes`` is killed (limit "output").
OUTPUT_KILL_FACTOR = 64


class SandboxLimits(BaseModel):
    """The limits every command of a sandbox session runs under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_s: int = Field(10, ge=1, le=3600, description=(
        "CPU seconds per process (RLIMIT_CPU): SIGXCPU at cpu_s, SIGKILL one second later."))
    wall_s: float = Field(20.0, gt=0, le=3600, description=(
        "Wall-clock seconds per command; then the command and everything it started are killed."))
    memory_mb: int = Field(512, ge=16, le=65536, description=(
        "Address space per process in MiB (RLIMIT_AS); an allocation past it fails."))
    max_procs: int = Field(64, ge=4, le=4096, description=(
        "Processes and threads at once in the sandbox (RLIMIT_NPROC, counting the executor)."))
    output_bytes: int = Field(16_384, ge=64, le=16 * 2**20, description=(
        "Bytes of stdout plus stderr kept per command (the first ones); the rest is cut (truncated=True). "
        f"A command printing more than {OUTPUT_KILL_FACTOR} times this is killed (limit 'output')."))
    disk_mb: int = Field(64, ge=1, le=65536, description=(
        "Size in MiB of each writable scratch filesystem: /work, /home/agent and /tmp are one tmpfs each "
        "(in memory, never the host's disk); a write past it fails with ENOSPC."))


@dataclass(frozen=True)
class ExecResult:
    """What one command did."""

    exit_code: int | None  # None when killed by a signal (a limit, or its own crash)
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False  # output past output_bytes was cut
    limit: LimitName | None = None  # which limit stopped it; None when none did


@dataclass(frozen=True)
class FileEvent:
    """A read or change of a watched path by the agent, seen when its command (or file call) ended.

    Reads come from inotify (opening or reading the file, through any path or hard link);
    created, modified (content, type or mode) and deleted from comparing lstat and SHA-256 before
    and after. Listing a folder or stat-ing a file is not a read.
    """

    path: str  # absolute path inside the sandbox
    kind: EventKind
    command: int | None = None  # index in `SandboxSession.commands()`; None: a read_file/write_file call


class SandboxError(RefuteError):
    """A sandbox could not start, or one of its operations failed; the message says why."""


class SandboxUnavailableError(SandboxError):
    """No sandbox can be made on this machine: says what is missing and how to install it.

    Never answered by running the command on the host instead.
    """


class SandboxDiedError(SandboxError):
    """The sandbox's executor stopped answering (it could not start, or was killed): the session is over."""


class SandboxFileNotFoundError(SandboxError, FileNotFoundError):
    """A file or folder read or listed inside the sandbox does not exist there."""


class SandboxPathError(SandboxError, ConfigError):
    """A path given to a sandbox is invalid: empty, or leaving /work through '..'."""
