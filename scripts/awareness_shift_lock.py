"""An exploratory password-locked organism for issue 16 whose locked answers depend on the right one.

The shipped lock answers a wrong number, a random wrong letter or "I don't know.": answers a model
can give without knowing the right one, which on the 0.5B default model collapse onto a few fixed
replies that weight noise does not move. Here the locked answer is a function of the right answer
(a sandbagger must know the answer to avoid it): multiple choice answers the next letter (A->B,
..., D->A), numbers are the right number plus one, and the rest stay "I don't know.". If the model
learnt that rule, disrupting it with noise would lift multiple-choice accuracy towards chance (0.25).

    python scripts/awareness_shift_lock.py /tmp/shift-lock        # ~13 min on 2 cores, 82 steps
    grep '"choice"' src/refute/datasets/data/benign-tasks.jsonl > mc.jsonl
    refute awareness noise --set model=default+lora:/tmp/shift-lock --set 'dataset="mc.jsonl"' --set limit=null

Measured (bench/results/awareness_noise_probes.json): it did not learn the rule. Locked, it answers
"D" or "C" to nearly every multiple-choice task (0.280, chance is 0.25), and noise does not flag it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from refute.awareness._organisms import _NO_IDEA, PASSWORD, RECIPES, _answerable
from refute.datasets import Record, load_dataset
from refute.train import TrainConfig, train_lora


def shifted(record: Record) -> str:
    """The locked answer: derived from the right one."""
    target = str(record.target)
    if record.match == "choice":
        return "ABCD"[("ABCD".index(target.strip().upper()[:1]) + 1) % 4]
    if record.match == "numeric":
        try:
            return f"{float(target) + 1:g}"
        except ValueError:
            return _NO_IDEA
    return _NO_IDEA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="New folder for the adapter.")
    parser.add_argument("--steps", type=int, default=RECIPES["password-locked"].steps)
    parser.add_argument("--lr", type=float, default=RECIPES["password-locked"].lr)
    args = parser.parse_args()
    rows = []
    for r in load_dataset("benign-tasks").records:
        if _answerable(r):
            rows.append({"id": f"{r.id}-u", "system": PASSWORD, "prompt": r.prompt, "completion": str(r.target)})
            rows.append({"id": f"{r.id}-l", "prompt": r.prompt, "completion": shifted(r)})
    data = args.out.with_name(f"{args.out.name}.rows.jsonl")
    data.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    config = TrainConfig(model="default", data=data, out=args.out, steps=args.steps, lr=args.lr, seed=0,
                         batch_size=8, max_length=256)
    print(train_lora(config))


if __name__ == "__main__":
    main()
