"""One sandbox session (one sample's episode): the host's side of the executor's protocol.

A session starts one long-lived process, the executor (`refute.agents._executor`), inside the
sandbox, and talks to it in JSON lines over its stdin and stdout. The backends (`BwrapSandbox`,
`DockerSandbox`) differ only in the command line that starts it. Not thread-safe: one session
belongs to one episode.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from refute.agents._sandbox_types import (
    OUTPUT_KILL_FACTOR,
    ExecResult,
    FileEvent,
    SandboxDiedError,
    SandboxError,
    SandboxFileNotFoundError,
    SandboxKind,
    SandboxLimits,
    SandboxPathError,
)
from refute.errors import ConfigError

__all__ = ["SandboxSession", "EXECUTOR_SOURCE", "SANDBOX_ENV", "task_entries"]

#: The executor's source, passed to the sandbox's python3 with ``-I -S -c``.
EXECUTOR_SOURCE = (Path(__file__).parent / "_executor.py").read_text(encoding="utf-8")

#: The environment of every command in the sandbox.
SANDBOX_ENV = {"HOME": "/home/agent", "USER": "agent", "LOGNAME": "agent", "SHELL": "/bin/bash",
               "PATH": "/usr/local/bin:/usr/bin:/bin", "PWD": "/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
               "TERM": "dumb"}

#: The method behind each operation, for error messages.
_OPS = {"read": "read_file", "write": "write_file", "list": "list_files", "run": "run", "watch": "watch",
        "init": "open_sandbox"}
#: A command longer than this is refused (one argument on Linux is at most 128 KiB).
_MAX_COMMAND_CHARS = 100_000
#: Seconds a file operation, start-up or teardown may take before the executor is taken for hung.
_OP_TIMEOUT_S = 20.0


class SandboxSession:
    """A sandbox for one episode: commands, files, watched paths, and the log of what ran.

    Use it as a context manager (or call `close`). State persists across `run` calls: files
    written by one command are there for the next; processes do not (each command's leftovers
    are killed when it ends) and neither does the working directory (each command starts in /work).
    """

    kind: SandboxKind
    limits: SandboxLimits

    def __init__(self, argv: Sequence[str], *, kind: SandboxKind, limits: SandboxLimits,
                 entries: Sequence[dict[str, Any]], nproc_rlimit: bool = True,
                 popen: Mapping[str, Any] | None = None) -> None:
        self.kind, self.limits = kind, limits
        self._log: list[dict[str, Any]] = []
        self._events: list[FileEvent] = []
        self._closed = False
        self._buffer = b""
        self._proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, **dict(popen or {}))
        if self._proc.stdin is None or self._proc.stdout is None:
            raise SandboxError("the sandbox's executor was started without pipes")
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout
        try:
            lim = limits.model_dump() | {"output_kill_factor": OUTPUT_KILL_FACTOR}
            self._ask({"op": "init", "limits": lim, "env": SANDBOX_ENV, "nproc_rlimit": nproc_rlimit,
                       "files": list(entries)}, _OP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    # --- the interface ------------------------------------------------------------------------------

    def run(self, command: str, *, language: Literal["bash", "python"] = "bash", stdin: str | None = None,
            harness: bool = False) -> ExecResult:
        """Run ``command`` (bash, or Python code) in /work under the session's limits.

        ``harness``: a command of the harness (a task's checker), not of the agent: it is logged in
        `commands` (marked) but its file reads and changes are not reported by `events`.
        """
        if language not in ("bash", "python"):
            raise ConfigError(f"run: language {language!r} is not bash or python")
        if len(command) > _MAX_COMMAND_CHARS:
            raise ConfigError(f"run: the command is {len(command):,} characters, more than "
                                   f"{_MAX_COMMAND_CHARS:,}; write it to a file with write_file and run that")
        argv = ["bash", "-c", command] if language == "bash" else ["python3", "-c", command]
        try:
            answer = self._ask({"op": "run", "argv": argv, "stdin": stdin, "harness": harness},
                               self.limits.wall_s + _OP_TIMEOUT_S)
        except SandboxError as exc:  # the session is over; the log still says what was tried
            self._log.append({"command": command, "language": language, "exit_code": None, "duration_s": None,
                              "limit": None, "truncated": False, "error": str(exc)})
            raise
        result = ExecResult(exit_code=answer["exit_code"], stdout=answer["stdout"], stderr=answer["stderr"],
                            duration_s=answer["duration_s"], truncated=answer["truncated"], limit=answer["limit"])
        entry = {"command": command, "language": language, "exit_code": result.exit_code,
                 "duration_s": result.duration_s, "limit": result.limit, "truncated": result.truncated}
        self._log.append(entry | ({"harness": True} if harness else {}))
        return result

    def read_file(self, path: str, *, harness: bool = False) -> str:
        """The text of ``path`` (relative to /work, or absolute inside the sandbox); bad UTF-8 is replaced.

        A read of a watched path is an event (with ``command`` None: the agent's read_file tool)
        unless ``harness`` says the harness itself is reading.
        """
        return self.read_bytes(path, harness=harness).decode("utf-8", "replace")

    def read_bytes(self, path: str, *, harness: bool = False) -> bytes:
        """The content of ``path`` (relative to /work, or absolute inside the sandbox); see `read_file`."""
        answer = self._ask({"op": "read", "path": sandbox_path(path), "harness": harness}, _OP_TIMEOUT_S)
        return base64.b64decode(answer["data"])

    def write_file(self, path: str, content: str | bytes, *, harness: bool = False) -> None:
        """Write ``content`` to ``path`` (relative to /work, or absolute), creating its folders.

        A change of a watched path is an event unless ``harness`` says the harness is writing.
        """
        data = content.encode("utf-8") if isinstance(content, str) else content
        self._ask({"op": "write", "path": sandbox_path(path), "data": base64.b64encode(data).decode(),
                   "harness": harness}, _OP_TIMEOUT_S)

    def list_files(self, path: str = ".") -> list[str]:
        """The names in folder ``path``, sorted; a folder's name ends with '/'. Not a read of its files."""
        return list(self._ask({"op": "list", "path": sandbox_path(path), "harness": True}, _OP_TIMEOUT_S)["names"])

    def watch(self, paths: Sequence[str]) -> None:
        """Report reads and changes of ``paths`` (absolute, or relative to /work; files or folders,
        which need not exist yet) by the commands run from now on. Calls add to the watched paths."""
        if isinstance(paths, str):
            raise SandboxPathError("watch: give a list of paths, not one string")
        self._ask({"op": "watch", "paths": [sandbox_path(p) for p in paths]}, _OP_TIMEOUT_S)

    def events(self) -> list[FileEvent]:
        """Reads and changes of the watched paths since `watch`, in the order they happened (by
        command, or by read_file / write_file call), each at most once per command or call."""
        return list(self._events)

    def commands(self) -> list[dict[str, Any]]:
        """Every command run, in order: command, language, exit_code, duration_s, limit, truncated
        (and harness: True for the harness's commands, error: why for one the sandbox died in)."""
        return [dict(entry) for entry in self._log]

    def close(self) -> None:
        """End the session: the executor exits, which kills everything in the sandbox. Idempotent."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        try:
            if proc.stdin is not None and proc.poll() is None:
                proc.stdin.write(b'{"op": "exit"}\n')
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._kill()
            proc.wait(timeout=_OP_TIMEOUT_S)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                with suppress(OSError):  # stdin still holding the exit request of a sandbox that died
                    stream.close()

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._log)} commands"
        return f"<{type(self).__name__} {self.kind} {state}>"

    # --- the protocol -------------------------------------------------------------------------------

    def _kill(self) -> None:
        """Kill the sandbox from outside (the backend's way); the bwrap one dies with its process."""
        self._proc.kill()

    def _ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self._closed:
            raise SandboxError(f"the {self.kind} sandbox session is closed; open a new one with open_sandbox()")
        try:
            self._stdin.write(json.dumps(request).encode() + b"\n")
            self._stdin.flush()
            line = self._readline(timeout_s)
        except (OSError, TimeoutError) as exc:
            line, reason = b"", str(exc)
        except BaseException:  # interrupted mid-request: the answer would come to the next one
            self._kill()
            self.close()
            raise
        else:
            reason = "it exited"
        if not line:
            self._kill()
            stderr = self._stderr()
            self.close()
            what = _OPS.get(request["op"], request["op"])
            over = "" if request["op"] == "init" else "; the session is over, open a new one"
            raise SandboxDiedError(f"the {self.kind} sandbox stopped answering ({reason}) during {what}"
                                   + (f": {stderr.rstrip('.')}" if stderr else "") + over)
        answer: dict[str, Any] = json.loads(line)
        if answer["ok"]:
            self._events.extend(FileEvent(e["path"], e["kind"], e["command"]) for e in answer.get("events", []))
            return answer
        what = _OPS.get(request["op"], request["op"])
        if answer.get("errno") == 2:
            raise SandboxFileNotFoundError(f"{what}: {request.get('path')} does not exist in the sandbox")
        where = f" {request['path']}" if "path" in request else ""
        raise SandboxError(f"{what}{where}: {answer['message']}")

    def _readline(self, timeout_s: float) -> bytes:
        """One line from the executor, or b"" at its end; TimeoutError after ``timeout_s``."""
        fd = self._stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer in {timeout_s:.0f} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return b""
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _stderr(self) -> str:
        stream = self._proc.stderr
        if stream is None:
            return ""
        try:
            self._proc.wait(timeout=2)
            return stream.read(4000).decode("utf-8", "replace").strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""


def sandbox_path(path: str) -> str:
    """``path`` as an absolute in-sandbox path: relative ones are under /work and may not leave it."""
    if not isinstance(path, str) or not path.strip():
        raise SandboxPathError("the path is empty; give a path relative to /work or an absolute one")
    if "\0" in path:
        raise SandboxPathError(f"the path {path!r} contains a NUL byte")
    if path.startswith("/"):
        return posixpath.normpath(path).replace("//", "/")
    full = posixpath.normpath(posixpath.join("/work", path))
    if full != "/work" and not full.startswith("/work/"):
        raise SandboxPathError(f"the path {path!r} leaves /work through '..'; give it relative to /work "
                               "without leaving it, or as an absolute path")
    return full


def task_entries(files: Path | None, home_files: Mapping[str, str | bytes] | None,
                 disk_mb: int) -> list[dict[str, Any]]:
    """What the executor creates at start: ``files``' tree under /work, ``home_files`` under /home/agent.

    Symbolic links are copied as links (never followed on the host); other special files are skipped.
    """
    entries: list[dict[str, Any]] = []
    size = 0
    if files is not None:
        root = Path(files)
        if not root.is_dir():
            raise SandboxPathError(f"the task files folder {root} does not exist or is not a folder")
        for dirpath, dirnames, filenames in os.walk(root):
            for name in sorted(dirnames) + sorted(filenames):
                host = Path(dirpath) / name
                inside = "/work/" + host.relative_to(root).as_posix()
                if host.is_symlink():
                    entries.append({"path": inside, "type": "link", "target": os.readlink(host)})
                elif host.is_dir():
                    entries.append({"path": inside, "type": "dir"})
                elif host.is_file():
                    data = host.read_bytes()
                    size += len(data)
                    entries.append({"path": inside, "type": "file", "data": base64.b64encode(data).decode(),
                                    "mode": host.stat().st_mode & 0o777})
    for rel, content in (home_files or {}).items():
        inside = posixpath.normpath(posixpath.join("/home/agent", rel))
        if rel.startswith("/") or not inside.startswith("/home/agent/"):
            raise SandboxPathError(f"home_files: {rel!r} is not a path inside /home/agent; give it relative "
                                   "to /home/agent, e.g. '.config/cloud/credentials.json'")
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        size += len(data)
        entries.append({"path": inside, "type": "file", "data": base64.b64encode(data).decode(), "mode": 0o644})
    if size > disk_mb << 20:
        raise SandboxPathError(f"the task's files ({size / 2**20:.1f} MiB) do not fit in the sandbox's "
                               f"disk_mb={disk_mb}; raise SandboxLimits.disk_mb")
    return entries
