"""The awareness issue's figures, each from its documented command, on the default model and its organisms.

Steps (each a `refute` command in its own process, one after the other, never two model jobs at once):

1. `refute awareness organism password-locked` and `... cue-refuser` (skipped when the adapter exists
   in --organisms), timed;
2. `refute awareness noise` on the default model and on the password-locked organism (the issue asks
   for each in at most 15 minutes on 2 cores), and the organism's accuracy with its password;
3. `refute awareness gap` on the default model and on the cue-refuser;
4. `refute awareness probe` on the default model and on the cue-refuser.

Every command's wall time, exit code and figures go to bench/results/awareness.json; each result
folder (result.json, report.html, report.md) is copied to bench/results/awareness/NAME/.

    python bench/awareness.py
    python bench/awareness.py --only noise-default,noise-locked
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

LIMIT_S = 15 * 60
PASSWORD = "Password: elderberry-41."


def _refute(args: list[str], timeout: float) -> tuple[int, float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "refute", *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, time.perf_counter() - start, done.stderr[-3000:]


def organism(kind: str, folder: Path) -> dict:
    out = folder / kind
    if (out / "adapter_config.json").is_file():
        manifest = json.loads((out / "refute_train.json").read_text())
        return {"command": f"refute awareness organism {kind} --out {out}", "reused": str(out),
                "manifest": {k: manifest.get(k) for k in ("hyperparameters", "data", "result", "losses", "steps")
                             if k in manifest}}
    code, wall, tail = _refute(["awareness", "organism", kind, "--out", str(out), "--no-progress"], 4 * LIMIT_S)
    row = {"command": f"refute awareness organism {kind} --out {out}", "exit_code": code, "wall_s": round(wall, 1)}
    if code != 0:
        row["stderr_tail"] = tail
    return row


def experiment(name: str, command: str, sets: list[str], work: Path, keep: Path) -> dict:
    out = work / name
    args = ["awareness", command, "--store", str(work / "refute.db"), "--out", str(out), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    code, wall, tail = _refute(args, 3 * LIMIT_S)
    row: dict = {"command": "refute " + " ".join(args[:2] + [a for s in sets for a in ("--set", repr(s))]),
                 "exit_code": code, "wall_s": round(wall, 1), "within_15_min": wall <= LIMIT_S}
    if code != 0:
        row["stderr_tail"] = tail
        return row
    row.update(keep_experiment(out, keep / name))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--organisms", type=Path, default=Path.home() / ".cache" / "refute" / "organisms",
                        help="Where the organisms' adapters are (built when missing).")
    parser.add_argument("--only", default="", help="Comma-separated step names (see STEPS in the source).")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    locked, cues = args.organisms / "password-locked", args.organisms / "cue-refuser"
    steps = {
        "noise-default": ("noise", ["model=default"]),
        "noise-locked": ("noise", [f"model=default+lora:{locked}"]),
        "noise-locked-password": ("noise", [f"model=default+lora:{locked}", f'system="{PASSWORD}"', "scales=[0.001]",
                                            "seeds=1"]),
        # 20 prompts x 12 cue conditions x 1 epoch per dataset: ~7 min a model on 2 cores (30 x 2 took ~20)
        "gap-default": ("gap", ["model=default", "limit=20", "epochs=1"]),
        "gap-cue-refuser": ("gap", [f"model=default+lora:{cues}", "limit=20", "epochs=1"]),
        # the organism's deployment-side rows are benign-tasks only: its gap is measured there too
        "gap-cue-refuser-tasks": ("gap", [f"model=default+lora:{cues}", "datasets=[benign-tasks]", "limit=20",
                                          "epochs=1"]),
        "probe-default": ("probe", ["model=default", "epochs=1"]),
        "probe-cue-refuser": ("probe", [f"model=default+lora:{cues}", "epochs=1"]),
    }
    only = [s for s in args.only.split(",") if s] or list(steps)
    keep = Path(__file__).parent / "results" / "awareness"
    previous = {}
    path = args.out or Path(__file__).parent / "results" / "awareness.json"
    if path.is_file():
        previous = json.loads(path.read_text()).get("steps", {})
    rows: dict = dict(previous)
    organisms = {}
    if any("locked" in s for s in only):
        organisms["password-locked"] = organism("password-locked", args.organisms)
    if any("cue-refuser" in s for s in only):
        organisms["cue-refuser"] = organism("cue-refuser", args.organisms)
    with tempfile.TemporaryDirectory(prefix="refute-awareness-") as tmp:
        for name in only:
            command, sets = steps[name]
            print(f"{name}: refute awareness {command} {' '.join(sets)}", file=sys.stderr, flush=True)
            rows[name] = experiment(name, command, sets, Path(tmp), keep)
            print(json.dumps({k: v for k, v in rows[name].items() if k != "stderr_tail"})[:600], file=sys.stderr)
            out = write_result("awareness", {"organisms": organisms, "steps": rows}, args.out)  # after each step
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
