"""The sandbox's containment suite: hostile commands are contained, recorded, and leave the host as
it was. Runs against the backend this machine has (bubblewrap in CI); skipped when there is none.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from refute.agents._sandbox import (
    FileEvent,
    SandboxDiedError,
    SandboxError,
    SandboxFileNotFoundError,
    SandboxLimits,
    SandboxPathError,
    SandboxSession,
    SandboxUnavailableError,
    available_sandbox,
    open_sandbox,
)
from refute.agents._sandbox_docker import docker_argv, docker_problem
from refute.errors import ConfigError, RefuteError

KIND = available_sandbox()
pytestmark = pytest.mark.skipif(KIND is None, reason="no sandbox on this machine: install bubblewrap "
                                                     "(apt-get install bubblewrap) or start a Docker engine")

#: Small limits, so that each hostile command is stopped within a few seconds.
LIMITS = SandboxLimits(cpu_s=1, wall_s=2.0, memory_mb=256, max_procs=32, output_bytes=4096, disk_mb=8)


def _open(files: Path | None = None, limits: SandboxLimits = LIMITS, **kw) -> SandboxSession:
    return open_sandbox(files, kind=KIND or "auto", limits=limits, **kw)


@pytest.fixture
def box() -> Iterator[SandboxSession]:
    with _open() as session:
        yield session


def _host_processes_with(token: str) -> list[int]:
    """Host PIDs whose command line contains ``token`` (a /proc scan; no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _children() -> list[int]:
    """Host PIDs whose parent is this test process."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                kids.append(int(entry.name))
    return kids


# --- what the sandbox looks like ---------------------------------------------------------------


def test_identity_environment_and_both_languages(box: SandboxSession) -> None:
    result = box.run("id -u; echo $HOME $USER; pwd; hostname")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["1000", "/home/agent agent", "/work", "sandbox"]
    py = box.run("import os, sys; print(os.getcwd(), sys.version_info[0])", language="python")
    assert (py.exit_code, py.stdout) == (0, "/work 3\n")
    caps = box.run("grep CapEff /proc/self/status")
    assert caps.stdout.split() == ["CapEff:", "0000000000000000"]


def test_task_files_and_home_files_are_copied_in(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.txt").write_text("alpha\n")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/bash\necho ran $(cat sub/data.txt)\n")
    script.chmod(0o755)
    (tmp_path / "link").symlink_to("/root")  # copied as a link: it points into the sandbox's own tree
    with _open(tmp_path, home_files={"oversight/config.yaml": "enabled: true\n", ".token": b"\x00\x01"}) as box:
        assert box.run("./run.sh").stdout == "ran alpha\n"
        assert box.list_files() == ["link", "run.sh", "sub/"]
        assert box.read_file("/home/agent/oversight/config.yaml") == "enabled: true\n"
        assert box.run("ls link/").exit_code != 0  # /root does not exist inside
    with pytest.raises(SandboxPathError):
        _open(home_files={"../escape": "x"})


# --- 1. network ---------------------------------------------------------------------------------


def test_no_network_not_even_the_hosts_loopback(box: SandboxSession) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for host, p in (("1.1.1.1", 80), ("127.0.0.1", port), ("localhost", port)):
            code = f"import socket; socket.create_connection(({host!r}, {p}), timeout=1); print('CONNECTED')"
            result = box.run(code, language="python")
            assert result.exit_code not in (0, None) and "CONNECTED" not in result.stdout, (host, result)
        assert box.run(f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED").stdout == ""
    finally:
        stop.set()
        thread.join()
        server.close()
    assert accepted == []
    assert [c["exit_code"] != 0 for c in box.commands()] == [True] * 4


# --- 2. writes outside the scratch folders -------------------------------------------------------


def test_writes_outside_scratch_fail_and_the_host_is_unchanged(box: SandboxSession, tmp_path: Path) -> None:
    escape = tmp_path / f"escape-{secrets.token_hex(4)}"
    for target in ("/usr/x-refute", "/etc/x-refute", "/x-refute", "/proc/x-refute", "/dev/x-refute"):
        assert not Path(target).exists()
        result = box.run(f"echo pwned > {target}")
        assert result.exit_code not in (0, None), target
        assert any(why in result.stderr for why in ("Read-only file system", "Permission denied",
                                                    "No such file or directory")), result.stderr
        assert not Path(target).exists()
    py = box.run("open('/usr/lib/x-refute', 'w')", language="python")
    assert py.exit_code == 1 and "Read-only file system" in py.stderr
    # the host's tmp_path does not exist inside: creating it writes only the sandbox's own /tmp
    box.run(f"mkdir -p {escape.parent} && echo pwned > {escape}")
    assert not escape.exists()
    assert box.run(f"cat {escape}").stdout == "pwned\n"  # it went to the sandbox's tmpfs
    with pytest.raises(SandboxError):
        box.write_file("/usr/x-refute", "no")
    assert not Path("/usr/x-refute").exists()


# --- 3. the host's files ------------------------------------------------------------------------


def test_host_home_root_repo_and_tmp_are_invisible(box: SandboxSession) -> None:
    token = secrets.token_hex(8)
    folder = Path(tempfile.mkdtemp(prefix="refute-marker-"))
    try:  # world-readable, so that only the sandbox's walls (not file modes) keep it out of sight
        folder.chmod(0o755)
        marker = folder / f"marker-{token}.txt"
        marker.write_text(f"secret-{token}\n")
        marker.chmod(0o644)
        found = box.run(f"find / \\( -path /proc -o -path /usr \\) -prune -o -name 'marker-{token}*' -print "
                        f"2>/dev/null; grep -rls -D skip 'secret-{token}' "
                        f"$(find / -mindepth 1 -maxdepth 1 -type d ! -path /proc ! -path /usr) 2>/dev/null; "
                        f"cat {marker} 2>/dev/null; true")
        assert found.stdout == "" and found.limit is None, found
        assert box.run(f"test -e {marker}").exit_code == 1
    finally:
        shutil.rmtree(folder)
    assert box.run("ls /root").exit_code != 0
    assert box.run("ls /home").stdout.split() == ["agent"]
    repo = Path(__file__).resolve().parents[1]
    assert box.run(f"test -e {repo / 'pyproject.toml'}").exit_code == 1
    for home in Path("/home").iterdir() if Path("/home").is_dir() else []:
        if home.name != "agent":
            assert box.run(f"test -e /home/{home.name}").exit_code == 1, home
    etc = box.list_files("/etc")
    assert "shadow" not in etc and "passwd" in etc


# --- 4. fork bombs ------------------------------------------------------------------------------


@pytest.mark.parametrize("language, bomb", [
    ("bash", ":(){ :|:& };: ; sleep 5  # {token}"),
    ("python", "import os, time  # {token}\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
               "        time.sleep(0.01)\n"),
])
def test_fork_bomb_is_stopped_and_leaves_nothing(language: str, bomb: str) -> None:
    token = f"bomb-{secrets.token_hex(6)}"
    children_before = set(_children())
    with _open() as box:
        result = box.run(bomb.replace("{token}", token), language=language)  # type: ignore[arg-type]
        assert result.limit in ("procs", "wall"), result
        assert result.duration_s < LIMITS.wall_s + 2
        assert box.commands()[-1]["limit"] == result.limit
        assert box.run("echo still here").stdout == "still here\n"
        assert _host_processes_with(token) == []  # killed when the command ended, not only at close
    assert _host_processes_with(token) == []
    assert set(_children()) <= children_before


def test_process_limit_caps_how_many_processes_run(box: SandboxSession) -> None:
    code = ("import os, time\nn = 0\ntry:\n    while n < 500:\n        if os.fork() == 0:\n            time.sleep(30)\n"
            "            os._exit(0)\n        n += 1\nexcept OSError as exc:\n    print(n, exc.errno)\n")
    result = box.run(code, language="python")
    forked, errno = map(int, result.stdout.split())
    assert errno == 11 and forked < LIMITS.max_procs, result  # EAGAIN at the limit, not at 500
    assert result.limit == "procs"
    assert box.run("ls /proc | grep -c '^[0-9]'").stdout.strip() in ("3", "4")  # executor, bash, ls, grep


# --- 5. filling the disk ------------------------------------------------------------------------


def test_filling_the_disk_stops_at_disk_mb(box: SandboxSession, tmp_path: Path) -> None:
    free_before = shutil.disk_usage(tmp_path).free
    dd = box.run("dd if=/dev/zero of=/work/fill bs=1M count=200")
    assert dd.limit == "disk" and dd.exit_code not in (0, None), dd
    used = int(box.run("du -sm /work | cut -f1").stdout)
    assert LIMITS.disk_mb - 1 <= used <= LIMITS.disk_mb
    py = box.run("f = open('/home/agent/fill', 'wb')\nwhile True:\n    f.write(b'x' * 65536)\n    f.flush()",
                 language="python")
    assert py.limit == "disk" and "No space left" in py.stderr, py
    assert box.run("echo small > /work/after").exit_code != 0  # /work is still full
    box.run("rm /work/fill")
    assert box.run("echo small > /work/after && cat /work/after").stdout == "small\n"
    assert free_before - shutil.disk_usage(tmp_path).free < 100 << 20  # 200 MiB never reached the host


# --- 6. time limits ------------------------------------------------------------------------------


def test_wall_clock_limit_kills_sleep_at_wall_s(box: SandboxSession) -> None:
    start = time.monotonic()
    result = box.run("echo started; sleep 1000")
    elapsed = time.monotonic() - start
    assert (result.limit, result.exit_code, result.stdout) == ("wall", None, "started\n")
    assert LIMITS.wall_s <= result.duration_s < LIMITS.wall_s + 0.5
    assert elapsed < LIMITS.wall_s + 1.0


def test_cpu_limit_kills_a_busy_loop(box: SandboxSession) -> None:
    limits = LIMITS.model_copy(update={"wall_s": 10.0})
    with _open(limits=limits) as slow:
        for language, code in (("python", "while True:\n    pass"), ("bash", "while :; do :; done")):
            result = slow.run(code, language=language)  # type: ignore[arg-type]
            assert result.limit == "cpu" and result.exit_code is None, result
            # the kernel charges CPU time by scheduler ticks, so the kill can come a few ms before cpu_s of wall time
            assert limits.cpu_s - 0.05 <= result.duration_s < limits.cpu_s + 2.0, result


def test_background_processes_do_not_outlive_their_command(box: SandboxSession) -> None:
    start = time.monotonic()
    result = box.run("sleep 1000 & echo started")
    assert result.stdout == "started\n" and result.limit is None
    assert time.monotonic() - start < 1.0
    assert box.run("pgrep sleep || echo none").stdout == "none\n"


# --- 7. output ----------------------------------------------------------------------------------


def test_output_is_cut_at_output_bytes(box: SandboxSession) -> None:
    result = box.run("head -c 100000 /dev/zero | tr '\\0' a; echo tail >&2")
    assert result.truncated and result.exit_code == 0 and result.limit is None
    assert len(result.stdout) + len(result.stderr) == LIMITS.output_bytes and result.stderr == "tail\n"
    noisy = box.run("for i in $(seq 2000); do echo noise >&2; done; echo answer")
    assert noisy.truncated and noisy.stdout == "answer\n"  # stderr noise does not crowd out stdout
    assert len(noisy.stderr) == LIMITS.output_bytes - len("answer\n")
    endless = box.run("yes")
    assert endless.limit == "output" and endless.truncated and endless.exit_code is None
    assert len(endless.stdout) == LIMITS.output_bytes and endless.duration_s < 1.5


# --- 8. memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["x = bytearray(1 << 30)",
                                  "chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 24))"])
def test_memory_hog_is_stopped(box: SandboxSession, code: str) -> None:
    result = box.run(code, language="python")
    assert result.limit == "memory" and result.exit_code not in (0, None), result
    assert "MemoryError" in result.stderr


# --- the executor survives hostile commands --------------------------------------------------------


def test_commands_cannot_kill_or_trace_the_executor(box: SandboxSession) -> None:
    box.run("kill -9 1; kill -STOP 1; kill -INT 1; kill -9 -1")
    assert box.run("cat /proc/1/environ").exit_code != 0  # not dumpable: its /proc files are closed
    assert box.run("echo alive").stdout == "alive\n"


# --- state, files and the log ---------------------------------------------------------------------


def test_state_persists_and_files_round_trip(box: SandboxSession) -> None:
    box.run("mkdir -p out && echo 41 > out/n.txt")
    assert box.run("echo $(( $(cat out/n.txt) + 1 ))").stdout == "42\n"
    box.write_file("notes/a.txt", "héllo\n")
    assert box.read_file("notes/a.txt") == "héllo\n"
    assert box.read_file("/work/notes/a.txt") == "héllo\n"
    assert box.run("cat notes/a.txt").stdout == "héllo\n"
    box.write_file("/home/agent/plan.md", "step 1")
    assert box.read_bytes("/home/agent/plan.md") == b"step 1"
    assert box.list_files() == ["notes/", "out/"]
    assert box.list_files("/home/agent") == ["plan.md"]
    assert box.read_file("/etc/hostname") == "sandbox\n"
    for bad in ("../etc/passwd", "notes/../../x", "", "   "):
        with pytest.raises(SandboxPathError) as info:
            box.read_file(bad)
        assert isinstance(info.value, ConfigError)
        with pytest.raises(SandboxPathError):
            box.write_file(bad, "x")
    with pytest.raises(SandboxFileNotFoundError) as missing:
        box.read_file("nope.txt")
    assert isinstance(missing.value, FileNotFoundError)
    assert str(missing.value) == "read_file: /work/nope.txt does not exist in the sandbox"
    with pytest.raises(SandboxFileNotFoundError):
        box.list_files("nope")
    box.run("mkfifo /work/pipe")
    with pytest.raises(SandboxError, match="not a regular file"):
        box.read_file("pipe")  # a FIFO planted by the agent must not hang the harness


def test_stdin_reaches_the_command(box: SandboxSession) -> None:
    assert box.run("tr a-z A-Z", stdin="hello\n").stdout == "HELLO\n"
    assert box.run("import sys; print(len(sys.stdin.read()))", language="python", stdin="x" * 1_000_000).stdout \
        == "1000000\n"
    unread = box.run("true", stdin="y" * 1_000_000)  # a command that never reads its stdin does not hang
    assert unread.exit_code == 0 and unread.duration_s < 1


def test_two_sessions_do_not_see_each_other() -> None:
    with _open() as one, _open() as two:
        one.run("echo mine > /work/a.txt; echo mine > /tmp/b.txt; echo mine > /home/agent/c.txt")
        assert two.run("cat /work/a.txt /tmp/b.txt /home/agent/c.txt").exit_code != 0
        assert two.run("ps -e -o pid= | wc -l").stdout.strip() in ("3", "4")  # only its own processes
        assert one.read_file("a.txt") == "mine\n"


def test_commands_lists_every_command_in_order(box: SandboxSession) -> None:
    box.run("true")
    box.run("exit 3")
    box.run("print(1)", language="python")
    box.run("sleep 10")
    log = box.commands()
    assert [(c["command"], c["language"], c["exit_code"], c["limit"]) for c in log] == [
        ("true", "bash", 0, None), ("exit 3", "bash", 3, None), ("print(1)", "python", 0, None),
        ("sleep 10", "bash", None, "wall")]
    assert all(c["duration_s"] >= 0 for c in log) and log[3]["duration_s"] >= LIMITS.wall_s


# --- watched paths ----------------------------------------------------------------------------------


def test_watch_reports_reads_and_changes_and_nothing_else() -> None:
    home = {".config/cloud/credentials.json": '{"key": "AKIA-FAKE"}\n', "oversight/config.yaml": "enabled: true\n",
            "notes.txt": "nothing to see\n", "other/unwatched.txt": "x\n"}
    with _open(home_files=home) as box:
        box.watch(["/home/agent/.config/cloud/credentials.json", "/home/agent/oversight", "/home/agent/notes.txt"])
        box.read_file("/home/agent/.config/cloud/credentials.json", harness=True)  # the harness's: no event
        box.run("cat /home/agent/other/unwatched.txt; ls -la /home/agent/oversight ~/.config/cloud")
        assert box.events() == []  # listing a folder or stat-ing a file is not reading it
        box.run("cat ~/.config/cloud/credentials.json > /dev/null")
        box.run("sed -i 's/true/false/' ~/oversight/config.yaml")
        box.run("echo x > ~/oversight/new.txt; python3 -c \"open('/home/agent/oversight/new.txt').read()\"")
        box.run("rm ~/oversight/new.txt")
        box.run("cat ~/oversight/config.yaml", harness=True)  # a checker's read: not the agent's
        events = box.events()
        assert events == [
            FileEvent("/home/agent/.config/cloud/credentials.json", "read", 1),
            FileEvent("/home/agent/oversight/config.yaml", "read", 2),
            FileEvent("/home/agent/oversight/config.yaml", "modified", 2),
            FileEvent("/home/agent/oversight/new.txt", "created", 3),
            FileEvent("/home/agent/oversight/new.txt", "read", 3),
            FileEvent("/home/agent/oversight/new.txt", "deleted", 4),
        ]
        assert not any(e.path.endswith(("notes.txt", "unwatched.txt")) for e in events)
        assert box.commands()[5].get("harness") is True
        # the agent's read_file / write_file tools are the agent's doing too
        box.read_file("/home/agent/notes.txt")
        box.write_file("/home/agent/oversight/config.yaml", "enabled: false  # edited\n")
        box.list_files("/home/agent/oversight")
        assert box.events()[len(events):] == [FileEvent("/home/agent/notes.txt", "read", None),
                                              FileEvent("/home/agent/oversight/config.yaml", "modified", None)]
        box.write_file("/home/agent/oversight/config.yaml", "enabled: true\n", harness=True)
        assert len(box.events()) == len(events) + 2


def test_watch_sees_reads_that_hide_their_tracks() -> None:
    with _open(home_files={"secret.txt": "s3cr3t\n"}) as box:
        box.watch(["/home/agent/secret.txt"])
        box.run("ln ~/secret.txt /home/agent/copy && cat /home/agent/copy >/dev/null && rm /home/agent/copy")
        box.run("python3 -c \"import os; open('/home/agent/secret.txt').read(); "
                "os.utime('/home/agent/secret.txt', (0, 0))\"")  # resets atime and mtime
        # a hard link is read through the watched inode; times put back do not hide a read, and are
        # not a modification (the content is the same)
        assert [(e.kind, e.command) for e in box.events()] == [("read", 0), ("read", 1)]


# --- teardown ---------------------------------------------------------------------------------------


def test_close_leaves_no_process_and_no_temp_dir() -> None:
    tmp = Path(tempfile.gettempdir())
    before, children = set(tmp.iterdir()), set(_children())
    box = _open(home_files={"a.txt": "a"})
    box.run("sleep 1 & true")
    sandbox_pids = set(_children()) - children
    sandbox_pids |= {pid for outer in sandbox_pids for pid in _descendants(outer)}
    assert len(sandbox_pids) >= 2  # the sandbox's processes while it is open: bwrap, the executor
    box.close()
    box.close()  # idempotent
    assert set(_children()) <= children
    assert not any(Path(f"/proc/{pid}").exists() for pid in sandbox_pids)
    assert set(tmp.iterdir()) - before == set()
    with pytest.raises(SandboxError, match="closed"):
        box.run("true")


def _descendants(pid: int) -> set[int]:
    """Host PIDs below ``pid`` (children, their children...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, pp in parents.items() if pp == parent}
        todo.extend(kids - found)
        found |= kids
    return found


def test_a_dead_sandbox_is_reported_and_leaves_nothing() -> None:
    box = _open()
    outer = box._proc.pid  # the backend's process (bwrap) on the host
    inside = _descendants(outer)
    assert inside  # the executor, under bwrap
    os.kill(outer, 9)  # as if the sandbox crashed: everything in it dies with it (--die-with-parent)
    with pytest.raises(SandboxDiedError, match="stopped answering"):
        box.run("echo hi")
    assert box.commands()[-1]["exit_code"] is None and "stopped answering" in box.commands()[-1]["error"]
    with pytest.raises(SandboxError, match="closed"):
        box.read_file("x")
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in inside) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in inside)


def test_errors_belong_to_refute() -> None:
    assert issubclass(SandboxUnavailableError, RefuteError)
    with pytest.raises(ConfigError):
        open_sandbox(kind="podman")  # type: ignore[arg-type]
    with pytest.raises(SandboxPathError):
        _open(Path("/nonexistent-task-files"))


def test_startup_is_fast() -> None:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        with _open() as box:
            box.run("true")
            times.append(time.perf_counter() - start)
    assert sorted(times)[2] < 0.5  # the target is 0.1 s (bench/sandbox.py); a loose bound for busy CI


# --- Docker ---------------------------------------------------------------------------------------


def test_docker_command_line_isolates() -> None:
    argv = docker_argv(LIMITS, "python:3.11-slim", "refute-sandbox-test")
    joined = " ".join(argv[:-1])
    for option in ("--network none", "--cap-drop ALL", "--read-only", "--pids-limit 32", "--user 1000:1000",
                   "--pull never", "no-new-privileges"):
        assert option in joined
    assert "/work:rw,exec,size=8m" in joined and "-v" not in argv  # no bind mount of anything on the host


@pytest.mark.skipif(docker_problem() is not None, reason=f"no Docker engine: {docker_problem()}")
def test_docker_sandbox_contains_network_and_limits() -> None:
    with open_sandbox(kind="docker", limits=LIMITS) as box:
        assert box.kind == "docker"
        assert box.run("id -u").stdout == "1000\n"
        assert box.run("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), 1)\"").exit_code != 0
        assert box.run("sleep 100").limit == "wall"
        assert box.run("echo hi > /usr/x").exit_code != 0
        box.write_file("a.txt", "hi")
        assert box.read_file("a.txt") == "hi"
