"""Which process drives a run, and whether it is still alive.

A run records the pid, host name and start time of the process that drives it. A run still marked
"running" whose process is gone (killed with -9, a crashed machine) is read back as
"interrupted", so no command waits on it or reports it as in progress. The start time (Linux
``/proc/<pid>/stat`` field 22, in clock ticks since boot) guards against a recycled pid. On
another host nothing can be checked, and the run is taken at its word.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessId", "this_process", "is_alive"]


@dataclass(frozen=True)
class ProcessId:
    pid: int
    host: str
    start: str | None  # None where the OS does not tell


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return stat.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def this_process() -> ProcessId:
    return ProcessId(os.getpid(), socket.gethostname(), _start_time(os.getpid()))


def is_alive(pid: int | None, host: str | None, start: str | None) -> bool:
    """False only when the process is known to be gone; unknown (other host, no pid) is alive."""
    if pid is None or host is None or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    fields = _stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    # False when the pid was recycled by another process
    return start is None or len(fields) <= 19 or fields[19] == start
