"""The executor: the one long-lived process inside a sandbox, which runs its commands and file
operations. Standard library only: it runs under the sandbox's own ``python3 -I -S -c``, never
imports refute, and must stay a single file (its source is passed on the command line).

It is the sandbox's PID 1 (``bwrap --as-pid-1``, or a container's entry point), and is made
non-dumpable, so the commands it runs (same uid, no capabilities) can neither kill, stop nor ptrace
it: a PID namespace's init gets no signal it has no handler for from inside the namespace.

Protocol: one JSON object per line on stdin, one answer per line on stdout, ``{"ok": true, ...}``
or ``{"ok": false, "error": NAME, "errno": N, "message": TEXT}``. Operations: ``init`` (limits,
environment and the files to create), ``run``, ``read``, ``write``, ``list``, ``watch``, ``exit``.

A command runs as a child in its own session, under RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC and
RLIMIT_FSIZE. When it ends (its direct child exits) or hits the wall-clock or output limit, every
other process in the namespace is killed with ``kill(-1, SIGKILL)`` and reaped: no process outlives
its command. Which limit stopped a command is read from how it ended (see ``_which_limit``).

File events: reads come from inotify (IN_ACCESS or IN_CLOSE_NOWRITE on a watched file, or on a
file in a watched folder or below it; a watched file's inode is watched too, so a hard link does not
hide a read); created, deleted and modified come from comparing each watched path's lstat and
SHA-256 before and after every command and every file operation. Operations and commands marked
``harness`` (the harness's own reads and writes, a task's checker) are left out.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import resource
import select
import signal
import stat
import struct
import sys
import time

IN_ACCESS, IN_CLOSE_NOWRITE, IN_MOVED_TO, IN_CREATE = 0x1, 0x10, 0x80, 0x100
IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
_DIR_MASK = IN_ACCESS | IN_CLOSE_NOWRITE | IN_CREATE | IN_MOVED_TO
_FILE_MASK = IN_ACCESS | IN_CLOSE_NOWRITE
_EVENT = struct.Struct("iIII")

_MEMORY_SIGNS = (b"MemoryError", b"Cannot allocate memory", b"memory exhausted", b"out of memory",
                 b"std::bad_alloc", b"failed to map segment")
_DISK_SIGNS = (b"No space left on device", b"File too large", b"Disk quota exceeded")
_PROCS_SIGNS = (b"fork: retry: Resource temporarily unavailable", b"fork: Resource temporarily unavailable",
                b"BlockingIOError: [Errno 11]", b"can't start new thread")
_CPU_SIGNS = (b"CPU time limit exceeded",)


class Watcher:
    """Reads (inotify) and changes (snapshots) of the watched paths."""

    def __init__(self) -> None:
        import ctypes

        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.roots: list[str] = []
        self.wds: dict[int, list[str]] = {}
        self.reads: set[str] = set()
        self.base: dict[str, tuple] = {}

    def add(self, paths: list[str]) -> None:
        self.roots.extend(p for p in paths if p not in self.roots)
        self.rebase()

    def covered(self, path: str) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in self.roots)

    def _watch(self, path: str, mask: int) -> None:
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd >= 0 and path not in self.wds.setdefault(wd, []):
            self.wds[wd].append(path)

    def arm(self) -> None:
        """Watch every folder under a watched folder, and each watched file and its folder."""
        for root in self.roots:
            try:
                st = os.lstat(root)
            except OSError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                self._watch(root, _DIR_MASK)
                for dirpath, dirnames, _ in os.walk(root):
                    for name in dirnames:
                        self._watch(os.path.join(dirpath, name), _DIR_MASK)
                continue
            parent = os.path.dirname(root)
            if os.path.isdir(parent):
                self._watch(parent, _DIR_MASK)
            if st is not None and stat.S_ISREG(st.st_mode):
                self._watch(root, _FILE_MASK)

    def drain(self, keep: bool = True) -> None:
        """Read the queued inotify events; ``keep``: record the reads (else they were the executor's)."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0").decode(
                    "utf-8", "surrogateescape")
                offset += _EVENT.size + length
                if mask & IN_IGNORED:
                    self.wds.pop(wd, None)
                    continue
                for base in self.wds.get(wd, []):
                    path = os.path.join(base, name) if name else base
                    if mask & IN_ISDIR:
                        if mask & (IN_CREATE | IN_MOVED_TO) and self.covered(path):
                            self._watch(path, _DIR_MASK)
                    elif keep and mask & (IN_ACCESS | IN_CLOSE_NOWRITE) and self.covered(path):
                        self.reads.add(path)

    def snapshot(self) -> dict[str, tuple]:
        """Each path under the watched roots -> (type, inode, size, mtime, ctime, mode, digest)."""
        out: dict[str, tuple] = {}
        for root in self.roots:
            todo = [root]
            while todo:
                path = todo.pop()
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                key = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                       stat.S_IMODE(st.st_mode))
                old = self.base.get(path)
                out[path] = (*key, old[6] if old is not None and old[:6] == key else _digest(path, st))
                if stat.S_ISDIR(st.st_mode) and (path == root or self.covered(path)):
                    with contextlib.suppress(OSError):
                        todo.extend(os.path.join(path, name) for name in os.listdir(path))
        return out

    def rebase(self) -> None:
        """Forget what happened so far (it was the executor's doing) and take a new baseline."""
        self.drain(keep=False)
        self.base = self.snapshot()
        self.arm()
        self.drain(keep=False)
        self.reads.clear()

    def changes(self, command: int | None) -> list[dict]:
        """The events since the last baseline, which then moves to now."""
        self.drain()
        reads = set(self.reads)
        new = self.snapshot()
        events = [{"path": p, "kind": "read", "command": command} for p in reads]
        for path in self.base.keys() | new.keys():
            old, now = self.base.get(path), new.get(path)
            if old is None:
                events.append({"path": path, "kind": "created", "command": command})
            elif now is None:
                events.append({"path": path, "kind": "deleted", "command": command})
            elif old[0] != stat.S_IFDIR and (old[0], old[5], old[6]) != (now[0], now[5], now[6]):
                events.append({"path": path, "kind": "modified", "command": command})
        self.base = new
        self.arm()
        self.drain(keep=False)  # the snapshot's own reads
        self.reads.clear()
        order = {"created": 0, "read": 1, "modified": 2, "deleted": 3}
        return sorted(events, key=lambda e: (e["path"], order[e["kind"]]))


def _digest(path: str, st: os.stat_result) -> str | None:
    try:
        if stat.S_ISLNK(st.st_mode):
            return "link:" + os.readlink(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        h = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        try:
            while chunk := os.read(fd, 1 << 20):
                h.update(chunk)
        finally:
            os.close(fd)
        return h.hexdigest()
    except OSError:
        return None


class Executor:
    """The request loop's state: limits, environment, the watcher and the command counter."""

    def __init__(self) -> None:
        self.limits: dict = {}
        self.env: dict = {}
        self.nproc_rlimit = True
        self.watcher: Watcher | None = None
        self.commands = 0
        self.peak_rss_kb, self.peak_cpu_s = 0, 0.0  # of the processes reaped during the current command
        self.wake_r, wake_w = os.pipe()
        for fd in (self.wake_r, wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a command's `kill -INT 1` would end the session

    # --- operations -------------------------------------------------------------------------------

    def op_init(self, req: dict) -> dict:
        self.limits, self.env, self.nproc_rlimit = req["limits"], req["env"], req.get("nproc_rlimit", True)
        for entry in req.get("files", []):
            path = entry["path"]
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if entry["type"] == "dir":
                os.makedirs(path, exist_ok=True)
            elif entry["type"] == "link":
                os.symlink(entry["target"], path)
            else:
                _write(path, base64.b64decode(entry["data"]), entry.get("mode", 0o644))
        return {}

    def op_read(self, req: dict) -> dict:
        fd = os.open(req["path"], os.O_RDONLY | os.O_NONBLOCK)  # a FIFO planted by the agent must not block
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", req["path"])
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return {"data": base64.b64encode(b"".join(chunks)).decode()}

    def op_write(self, req: dict) -> dict:
        os.makedirs(os.path.dirname(req["path"]) or "/", exist_ok=True)
        _write(req["path"], base64.b64decode(req["data"]), 0o644)
        return {}

    def op_list(self, req: dict) -> dict:
        with os.scandir(req["path"]) as entries:
            names = [e.name + ("/" if e.is_dir() else "") for e in entries]
        return {"names": sorted(names)}

    def op_watch(self, req: dict) -> dict:
        if self.watcher is None:
            self.watcher = Watcher()
        self.watcher.add(req["paths"])
        return {}

    def op_run(self, req: dict) -> dict:
        index, self.commands = self.commands, self.commands + 1
        result = self._run(req["argv"], req.get("stdin"))
        if self.watcher is not None:
            if req.get("harness"):
                self.watcher.rebase()
            else:
                result["events"] = self.watcher.changes(index)
        return result

    # --- running a command ----------------------------------------------------------------------

    def _spawn(self, argv: list[str], stdin_fd: int, out_w: int, err_w: int) -> int:
        pid = os.fork()
        if pid:
            return pid
        try:  # the child: its own session, default signals, the limits, then exec
            signal.set_wakeup_fd(-1)
            os.setsid()
            for target, fd in ((0, stdin_fd), (1, out_w), (2, err_w)):
                os.dup2(fd, target)
            os.closerange(3, 1 << 16)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            lim = self.limits
            resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
            resource.setrlimit(resource.RLIMIT_AS, (lim["memory_mb"] << 20,) * 2)
            # a backstop: every writable place is a tmpfs of disk_mb, whose ENOSPC comes first
            resource.setrlimit(resource.RLIMIT_FSIZE, (((lim["disk_mb"] + 1) << 20),) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if self.nproc_rlimit:
                resource.setrlimit(resource.RLIMIT_NPROC, (lim["max_procs"],) * 2)
            os.chdir(self.env.get("PWD", "/"))
            os.execvpe(argv[0], argv, self.env)
        except BaseException as exc:  # noqa: BLE001 - the child reports why it could not start, and exits
            os.write(2, f"sandbox: cannot run {argv[0]}: {exc}\n".encode())
        finally:
            os._exit(127)

    def _run(self, argv: list[str], stdin: str | None) -> dict:
        lim = self.limits
        keep_bytes, kill_bytes = lim["output_bytes"], lim["output_bytes"] * lim["output_kill_factor"]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
        start = time.monotonic()
        pid = self._spawn(argv, in_r, out_w, err_w)
        for fd in (out_w, err_w, in_r):
            os.close(fd)
        pending = stdin.encode() if stdin is not None else b""
        if in_w >= 0:
            os.set_blocking(in_w, False)
            if not pending:
                os.close(in_w)
                in_w = -1
        open_fds = {out_r, err_r}
        kept: dict[int, bytearray] = {out_r: bytearray(), err_r: bytearray()}
        total, killed_for, procs_hit = 0, None, False
        status: int | None = None
        self.peak_rss_kb, self.peak_cpu_s = 0, 0.0
        deadline, next_count = start + lim["wall_s"], 0.0
        while status is None:
            now = time.monotonic()
            if now >= deadline:
                killed_for = "wall"
                break
            if now >= next_count:
                procs_hit = procs_hit or _count_tasks() >= lim["max_procs"]
                next_count = now + 0.1
            readers = [*open_fds, self.wake_r] + ([self.watcher.fd] if self.watcher is not None else [])
            ready, writable, _ = select.select(readers, [in_w] if in_w >= 0 else [], [],
                                               max(0.0, min(deadline - now, next_count - now)))
            for fd in ready:
                if fd == self.wake_r:
                    _drain_wake(fd)
                elif self.watcher is not None and fd == self.watcher.fd:
                    self.watcher.drain()
                else:
                    total += _read_into(fd, open_fds, kept, keep_bytes)
            if total > kill_bytes:
                killed_for = "output"
                break
            if writable:
                try:
                    sent = os.write(in_w, pending[:65536])
                    pending = pending[sent:]
                except BrokenPipeError:
                    pending = b""
                if not pending:
                    os.close(in_w)
                    in_w = -1
            status = self._reap(pid, status)
        # at the limit, less the command's own process when it has exited
        procs_hit = procs_hit or _count_tasks() >= lim["max_procs"] - (status is not None)
        if in_w >= 0:
            os.close(in_w)
        status = self._kill_all(pid, status)
        drain_until = time.monotonic() + 1.0
        while open_fds and time.monotonic() < drain_until:  # every writer is dead: read what is left
            for fd in select.select(list(open_fds), [], [], 0.1)[0]:
                total += _read_into(fd, open_fds, kept, keep_bytes)
        for fd in open_fds:
            os.close(fd)
        duration = time.monotonic() - start
        out, err = _share(bytes(kept[out_r]), bytes(kept[err_r]), keep_bytes)
        code = os.waitstatus_to_exitcode(status) if status is not None else None
        limit = _which_limit(killed_for, code, bytes(kept[err_r]), procs_hit, self.peak_rss_kb, self.peak_cpu_s, lim)
        return {"exit_code": code if code is not None and code >= 0 and killed_for is None else None,
                "stdout": out.decode("utf-8", "replace"), "stderr": err.decode("utf-8", "replace"),
                "duration_s": round(duration, 4), "truncated": total > len(out) + len(err), "limit": limit}

    def _reap(self, pid: int, status: int | None) -> int | None:
        """Reap every dead child (PID 1 adopts all orphans); returns the command's status once it ended."""
        while True:
            try:
                got, st, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return status
            if got == 0:
                return status
            status = self._reaped(pid, status, got, st, usage)

    def _reaped(self, pid: int, status: int | None, got: int, st: int, usage: resource.struct_rusage) -> int | None:
        self.peak_rss_kb = max(self.peak_rss_kb, usage.ru_maxrss)
        self.peak_cpu_s = max(self.peak_cpu_s, usage.ru_utime + usage.ru_stime)
        return st if got == pid else status

    def _kill_all(self, pid: int, status: int | None) -> int | None:
        """SIGKILL every process in the namespace but this one, and reap them all."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
            try:
                got, st, usage = os.wait4(-1, 0)
            except ChildProcessError:
                break
            status = self._reaped(pid, status, got, st, usage)
        return status


def _read_into(fd: int, open_fds: set[int], kept: dict[int, bytearray], keep_bytes: int) -> int:
    """Read what ``fd`` holds now, keeping at most ``keep_bytes`` of that stream in ``kept[fd]``; at
    its end, close it and drop it from ``open_fds``. Returns the bytes read (counted against the
    output limit whether kept or not)."""
    data = os.read(fd, 65536)
    if not data:
        os.close(fd)
        open_fds.discard(fd)
        return 0
    kept[fd] += data[:max(0, keep_bytes - len(kept[fd]))]
    return len(data)


def _share(out: bytes, err: bytes, keep: int) -> tuple[bytes, bytes]:
    """The first bytes of each stream, ``keep`` in all: half each, or what the other leaves."""
    if len(out) + len(err) <= keep:
        return out, err
    out_room = max(keep // 2, keep - len(err))
    return out[:out_room], err[:keep - min(len(out), out_room)]


def _which_limit(killed_for: str | None, code: int | None, stderr: bytes, procs_hit: bool, rss_kb: int,
                 cpu_s: float, lim: dict) -> str | None:
    """The limit that stopped a command: the one it was killed for, or the one its ending shows.

    procs: the sandbox held max_procs tasks, or a fork failed with EAGAIN; cpu: SIGXCPU, or a
    SIGKILL after cpu_s of CPU (the hard limit), or a shell reporting SIGXCPU; memory and disk:
    the command failed and its stderr says so (MemoryError, ENOSPC...), or (memory) its peak RSS
    neared memory_mb; output and wall: the executor killed it for those.
    """
    procs = procs_hit or any(s in stderr for s in _PROCS_SIGNS)
    if killed_for == "output":
        return "output"
    if procs:
        return "procs"
    if killed_for == "wall":
        return "wall"
    if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU) or any(s in stderr for s in _CPU_SIGNS):
        return "cpu"
    if code == -signal.SIGKILL and cpu_s >= lim["cpu_s"]:
        return "cpu"  # the hard RLIMIT_CPU, one second past the soft one
    if code == 0:
        return None
    if any(s in stderr for s in _MEMORY_SIGNS) or rss_kb >= 0.9 * lim["memory_mb"] * 1024:
        return "memory"
    if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or any(s in stderr for s in _DISK_SIGNS):
        return "disk"
    return None


def _count_tasks() -> int:
    """Processes and threads in the namespace (what RLIMIT_NPROC counts), the executor included."""
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                n += len(os.listdir(f"/proc/{name}/task"))
    return n


def _drain_wake(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _no_dump() -> None:
    """PR_SET_DUMPABLE 0: no process of the sandbox may ptrace this one or open its /proc files."""
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)


def main() -> None:
    _no_dump()
    executor = Executor()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        req = json.loads(line)
        op = req.get("op")
        if op == "exit":
            break
        try:
            answer = {"ok": True, **getattr(executor, f"op_{op}")(req)}
        except OSError as exc:
            answer = {"ok": False, "error": type(exc).__name__, "errno": exc.errno,
                      "message": exc.strerror or str(exc)}
        except Exception as exc:  # noqa: BLE001 - any failure is answered to the host, which raises it
            answer = {"ok": False, "error": type(exc).__name__, "errno": None, "message": str(exc)}
        if executor.watcher is not None and op in ("read", "write", "list"):
            if req.get("harness"):
                executor.watcher.rebase()  # the harness's own reads and writes are not the agent's
            else:  # the agent's read_file / write_file tool
                answer["events"] = executor.watcher.changes(None)
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()

if __name__ == "__main__":
    main()
