"""`refute interp causal` end to end: wall time of each phase, the direction chosen, held-out results.

Runs the command as a user would (a subprocess, a fresh store, the built-in prompts and the
defaults unless told otherwise) and times each phase from the moment its progress line appears on
stderr. Run it on two checkouts to compare (``--src`` puts another tree's ``src`` first on the
path), one after the other on a quiet machine; every run is appended to the JSON under its label:

    git worktree add /tmp/refute-before <old commit>
    python bench/interp_causal.py --label before --src /tmp/refute-before/src
    python bench/interp_causal.py --label after
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_commit, machine

# progress lines (their start) -> phase name; a phase lasts until the next phase's line
PHASES = (
    ("capturing", "capture"),
    ("clean validation", "clean validation"),
    ("screening", "screening"),
    ("choosing the addition coefficient", "coefficient"),
    ("held-out:", "held-out"),
    ("cross-entropy", "cost"),
)


def _phase(line: str) -> str | None:
    text = line.strip()
    for start, name in PHASES:
        if text.startswith(start):
            return name
    return None


def run_once(src: str | None, extra: list[str]) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    env.setdefault("COLUMNS", "400")  # one progress message per line
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "refute", "interp", "causal", "--model", "default",
               "--store", str(Path(tmp) / "store.db"), "--json", str(out_json), *extra]
        t0 = time.perf_counter()
        marks: list[tuple[float, str, str]] = [(0.0, "start (model load)", "")]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        assert proc.stderr is not None
        for line in proc.stderr:
            phase = _phase(line)
            if phase is not None:
                marks.append((time.perf_counter() - t0, phase, line.strip()))
            sys.stderr.write(f"[{time.perf_counter() - t0:7.1f}s] {line}")
        rc = proc.wait()
        total = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"refute interp causal exited {rc}")
        result = json.loads(out_json.read_text())
    phases: dict[str, float] = {}
    for (t, name, _), nxt in zip(marks, [*marks[1:], (total, "", "")], strict=True):
        phases[name] = round(phases.get(name, 0.0) + nxt[0] - t, 2)
    return {
        "command": " ".join(cmd[1:3] + cmd[3:5] + cmd[5:7] + extra),
        "total_s": round(total, 1),
        "phases_s": phases,
        "lines": [{"t_s": round(t, 1), "line": line} for t, _, line in marks[1:]],
        "direction": {k: result["direction"][k] for k in ("layer", "position", "norm", "digest")},
        "coefficient": result["coefficient"],
        "n_screened": sum(1 for row in result["selection"] if "ablation_score" in row),
        "selection": result["selection"],
        "search": result.get("search"),
        "conditions": {k: c["rate"] for k, c in result["conditions"].items()},
        "comparisons": result["comparisons"],
        "cost": result["cost"],
        "checks": result["checks"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help="Name of this run in the JSON (e.g. before, after).")
    ap.add_argument("--src", help="A checkout's src directory to run instead of the installed refute.")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "interp_causal.json")
    ap.add_argument("extra", nargs="*", help="More options for refute interp causal (after --).")
    args = ap.parse_args()
    run = {"label": args.label, "src": args.src or "installed", "commit": git_commit(), "machine": machine(),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **run_once(args.src, args.extra)}
    payload = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "interp_causal", "runs": []}
    payload["runs"].append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps({k: run[k] for k in ("label", "total_s", "phases_s", "direction", "coefficient")}, indent=1))


if __name__ == "__main__":
    main()
