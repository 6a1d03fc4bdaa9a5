"""`refute agent run` on the default model: every shipped agentic task x 3 epochs, wall time and
peak memory of the whole command (model load included), and the rates it reports.

    python bench/agent_run.py [--epochs 3] [--model default]

Writes bench/results/agent_run.json. Target: at most 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

from refute.agents import agent_summary
from refute.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    db = Path(tempfile.mkdtemp(prefix="refute-bench-agent-")) / "refute.db"
    command = [sys.executable, "-m", "refute", "agent", "run", "--model", args.model, "--epochs", str(args.epochs),
               "--store", str(db), "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise SystemExit(f"refute agent run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    with Store(db, read_only=True) as store:
        [run] = store.list_runs()
        summary = agent_summary(store, run.id)
        steps = [len((s.metadata.get("agent") or {}).get("steps", [])) for s in store.samples(run.id)]
        calls = [t.get("tool") for s in store.samples(run.id) for t in (s.metadata.get("agent") or {}).get("steps", [])]

    def est(e):  # an Estimate or None
        return None if e is None else {"value": e.value, "low": e.low, "high": e.high, "n": e.n_samples}

    path = write_result("agent_run", {
        "command": " ".join(command[2:]), "wall_s": round(wall, 1), "peak_rss_gib": round(peak_kib / 2**20, 2),
        "target": "at most 15 minutes on 2 cores", "met": wall <= 900, "run_config": run.config,
        "episodes": len(steps), "steps_per_episode": sum(steps) / max(1, len(steps)),
        "turns_without_a_tool_call": calls.count(None), "turns": len(calls),
        "success": est(summary.success), "affordance_use": est(summary.affordance),
        "per_task": {r.task: {"kind": r.kind, "success": est(r.success), "affordance_use": est(r.affordance)}
                     for r in summary.rows},
    }, args.out)
    print(json.dumps({"wall_s": round(wall, 1), "peak_rss_gib": round(peak_kib / 2**20, 2),
                      "success": est(summary.success)}), f"-> {path}")


if __name__ == "__main__":
    main()
