"""Greedy replies of refute's continuous batcher against the bare ``generate`` loop, prompt by prompt, in float32.

bench/throughput.py compares the texts in bfloat16, where matrix products round differently at
different batch shapes. Here the same default model runs in float32 through refute's engine (batch
32) and through the bare loop at batch 32 and 64 (`throughput.bare_loop`), on the greedy workload
(64 prompts, 32 tokens) and the first 48 prompts of the mixed one at 96 tokens; it counts identical
replies. Writes bench/results/greedy_identity_float32.json (about 8 minutes on 2 cores).

    python bench/greedy_identity.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result
from throughput import Workload, bare_loop, refute_engine, workloads

BATCH = 32


def compare(w: Workload, backend, model, tok) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(w.prompts)))
        refute, refute_replies = refute_engine(w, backend, prompts)
    bare, bare_replies = bare_loop(w, BATCH, model, tok)
    bare64, bare64_replies = bare_loop(w, 64, model, tok)
    return {"prompts": len(w.prompts), "max_tokens": w.max_tokens,
            "refute_vs_bare32": sum(a == b for a, b in zip(refute_replies, bare_replies, strict=True)),
            "bare32_vs_bare64": sum(a == b for a, b in zip(bare_replies, bare64_replies, strict=True)),
            "seconds": {"refute": refute["seconds"], "bare32": bare["seconds"], "bare64": bare64["seconds"]}}


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from refute.models import load_model, prepare_embedded

    directory = prepare_embedded("default")
    backend = load_model("default", batch_size=BATCH, dtype="float32")
    tok = AutoTokenizer.from_pretrained(directory)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    loads = workloads()
    mixed = loads["mixed"]
    out: dict = {"dtype": "float32", "refute_batch": BATCH}
    for w in (loads["greedy"], Workload("mixed-48x96", mixed.prompts[:48], 1, 96, 0.0)):
        out[w.name] = compare(w, backend, model, tok)
        print(w.name, out[w.name], file=sys.stderr)
    print(f"wrote {write_result('greedy_identity_float32', out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
