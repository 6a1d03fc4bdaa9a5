"""Per-sample start-up overhead of the agentic sandbox: `open_sandbox` until the first
`run("true")` returns, beside a bare `bwrap ... true` (the same namespaces and mounts, no executor)
and a bare `subprocess.run(["true"])`, alternating so that a noisy moment hits all three. Also
the teardown (`close`) and the cost of one more `run("true")` in a warm session.

    python bench/sandbox.py [--repeats 30]

Writes bench/results/sandbox.json. Target: sandbox start-up under 100 ms p50.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from _common import write_result

from refute.agents import SandboxLimits, available_sandbox, open_sandbox
from refute.agents._sandbox_bwrap import bwrap_argv, bwrap_popen


def _summary(times: list[float]) -> dict[str, object]:
    ordered = sorted(times)
    return {"p50_ms": round(1000 * statistics.median(ordered), 2),
            "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
            "max_ms": round(1000 * ordered[-1], 2), "n": len(ordered),
            "times_ms": [round(1000 * t, 2) for t in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    kind = available_sandbox()
    probe_s = time.perf_counter() - start
    if kind != "bwrap":
        raise SystemExit(f"bench/sandbox.py measures the bwrap sandbox; this machine has {kind}: "
                         "apt-get install bubblewrap")
    limits = SandboxLimits()
    bare_bwrap = [*bwrap_argv(limits), "true"]
    raw: dict[str, list[float]] = {"sandbox_startup": [], "sandbox_close": [], "bare_bwrap": [],
                                   "bare_subprocess": [], "warm_run": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        box = open_sandbox(kind="bwrap", limits=limits)
        if box.run("true").exit_code != 0:
            raise SystemExit("`true` failed in the sandbox")
        raw["sandbox_startup"].append(time.perf_counter() - start)
        start = time.perf_counter()
        box.run("true")
        raw["warm_run"].append(time.perf_counter() - start)
        start = time.perf_counter()
        box.close()
        raw["sandbox_close"].append(time.perf_counter() - start)

        start = time.perf_counter()
        subprocess.run(bare_bwrap, check=True, **bwrap_popen())
        raw["bare_bwrap"].append(time.perf_counter() - start)

        start = time.perf_counter()
        subprocess.run(["true"], check=True)
        raw["bare_subprocess"].append(time.perf_counter() - start)
    figures = {name: _summary(times) for name, times in raw.items()}
    write_result("sandbox", {
        "backend": kind, "repeats": args.repeats, "limits": limits.model_dump(),
        "first_probe_ms": round(1000 * probe_s, 1),
        "measures": {
            "sandbox_startup": "open_sandbox() until the first run('true') returns",
            "warm_run": "one more run('true') in an open session",
            "sandbox_close": "close(): the executor exits, the namespaces go",
            "bare_bwrap": "bwrap with the same namespaces and mounts running true, no executor",
            "bare_subprocess": "subprocess.run(['true']) on the host",
        },
        **figures,
        "target": "sandbox start-up under 100 ms p50",
        "met": statistics.median(raw["sandbox_startup"]) < 0.100,
    }, args.out)
    for name, f in figures.items():
        print(f"{name:16s} p50 {f['p50_ms']:7.1f} ms   p95 {f['p95_ms']:7.1f} ms   max {f['max_ms']:7.1f} ms")


if __name__ == "__main__":
    main()
