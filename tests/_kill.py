"""Kill a run with SIGKILL once it has committed some samples (for resume tests)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path


def kill_after_samples(proc: subprocess.Popen, db_path: Path, n: int = 5, timeout_s: float = 120) -> int:
    """Wait until ``db_path`` holds at least ``n`` samples, then kill -9 ``proc``; returns the count."""
    deadline, count = time.time() + timeout_s, 0
    while time.time() < deadline:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=5) as db:
                    count = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
        if count >= n:
            break
        if proc.poll() is not None:
            raise AssertionError(f"the run exited before it was killed: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return count
