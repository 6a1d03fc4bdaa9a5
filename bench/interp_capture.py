"""Activation capture: tokens/s and peak memory of refute.interp vs TransformerLens and nnsight.

Every tool captures the residual stream after every layer, at every position, for the same
prompts (equal token length, so no tool pays for padding), in the same batches, on the CPU, in
the same dtype. Each tool runs in its own subprocess so that peak RSS (ru_maxrss) is its own.

The peers live in a separate virtual environment so they cannot change refute's dependencies:

    python -m venv --system-site-packages /tmp/interp-bench-venv
    /tmp/interp-bench-venv/bin/pip install transformer-lens nnsight
    flock /tmp/refute-heavy.lock python bench/interp_capture.py --model default \\
        --peer-python /tmp/interp-bench-venv/bin/python

TransformerLens 4 wraps the HF model in a ``TransformerBridge`` (raw HF numerics, no weight
folding). A tool that fails is recorded with its error, not dropped.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result


def _model_dir(spec: str) -> str:
    from refute.models._spec import parse_spec, prepare_embedded

    parsed = parse_spec(spec)
    if parsed.kind == "embedded":
        return str(prepare_embedded(parsed.target))
    if parsed.kind == "hf":
        return parsed.target
    raise SystemExit(f"bench needs a local model (default or hf:DIR), not {spec}")


def _batches(tok, n: int, length: int, batch: int):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, min(tok.vocab_size, 30000), (n, length), generator=g)
    return [ids[i : i + batch] for i in range(0, n, batch)]


def run_tool(tool: str, directory: str, n: int, length: int, batch: int, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype).eval()
    n_layers = model.config.num_hidden_layers
    batches = _batches(tok, n, length, batch)
    if tool == "refute":
        from refute.interp import (
            hooks,  # the hooks capture() installs; token ids are fed directly
        )

        sites = [f"resid_post.{i}" for i in range(n_layers)]

        def step(ids):
            got = {}

            def keep(name):
                def fn(x):
                    got[name] = x.detach().float()

                return fn

            with torch.inference_mode(), hooks(model, {s: keep(s) for s in sites}):
                model(input_ids=ids, use_cache=False, logits_to_keep=1)
            return got
    elif tool == "transformer_lens":
        from transformer_lens.model_bridge import TransformerBridge

        tl = TransformerBridge.boot_transformers(directory, hf_model=model, tokenizer=tok, dtype=torch_dtype,
                                                 device="cpu")
        names = {f"blocks.{i}.hook_resid_post" for i in range(n_layers)}

        def step(ids):
            with torch.inference_mode():
                _, cache = tl.run_with_cache(ids, names_filter=lambda name: name in names)
            if len(cache) != n_layers:
                raise RuntimeError(f"TransformerLens cached {len(cache)} of {n_layers} sites: {list(cache)[:3]}")
            return {k: v.float() for k, v in cache.items()}
    elif tool == "nnsight":
        from nnsight import LanguageModel

        lm = LanguageModel(model, tokenizer=tok)
        layers = lm.model.layers

        def step(ids):
            saved = []
            with torch.inference_mode(), lm.trace(ids):
                for i in range(n_layers):
                    saved.append(layers[i].output.save())
            return [s[0] if isinstance(s, tuple) else s for s in saved]
    else:
        raise SystemExit(f"unknown tool {tool}")
    step(batches[0][:1])  # warm-up
    start = time.perf_counter()
    for ids in batches:
        step(ids)
    elapsed = time.perf_counter() - start
    return {"tool": tool, "tokens_per_s": n * length / elapsed, "seconds": elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--peer-python", default=sys.executable)
    ap.add_argument("--tools", default="refute,transformer_lens,nnsight")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = run_tool(args.worker, args.model, args.n, args.length, args.batch, args.dtype)
        print(json.dumps(res))
        return
    directory = _model_dir(args.model)
    results = []
    for tool in args.tools.split(","):
        python = sys.executable if tool == "refute" else args.peer_python
        cmd = [python, __file__, "--worker", tool, "--model", directory, "--n", str(args.n), "--length",
               str(args.length), "--batch", str(args.batch), "--dtype", args.dtype]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            results.append({"tool": tool, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]})
        print(json.dumps(results[-1]), file=sys.stderr)
    figures = {"model": args.model, "n_prompts": args.n, "tokens_per_prompt": args.length, "batch": args.batch,
               "dtype": args.dtype, "sites": "resid_post at every layer, every position", "results": results}
    print(write_result("interp_capture", figures, args.out))

if __name__ == "__main__":
    main()
