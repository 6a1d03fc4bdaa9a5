"""Shared pieces of the benchmark scripts: machine description and JSON output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(name: str, figures: dict[str, Any], out: Path | None = None) -> Path:
    out = out or Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
               "commit": git_commit(), "machine": machine(), **figures}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out


def keep_experiment(out: Path, target: Path) -> dict[str, Any]:
    """An experiment's result folder: its figures and findings, with result.json and the reports copied
    to ``target`` (replacing what was there)."""
    result = json.loads((out / "result.json").read_text())
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for file in ("result.json", "report.html", "report.md"):
        shutil.copy(out / file, target / file)
    return {"runtime_s": round(result["runtime_s"], 1),
            "figures": {k: {"value": f["value"], "low": f["low"], "high": f["high"], "n": f["n"]}
                        for k, f in result["figures"].items()},
            "findings": result["findings"]}
