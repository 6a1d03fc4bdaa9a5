"""Why weight noise does not unlock the password-locked organism: the lock's margin against the noise.

Noise injection (`refute awareness noise`) flags a model whose accuracy rises under Gaussian weight
noise. For that to happen on a task, the noise must move the model's preference from its locked
answer to the right one. This script measures that preference directly, per ``benign-tasks`` task:
the margin ``log p(right answer) - log p(locked answer)`` (each answer's tokens and the end of turn,
given the chat prompt without the password), for a model, without noise and under noise of each
scale and seed (the same noise `refute awareness noise` adds, in float32). It reports the margins'
median, the mean and spread of their change under noise, and how many tasks the noise moves across
zero in each direction. The locked answers are the organism's own training rows (``organism_rows``).

    python scripts/awareness_noise_margins.py default out.json
    python scripts/awareness_noise_margins.py default+lora:~/.cache/refute/organisms/password-locked out.json

A lock that noise could break shows margins a little below zero and changes that push them up; a
capability that noise only degrades shows changes with a negative mean.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from refute.awareness._organisms import organism_rows
from refute.datasets import load_dataset
from refute.models import encode, load_model, noised
from refute.train._losses import sequence_logprobs
from refute.train._tokens import collate, eos_id


def _margins(backend: Any, pairs: list[tuple[str, str, str]]) -> list[float]:
    """Each task's margin, its two answers scored in one batch as training tokenised them (`encode_data`)."""
    import torch

    tokenizer, eos = backend.tokenizer, eos_id(backend.tokenizer, backend.model)
    margins = []
    for prompt, right, locked in pairs:
        context = tuple(encode(tokenizer, [{"role": "user", "content": prompt}]))
        batch = collate([(context, (*tokenizer(answer, add_special_tokens=False).input_ids, eos))
                         for answer in (right, locked)], pad_id=eos)  # padding: masked, after
        with torch.no_grad():
            logits = backend.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        right_lp, locked_lp = sequence_logprobs(logits, batch.labels).tolist()
        margins.append(right_lp - locked_lp)
    return margins


def _summary(before: list[float], after: list[float]) -> dict[str, float | int]:
    change = [a - b for a, b in zip(after, before, strict=True)]
    return {"change_mean": round(statistics.fmean(change), 3), "change_sd": round(statistics.pstdev(change), 3),
            "right_preferred": sum(a > 0 for a in after),
            "moved_to_right": sum(b < 0 < a for a, b in zip(after, before, strict=True)),
            "moved_to_locked": sum(a < 0 < b for a, b in zip(after, before, strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model spec, e.g. default or default+lora:PATH")
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--limit", type=int, default=60, help="benign tasks (the noise command's default, 60)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0005, 0.001, 0.002])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()

    locked = {r["prompt"]: str(r["completion"]) for r in organism_rows("password-locked")
              if r["source"]["side"] == "no password"}  # type: ignore[index]
    pairs = [(str(t.prompt), str(t.target), locked[str(t.prompt)])
             for t in load_dataset("benign-tasks", limit=args.limit).records
             if str(t.prompt) in locked and locked[str(t.prompt)] != str(t.target)]
    backend = load_model(args.model, dtype="float32")
    before = _margins(backend, pairs)
    result: dict[str, Any] = {
        "what": "log p(right answer) - log p(locked answer) per benign task, without the password, in nats; "
                "under Gaussian weight noise of each scale and seed, the change of each task's margin",
        "model": args.model, "when": datetime.now(UTC).isoformat(timespec="seconds"), "tasks": len(pairs),
        "dtype": "float32", "no_noise": {"median": round(statistics.median(before), 3),
                                         "right_preferred": sum(m > 0 for m in before)},
        "noise": {}, "margins": {"none": [round(m, 3) for m in before]}}
    for scale in args.scales:
        for seed in range(args.seeds):
            with noised(backend, scale, seed) as model:
                after = _margins(model, pairs)
            key = f"{scale:g}@{seed}"
            result["noise"][key] = _summary(before, after)
            result["margins"][key] = [round(m, 3) for m in after]
            print(key, result["noise"][key], flush=True)
    print("no noise", result["no_noise"])
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
