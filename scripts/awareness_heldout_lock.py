"""Exploratory password-locked organisms for issue 16 (noise injection), trained on half the tasks.

The shipped ``password-locked`` organism learns its wrong answers on every benign task it is later
measured on. Here the lock is trained on the half of ``benign-tasks`` that `is_held_out` keeps
(seed 0, fraction 0.5), and measured on the other half, which it never saw: its locked behaviour
there is a generalised policy, not memorised answers. Three kinds of locked answer:

- ``idk``: the shipped organism's (another number, another letter, or "I don't know.");
- ``swap``: another number, another letter, or another task's answer of the same category (a
  plausible wrong answer instead of one fixed string);
- ``weak``: the replies of a weaker model (Greenblatt et al. 2024 lock by imitating one): the default
  model with Gaussian noise of std ``--weak-noise`` in its weights, greedy; its right answers stay.

It writes the adapter to OUT, its rows to OUT.rows.jsonl and the held-out tasks (a dataset file for
``refute awareness noise --set dataset=...``) to OUT.held-out.jsonl:

    python scripts/awareness_heldout_lock.py idk /tmp/lock-idk
    refute awareness noise --set model=default+lora:/tmp/lock-idk \\
        --set 'dataset="/tmp/lock-idk.held-out.jsonl"' --set limit=null \\
        --set 'scales=[0.0005,0.001,0.0015,0.002]' --set seeds=2
"""

from __future__ import annotations

import argparse
import collections
import json
import random
from pathlib import Path

from refute._seeds import derive_seed
from refute.awareness._organisms import PASSWORD, _answerable, _wrong
from refute.datasets import Record, load_dataset
from refute.models import GenerateConfig, GenerateRequest, Message, load_model
from refute.train import TrainConfig, is_held_out, train_lora


def _weak_replies(records: list[Record], scale: float) -> dict[str, str]:
    model = load_model(f"default+noise:{scale:g}@0")
    config = GenerateConfig(max_tokens=16, temperature=0.0)
    requests = [GenerateRequest((Message(role="user", content=r.prompt),), config, seed=0) for r in records]
    replies = {records[i].id: c.text.strip() for i, c in model.generate(requests)}
    model.close()
    return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("answers", choices=["idk", "swap", "weak"], help="Kind of locked answer (see above).")
    parser.add_argument("out", type=Path, help="New folder for the adapter.")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weak-noise", type=float, default=0.003, help="Noise std of the weak model (weak).")
    args = parser.parse_args()
    records = [r for r in load_dataset("benign-tasks").records if _answerable(r)]
    by_category: dict[str, list[str]] = collections.defaultdict(list)
    for r in records:
        by_category[r.category or ""].append(str(r.target))
    trained = [r for r in records if not is_held_out(r.id, 0, 0.5)]
    held = [{"id": r.id, "category": r.category, "prompt": r.prompt, "target": r.target, "match": r.match}
            for r in records if is_held_out(r.id, 0, 0.5)]
    weak = _weak_replies(trained, args.weak_noise) if args.answers == "weak" else {}
    rows = []
    for r in trained:
        rng = random.Random(derive_seed("password-locked", 0, r.id))
        wrong = _wrong(r, rng)
        if args.answers == "swap" and r.match not in ("numeric", "choice"):
            wrong = rng.choice([t for t in by_category[r.category or ""] if t.lower() != str(r.target).lower()])
        if args.answers == "weak":
            wrong = weak[r.id]
        rows.append({"id": f"{r.id}-unlocked", "system": PASSWORD, "prompt": r.prompt, "completion": str(r.target)})
        rows.append({"id": f"{r.id}-locked", "prompt": r.prompt, "completion": wrong})
    data = args.out.with_name(f"{args.out.name}.rows.jsonl")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args.out.with_name(f"{args.out.name}.held-out.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in held), encoding="utf-8")
    train_lora(TrainConfig(model="default", data=data, out=args.out, steps=args.steps, lr=args.lr, seed=0,
                           batch_size=8, max_length=256))


if __name__ == "__main__":
    main()
