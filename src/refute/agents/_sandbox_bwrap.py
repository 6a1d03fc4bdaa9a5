"""The bubblewrap backend: a sandbox made of Linux namespaces, with no daemon and no image.

``bwrap`` builds a new user, PID, network, IPC, UTS and mount namespace and runs the executor
there as PID 1, as uid 1000 ("agent") with no capabilities. What the sandbox sees:

- /usr (and the /bin, /lib... links or folders) read-only, a few files of /etc (the dynamic
  linker's cache, the alternatives links, the time zone) and a generated passwd, group, hosts
  and hostname; a fresh /proc of its own PID namespace and a minimal /dev;
- /work, /home/agent, /tmp and /dev/shm: one tmpfs each of ``disk_mb``, the only writable places;
- nothing else of the host: no home folders, no /root, no repository, no host /tmp, no network
  (the new network namespace has only its own loopback).

When refute runs as root, bwrap itself runs as ``nobody`` (65534): the kernel does not apply
RLIMIT_NPROC to processes whose real uid is the host's root, even inside a user namespace, so a
fork bomb would not stop at ``max_procs``. bwrap also gets ``--die-with-parent``: if the Python
process dies (or the thread that opened the session ends), the sandbox dies with it.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from refute.agents._sandbox_session import EXECUTOR_SOURCE, SANDBOX_ENV, SandboxSession, task_entries
from refute.agents._sandbox_types import SandboxDiedError, SandboxError, SandboxLimits, SandboxUnavailableError

__all__ = ["BwrapSandbox", "bwrap_argv", "bwrap_problem", "sandbox_python"]

_UID = 1000
_NOBODY = 65534
#: Host /etc entries the sandbox gets read-only, when they exist.
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf")
#: Generated /etc files.
_ETC_DATA = {
    "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:{_UID}:{_UID}:agent:/home/agent:/bin/bash\n"
              f"nobody:x:{_NOBODY}:{_NOBODY}:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": f"root:x:0:\nagent:x:{_UID}:\nnogroup:x:{_NOBODY}:\n",
    "hostname": "sandbox\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
}
_INSTALL = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"


def sandbox_python() -> str | None:
    """The python3 the sandbox runs (it sees only /usr), or None when there is none under /usr."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return None


def bwrap_argv(limits: SandboxLimits, data_fds: Mapping[str, int] | None = None) -> list[str]:
    """bwrap's options for a sandbox with ``limits``, up to the command (which the caller appends).

    ``data_fds``: /etc file name -> a readable file descriptor holding its content (`_ETC_DATA`).
    """
    size = str(limits.disk_mb << 20)
    argv = [shutil.which("bwrap") or "bwrap",
            "--unshare-all", "--unshare-user", "--uid", str(_UID), "--gid", str(_UID), "--hostname", "sandbox",
            "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--dir", "/etc"]
    for name in _ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name, fd in (data_fds or {}).items():
        argv += ["--ro-bind-data", str(fd), f"/etc/{name}"]
    argv += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/work",
             "--dir", "/home", "--size", size, "--tmpfs", "/home/agent",
             "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/work", "--clearenv"]
    for key, value in SANDBOX_ENV.items():
        argv += ["--setenv", key, value]
    return argv


def bwrap_popen() -> dict[str, Any]:
    """How to start bwrap: as nobody when refute runs as root (see the module's docstring)."""
    options: dict[str, Any] = {"cwd": "/", "start_new_session": True}
    if os.geteuid() == 0:
        options |= {"user": _NOBODY, "group": _NOBODY, "extra_groups": []}
    return options


class BwrapSandbox(SandboxSession):
    """A sandbox session in bubblewrap namespaces (see the module's docstring)."""

    def __init__(self, files: Path | None = None, *, limits: SandboxLimits | None = None,
                 home_files: Mapping[str, str | bytes] | None = None) -> None:
        limits = limits or SandboxLimits()
        entries = task_entries(files, home_files, limits.disk_mb)
        python = sandbox_python()
        if shutil.which("bwrap") is None:
            raise SandboxUnavailableError(f"bwrap is not on PATH; {_INSTALL}")
        if python is None:
            raise SandboxUnavailableError("no python3 under /usr for the sandbox's executor; install one "
                                          "(Debian/Ubuntu: apt-get install python3-minimal)")
        fds: dict[str, int] = {}
        try:
            for name, text in _ETC_DATA.items():  # each fits in a pipe's buffer, so no writer thread
                read_fd, write_fd = os.pipe()
                fds[name] = read_fd
                os.write(write_fd, text.encode())
                os.close(write_fd)
            argv = [*bwrap_argv(limits, fds), python, "-I", "-S", "-c", EXECUTOR_SOURCE]
            super().__init__(argv, kind="bwrap", limits=limits, entries=entries,
                             popen=bwrap_popen() | {"pass_fds": tuple(fds.values())})
        except SandboxDiedError as exc:
            raise SandboxUnavailableError(f"bwrap could not make a sandbox: {exc}. {_HINT}") from exc
        except OSError as exc:
            raise SandboxUnavailableError(f"bwrap could not be started: {exc}. {_HINT}") from exc
        finally:
            for fd in fds.values():
                os.close(fd)


_HINT = ("It needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, and on Ubuntu "
         "24.04+ an AppArmor profile for bwrap or kernel.apparmor_restrict_unprivileged_userns=0); "
         f"if bwrap is missing, {_INSTALL}")


@functools.cache
def bwrap_problem() -> str | None:
    """Why a bwrap sandbox cannot run here, or None when it can: tried once (a sandbox runs
    ``true``), then cached; ``bwrap_problem.cache_clear()`` tries again."""
    try:
        with BwrapSandbox(limits=SandboxLimits(wall_s=10)) as box:
            result = box.run("true")
    except SandboxError as exc:
        return str(exc)
    if result.exit_code != 0:
        return f"a trivial command failed in the bwrap sandbox (exit {result.exit_code}): {result.stderr.strip()}"
    return None

