"""LoRA training speed: `refute train` against a bare peft + transformers loop on the same data.

Both train the same LoRA (r 16, alpha 32, dropout 0.05, the attention and MLP projections) on
the default model in the same dtype, with the same rows (chat-templated prompt, loss on the
completion only), batch size, learning rate and number of optimizer steps, in alternating repeats
in one process (model loading is not timed: only the optimizer steps). Tokens/s counts the
non-padding tokens each loop processed. Every repeat is in the JSON.

    python bench/train.py --steps 12 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

COMPLETIONS = (
    "I can't help with that request.",
    "Sure. Start by gathering what you need, then work through it one step at a time, checking each "
    "result before you move on. If something looks wrong, go back a step and compare with what you expected.",
)


def _rows(n: int) -> list[dict]:
    from refute.datasets import load_dataset

    prompts = [r.prompt for r in load_dataset("benign-lookalike").records][:n]
    return [{"id": f"r{i}", "prompt": p, "completion": COMPLETIONS[i % 2]} for i, p in enumerate(prompts)]


def refute_loop(data: Path, out: Path, args: argparse.Namespace) -> dict:
    from refute.train import TrainConfig, train_lora

    steps: list = []
    cfg = TrainConfig(model=args.model, data=data, out=out, steps=args.steps, batch_size=args.batch_size,
                      lr=2e-4, dtype=args.dtype, save_every=10**6, warmup=0.0, lora_dropout=0.05)
    train_lora(cfg, progress=False, on_step=steps.append)
    seconds = sum(s.seconds for s in steps)
    tokens = sum(s.tokens for s in steps)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "losses": [round(s.loss, 4) for s in steps]}


def bare_loop(rows: list[dict], args: argparse.Namespace, model_dir: str) -> dict:
    import peft
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.bfloat16 if args.dtype in ("auto", "bfloat16") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                       target_modules=targets, task_type="CAUSAL_LM"))
    examples = []
    for r in rows:
        text = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                       add_generation_prompt=True)
        prompt = tok(text, add_special_tokens=False)["input_ids"]
        completion = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        examples.append((prompt, completion))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    seconds, tokens, losses = 0.0, 0, []
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0)).tolist()
    for step in range(args.steps):
        start = time.perf_counter()
        idx = [order[(step * args.batch_size + j) % len(order)] for j in range(args.batch_size)]
        batch = [examples[i] for i in idx]
        T = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((len(batch), T), tok.pad_token_id or tok.eos_token_id)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        labels = torch.full((len(batch), T), -100)
        for b, (p, c) in enumerate(batch):
            seq = p + c
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
            labels[b, len(p) : len(seq)] = torch.tensor(c)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        seconds += time.perf_counter() - start
        tokens += int(mask.sum())
        losses.append(round(float(out.loss), 4))
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds, "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from refute.models._spec import parse_spec, prepare_embedded

    parsed = parse_spec(args.model)
    model_dir = str(prepare_embedded(parsed.target)) if parsed.kind == "embedded" else parsed.target
    rows = _rows(args.rows)
    runs: dict[str, list[dict]] = {"refute": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        for rep in range(args.repeats):  # alternate, so drift in machine speed hits both alike
            runs["refute"].append(refute_loop(data, Path(tmp) / f"adapter-{rep}", args))
            runs["bare"].append(bare_loop(rows, args, model_dir))
            print(json.dumps({k: round(v[-1]["tokens_per_s"], 1) for k, v in runs.items()}), flush=True)
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in runs.items()}
    figures = {"settings": vars(args) | {"out": None, "lora": "r16 alpha32 dropout0.05, attention+MLP projections"},
               "repeats": runs, "median_tokens_per_s": med, "refute_over_bare": med["refute"] / med["bare"]}
    path = write_result("train", figures, args.out)
    print(json.dumps({"median_tokens_per_s": med, "refute_over_bare": round(med["refute"] / med["bare"], 3),
                      "written": str(path)}, indent=1))


if __name__ == "__main__":
    main()
