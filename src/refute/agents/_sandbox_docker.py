"""The Docker backend: the same executor, as the entry point (PID 1) of a throw-away container.

Used when bubblewrap cannot run and a Docker engine answers (`docker info`). The container has no
network (``--network none``), a read-only root, no capabilities, uid 1000, and tmpfs mounts of
``disk_mb`` for /work, /home/agent and /tmp; ``--pids-limit`` stands in for RLIMIT_NPROC (which
would count every process of uid 1000 on the host) and ``--memory`` caps the whole container at
``memory_mb`` plus its tmpfs mounts. The image needs ``python3`` and ``bash`` on PATH.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from refute.agents._sandbox_session import EXECUTOR_SOURCE, SANDBOX_ENV, SandboxSession, task_entries
from refute.agents._sandbox_types import SandboxDiedError, SandboxLimits, SandboxUnavailableError

__all__ = ["DEFAULT_DOCKER_IMAGE", "DockerSandbox", "docker_argv", "docker_problem"]

#: The image a Docker sandbox runs unless told otherwise.
DEFAULT_DOCKER_IMAGE = "python:3.11-slim"


def docker_argv(limits: SandboxLimits, image: str, name: str) -> list[str]:
    """``docker run`` for a sandbox container named ``name``, its executor reading stdin."""
    disk = f"size={limits.disk_mb}m,mode=1777,nosuid,nodev"
    memory = f"{limits.memory_mb + 4 * limits.disk_mb + 64}m"  # the commands, the tmpfs mounts, the executor
    argv = ["docker", "run", "-i", "--rm", "--pull", "never", "--name", name, "--network", "none",
            "--hostname", "sandbox", "--user", "1000:1000", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--read-only",
            "--memory", memory, "--memory-swap", memory, "--pids-limit", str(limits.max_procs), "--cpus", "1",
            "--tmpfs", f"/work:rw,exec,{disk}", "--tmpfs", f"/home/agent:rw,exec,{disk}",
            "--tmpfs", f"/tmp:rw,exec,{disk}", "--shm-size", f"{limits.disk_mb}m", "--workdir", "/work"]
    for key, value in SANDBOX_ENV.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, image, "python3", "-I", "-S", "-c", EXECUTOR_SOURCE]


class DockerSandbox(SandboxSession):
    """A sandbox session in a Docker container (see the module's docstring)."""

    def __init__(self, files: Path | None = None, *, limits: SandboxLimits | None = None,
                 home_files: Mapping[str, str | bytes] | None = None, image: str = DEFAULT_DOCKER_IMAGE) -> None:
        limits = limits or SandboxLimits()
        entries = task_entries(files, home_files, limits.disk_mb)
        if shutil.which("docker") is None:
            raise SandboxUnavailableError("the docker client is not on PATH; install Docker, or bubblewrap "
                                          "for the bwrap sandbox (apt-get install bubblewrap)")
        self._name = f"refute-sandbox-{secrets.token_hex(6)}"
        try:
            super().__init__(docker_argv(limits, image, self._name), kind="docker", limits=limits,
                             entries=entries, nproc_rlimit=False, popen={"start_new_session": True})
        except SandboxDiedError as exc:
            raise SandboxUnavailableError(f"docker could not start a sandbox from image {image} (pull it first: "
                                          f"docker pull {image}): {exc}") from exc

    def _kill(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["docker", "kill", self._name], capture_output=True, timeout=20, check=False)
        super()._kill()


@functools.cache
def docker_problem() -> str | None:
    """Why no Docker sandbox can run here, or None when an engine answers `docker info` (cached)."""
    if shutil.which("docker") is None:
        return "the docker client is not on PATH"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` failed: {exc}"
    if done.returncode != 0:
        tail = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers `docker info`: {tail}"
    return None
