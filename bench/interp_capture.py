"""Activation capture: tokens/s and peak memory of refute.interp vs TransformerLens and nnsight.

Every configuration captures the residual stream after a set of layers (``resid_post``), at
every token position, for the same prompts, in the same batches, in the same dtype, on the
CPU, and hands back float32 CPU tensors ``(B, T, D)`` per layer. The prompts have equal token
length so that nobody pays for padding: each is a random sequence of single-token words whose
tokenisation (`refute.models.encode_texts`, the ids refute feeds the model) is exactly
``--length`` tokens; the peers get those same ids.

Configurations (each a row of the JSON; "first half" is layers ``0 .. N/2-1``):

* ``refute/all``, ``refute/first_half``: the product's own path,
  ``refute.interp.capture(model, tokenizer, texts, sites, positions=range(length),
  batch_size=batch)`` over all the texts at once, tokenisation included, as a user calls it.
  It stops the forward pass in the hook of its deepest site, so it never runs the later
  layers, the final norm or ``lm_head``.
* ``transformer_lens/all/default``: ``TransformerBridge.run_with_cache(ids, names_filter=...)``,
  TransformerLens's default: logits over the full vocabulary at every position.
* ``transformer_lens/all/last_logits``: the same call with ``logits_to_keep=1``, which the
  bridge passes through to the HF forward: logits at the last position only. (TransformerLens
  cannot stop after the last block: ``stop_at_layer`` stops at a block's input.)
* ``transformer_lens/first_half/stop``: ``run_with_cache(..., stop_at_layer=N/2)``, which raises
  at ``blocks.{N/2}.hook_in``: no later block, no logits.
* ``nnsight/all/default``: ``LanguageModel.trace(ids)`` saving each layer's output: the full
  forward, logits over the vocabulary at every position.
* ``nnsight/all/stop``, ``nnsight/first_half/stop``: the same, then ``tracer.stop()`` after the
  last saved layer: no later layer, no final norm, no logits.

TransformerLens 4 wraps the HF model in a ``TransformerBridge`` (raw HF numerics, no weight
folding) and by default switches attention to ``eager`` so that its attention-pattern hooks can
fire; the others keep the HF default (``sdpa``). Each row records what it used.

Each configuration runs in its own subprocess so that its peak RSS (``ru_maxrss``, loading
included) is its own, after one untimed warm-up batch. The warm-up also counts, with forward
pre-hooks on the HF modules, the decoder layers entered and the positions fed to ``lm_head``
(``warm_up_census``), so the JSON shows what each configuration really computed.
TransformerLens's ``stop_at_layer=N/2`` shows ``N/2 + 1`` layers entered: it raises at the
input hook of block ``N/2``, inside that block's forward but before any of its work.

Repeat ``r`` runs every configuration once, the order rotated by ``r``, so that the tools
alternate; each configuration keeps its best (highest tokens/s) and every repeat is in the
JSON, with the versions each subprocess imported. ``ratios`` divides best tokens/s: refute's
first half by its all layers, and refute by each peer in the same configuration (default by
default, last-position logits or stop by the same). A configuration that fails is recorded with
its error.

The peers live in a separate virtual environment so they cannot change refute's dependencies:

    python3.11 -m venv --system-site-packages /tmp/peer-interp
    /tmp/peer-interp/bin/pip install transformer-lens nnsight
    flock /tmp/refute-model.lock python bench/interp_capture.py --model default \\
        --peer-python /tmp/peer-interp/bin/python

On two CPU cores the defaults (64 prompts of 64 tokens, batches of 16, 5 repeats) take about
12 minutes, most of it loading the model into each subprocess. The machine is shared, so a
single repeat can be slowed by other work; that is why each configuration keeps its best.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

# (tool, layers, mode): layers is "all" or "first_half"; mode says how the tool limits its work.
CONFIGS: tuple[tuple[str, str, str], ...] = (
    ("refute", "all", "capture"),
    ("refute", "first_half", "capture"),
    ("transformer_lens", "all", "default"),
    ("transformer_lens", "all", "last_logits"),
    ("transformer_lens", "first_half", "stop"),
    ("nnsight", "all", "default"),
    ("nnsight", "all", "stop"),
    ("nnsight", "first_half", "stop"),
)
_PACKAGES = {"refute": "refute", "transformer_lens": "transformer-lens", "nnsight": "nnsight"}


def _name(config: tuple[str, str, str]) -> str:
    tool, layers, mode = config
    return f"{tool}/{layers}" if tool == "refute" else f"{tool}/{layers}/{mode}"


def _model_dir(spec: str) -> str:
    from refute.models._spec import parse_spec, prepare_embedded

    parsed = parse_spec(spec)
    if parsed.kind == "embedded":
        return str(prepare_embedded(parsed.target))
    if parsed.kind == "hf":
        return parsed.target
    raise SystemExit(f"bench needs a local model (default or hf:DIR), not {spec}")


def equal_length_texts(tok: Any, n: int, length: int, seed: int = 0) -> list[str]:
    """``n`` texts of random single-token words, each exactly ``length`` tokens long."""
    from refute.models._encode import encode_texts

    words = sorted({w for w in (tok.decode([i]) for i in range(min(tok.vocab_size, 30000)))
                    if w.startswith(" ") and w[1:].isalpha() and w[1:].islower() and len(w) > 3})
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < n:
        text = "".join(rng.choice(words) for _ in range(length))
        if len(encode_texts(tok, [text])[0]) == length:
            texts.append(text)
    return texts


class _Census:
    """Counts the decoder layers entered and the positions fed to ``lm_head`` (forward pre-hooks)."""

    def __init__(self, model: Any) -> None:
        from refute.interp import find_layers

        self.layers_run = 0
        self.lm_head_positions: int | None = None
        # Pre-hooks: a layer counts once entered, whatever a later hook raises to stop the pass.
        self._handles = [layer.register_forward_pre_hook(self._layer) for layer in find_layers(model)]
        self._handles.append(model.get_output_embeddings().register_forward_pre_hook(self._head))

    def _layer(self, module: Any, args: Any) -> None:
        self.layers_run += 1

    def _head(self, module: Any, args: Any) -> None:
        self.lm_head_positions = int(args[0].shape[1])  # (B, T, D) hidden states in

    def close(self) -> dict[str, Any]:
        for handle in self._handles:
            handle.remove()
        return {"decoder_layers_entered": self.layers_run, "lm_head_positions": self.lm_head_positions}


def _refute_run(model: Any, tok: Any, n_keep: int, length: int, batch: int) -> Callable[[list[str]], Any]:
    from refute.interp import capture

    sites = [f"resid_post.{i}" for i in range(n_keep)]

    def run(chunk: list[str]) -> Any:
        return capture(model, tok, chunk, sites, positions=range(length), batch_size=batch)

    return run


def _transformer_lens_step(model: Any, tok: Any, directory: str, n_keep: int, mode: str,
                           torch_dtype: Any) -> Callable[[Any], Any]:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    tl = TransformerBridge.boot_transformers(directory, hf_model=model, tokenizer=tok, dtype=torch_dtype,
                                             device="cpu")
    names = [f"blocks.{i}.hook_resid_post" for i in range(n_keep)]
    extra = {"default": {}, "last_logits": {"logits_to_keep": 1}, "stop": {"stop_at_layer": n_keep}}[mode]

    def step(ids: Any) -> Any:
        with torch.inference_mode():
            _, cache = tl.run_with_cache(ids, names_filter=names, **extra)
        missing = [name for name in names if name not in cache]
        if missing:
            raise RuntimeError(f"TransformerLens did not cache {missing[:3]}; it cached {list(cache)[:3]}")
        return [cache[name].float() for name in names]

    return step


def _nnsight_step(model: Any, tok: Any, n_keep: int, mode: str) -> Callable[[Any], Any]:
    import torch
    from nnsight import LanguageModel

    lm = LanguageModel(model, tokenizer=tok)
    layers = lm.model.layers

    def step(ids: Any) -> Any:
        saved = []
        with torch.inference_mode(), lm.trace(ids) as tracer:
            for i in range(n_keep):
                saved.append(layers[i].output.save())
            if mode == "stop":
                tracer.stop()
        return [(s[0] if isinstance(s, tuple) else s).float() for s in saved]

    return step


def _versions(tool: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", _PACKAGES[tool]):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_config(config: tuple[str, str, str], directory: str, n: int, length: int, batch: int,
               dtype: str) -> dict[str, Any]:
    """One configuration in this process: warm-up batch (with the census), then the timed run."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tool, layers, mode = config
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype).eval()
    n_layers = model.config.num_hidden_layers
    n_keep = n_layers if layers == "all" else n_layers // 2
    texts = equal_length_texts(tok, n, length)
    chunks = [texts[i : i + batch] for i in range(0, n, batch)]
    if tool == "refute":
        run = _refute_run(model, tok, n_keep, length, batch)
        warm_up, timed = (lambda: run(chunks[0])), (lambda: run(texts))
    else:
        from refute.models._encode import encode_texts

        ids = torch.tensor(encode_texts(tok, texts))  # (n, length)
        batches = [ids[i : i + batch] for i in range(0, n, batch)]
        if tool == "transformer_lens":
            step = _transformer_lens_step(model, tok, directory, n_keep, mode, torch_dtype)
        elif tool == "nnsight":
            step = _nnsight_step(model, tok, n_keep, mode)
        else:
            raise SystemExit(f"unknown tool {tool}")

        def timed() -> None:
            for b in batches:
                step(b)

        warm_up = (lambda: step(batches[0]))  # noqa: E731 - a thunk like the refute one
    census = _Census(model)
    warm_up()
    computed = census.close()
    start = time.perf_counter()
    timed()
    elapsed = time.perf_counter() - start
    return {"config": _name(config), "tool": tool, "layers": layers, "mode": mode, "layers_captured": n_keep,
            "n_layers": n_layers, "tokens_per_s": n * length / elapsed, "seconds": elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "threads": torch.get_num_threads(), "warm_up_census": computed, "versions": _versions(tool)}


def _spawn(config: tuple[str, str, str], python: str, directory: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [python, __file__, "--worker", ",".join(config), "--model", directory, "--n", str(args.n),
           "--length", str(args.length), "--batch", str(args.batch), "--dtype", args.dtype]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result
    tool, layers, mode = config
    return {"config": _name(config), "tool": tool, "layers": layers, "mode": mode,
            "error": "\n".join(proc.stderr.strip().splitlines()[-5:]) or f"exit {proc.returncode}"}


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best repeat (highest tokens/s) of one configuration, with every repeat kept."""
    ok = [r for r in runs if "error" not in r]
    head = {k: runs[0][k] for k in ("config", "tool", "layers", "mode")}
    repeats = [{k: r.get(k) for k in ("tokens_per_s", "seconds", "peak_rss_mb", "error") if k in r} for r in runs]
    if not ok:
        return {**head, "error": runs[-1]["error"], "repeats": repeats}
    best = max(ok, key=lambda r: r["tokens_per_s"])
    keep = ("layers_captured", "n_layers", "attn_implementation", "threads", "warm_up_census", "versions")
    return {**head, "best_tokens_per_s": best["tokens_per_s"], "best_seconds": best["seconds"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), **{k: best[k] for k in keep},
            "repeats": repeats}


def _ratio(rows: dict[str, dict[str, Any]], a: str, b: str) -> float | None:
    if "best_tokens_per_s" not in rows.get(a, {}) or "best_tokens_per_s" not in rows.get(b, {}):
        return None
    return rows[a]["best_tokens_per_s"] / rows[b]["best_tokens_per_s"]


def _ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    return {
        "refute_first_half_speedup": _ratio(rows, "refute/first_half", "refute/all"),
        "refute_vs_transformer_lens_all_default": _ratio(rows, "refute/all", "transformer_lens/all/default"),
        "refute_vs_transformer_lens_all_last_logits": _ratio(rows, "refute/all", "transformer_lens/all/last_logits"),
        "refute_vs_transformer_lens_first_half_stop": _ratio(rows, "refute/first_half",
                                                             "transformer_lens/first_half/stop"),
        "refute_vs_nnsight_all_default": _ratio(rows, "refute/all", "nnsight/all/default"),
        "refute_vs_nnsight_all_stop": _ratio(rows, "refute/all", "nnsight/all/stop"),
        "refute_vs_nnsight_first_half_stop": _ratio(rows, "refute/first_half", "nnsight/first_half/stop"),
        "transformer_lens_first_half_speedup": _ratio(rows, "transformer_lens/first_half/stop",
                                                      "transformer_lens/all/last_logits"),
        "nnsight_first_half_speedup": _ratio(rows, "nnsight/first_half/stop", "nnsight/all/stop"),
    }


def _worktree_dirty() -> bool | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64, help="prompts")
    ap.add_argument("--length", type=int, default=64, help="tokens per prompt")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=5, help="at least 3 for a fair best")
    ap.add_argument("--peer-python", default=sys.executable)
    ap.add_argument("--tools", default="refute,transformer_lens,nnsight")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        tool, layers, mode = args.worker.split(",")
        print(json.dumps(run_config((tool, layers, mode), args.model, args.n, args.length, args.batch,
                                    args.dtype)))
        return
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    directory = _model_dir(args.model)
    tools = args.tools.split(",")
    configs = [c for c in CONFIGS if c[0] in tools]
    runs: dict[str, list[dict[str, Any]]] = {_name(c): [] for c in configs}
    for r in range(args.repeats):
        k = r % len(configs)
        for config in configs[k:] + configs[:k]:
            python = sys.executable if config[0] == "refute" else args.peer_python
            res = _spawn(config, python, directory, args)
            res["repeat"] = r
            runs[_name(config)].append(res)
            shown = res.get("error") or f"{res['tokens_per_s']:.0f} tokens/s"
            print(f"repeat {r} {_name(config)}: {shown}", file=sys.stderr)
    rows = {name: _summarise(rs) for name, rs in runs.items()}
    figures = {"model": args.model, "model_dir": directory, "n_prompts": args.n, "tokens_per_prompt": args.length,
               "batch": args.batch, "dtype": args.dtype, "repeats": args.repeats,
               "sites": "resid_post of the layers named by each configuration, every position",
               "worktree_dirty": _worktree_dirty(), "results": list(rows.values()), "ratios": _ratios(rows)}
    print(write_result("interp_capture", figures, args.out))


if __name__ == "__main__":
    main()
