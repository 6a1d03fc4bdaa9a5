"""Each `refute gaming` experiment from its one documented command, on a fresh store, timed.

The acceptance of the gaming issue asks that each experiment run end to end on the local models in
at most 15 minutes on 2 cores. This script runs `refute gaming NAME` with the default settings for
each experiment, one after the other (never two model jobs at once), each in its own process with a
fresh store, and records the wall time (model loading and report writing included), the peak
resident memory of the process and its children, and the experiment's own figures. Each result
folder (result.json, report.html, report.md) is copied to bench/results/gaming/NAME/.

    python bench/gaming.py                  # all five
    python bench/gaming.py --only debate    # one
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import keep_experiment, write_result

EXPERIMENTS = ("gridworlds", "code-hacking", "weak-to-strong", "debate", "overoptimisation")
LIMIT_S = 15 * 60


#: Runs the command in a process of its own and prints the peak resident memory of its children (the
#: command and anything it starts: the sandboxes), so each experiment's figure is its own.
_WRAP = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def run_one(name: str, work: Path, keep: Path) -> dict:
    store, out = work / name / "refute.db", work / name / "out"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAP, sys.executable, "-m", "refute", "gaming", name, "--store",
                           str(store), "--out", str(out), "--no-progress"], capture_output=True, text=True,
                          timeout=2 * LIMIT_S)
    wall = time.perf_counter() - start
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    row: dict = {"command": f"refute gaming {name}", "exit_code": done.returncode, "wall_s": round(wall, 1),
                 "within_15_min": wall <= LIMIT_S, "peak_rss_gib": round(peak_kib / 2**20, 2)}
    if done.returncode != 0:
        row["stderr_tail"] = done.stderr[-2000:]
        return row
    row.update(keep_experiment(out, keep / name))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=EXPERIMENTS, action="append", help="Run only these (repeatable).")
    args = parser.parse_args()
    keep = Path(__file__).parent / "results" / "gaming"
    rows = {}
    with tempfile.TemporaryDirectory(prefix="refute-gaming-bench-") as tmp:
        for name in args.only or EXPERIMENTS:
            print(f"refute gaming {name} ...", file=sys.stderr, flush=True)
            rows[name] = run_one(name, Path(tmp), keep)
            print(f"  {rows[name]['wall_s']} s, exit {rows[name]['exit_code']}", file=sys.stderr, flush=True)
    previous = keep.parent / "gaming.json"
    if args.only and previous.is_file():  # keep the other experiments' rows
        rows = {**json.loads(previous.read_text()).get("experiments", {}), **rows}
    path = write_result("gaming", {"limit_s": LIMIT_S, "note": "wall_s includes start-up, model loading and the "
                                   "report; peak_rss_gib is the largest process the command started (ru_maxrss)",
                                   "experiments": rows})
    print(path)


if __name__ == "__main__":
    main()
