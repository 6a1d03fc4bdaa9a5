"""Generation throughput on the default model: refute vs a bare transformers loop vs Inspect.

Three workloads, each on the same converted checkpoint in the same dtype (bfloat16 where the CPU
has native bf16, as here; recorded) for every tool:

- ``greedy``: 64 prompts (the built-in ``harmful`` set), 1 sample each, greedy, 32 new tokens.
- ``epochs``: the same 64 prompts x 5 epochs, temperature 0.7 (top-p 1, no top-k), 96 new tokens.
- ``mixed``: 64 ``harmful`` and 64 ``benign-lookalike`` prompts interleaved, greedy, 160 new
  tokens. The default model refuses about a third of these in 11-13 tokens and answers the rest at
  length, so short refusals and long answers share every batch.

refute runs through its engine (`refute.engine.run_task`: planning, generation, scoring, one
SQLite commit per sample). The bare loop is what a user writes with transformers alone: batches
in dataset order (prompt-major for epochs), left-padded, ``model.generate`` (``do_sample`` with the
same temperature and ``top_k=0`` for the epochs workload), at batch 32 (refute's default) and 64.
``refute_vs_bare`` compares refute at batch 32 with the faster bare batch size;
``same_batch`` compares each batch size with itself (refute at 64 too with ``--refute-batches 32,64``)
and ``best_vs_best`` the fastest of each. Every tool is warmed up, then the tools run
in rotated order ``--repeats`` times; each one's best run is kept and every run is in the JSON.
Greedy texts of refute and the bare loop (batch 32) are compared prompt by prompt: bf16 matrix
products round differently at different batch shapes, so a few may differ after some tokens.

Targets (issue 18): epochs >= 1.5x the bare loop, mixed >= 1.3x, greedy >= 1.0x. Writes
bench/results/throughput.json.

    python bench/throughput.py                        # refute and the bare loop (about 25 min)
    python bench/throughput.py --inspect-venv DIR      # also Inspect, once per workload:
        python3.11 -m venv --system-site-packages DIR && DIR/bin/pip install inspect-ai accelerate
    python bench/throughput.py --workloads greedy --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_commit, write_result

BATCH = 32
BARE_BATCHES = (32, 64)


@dataclass(frozen=True)
class Workload:
    name: str
    prompts: tuple[str, ...]
    epochs: int
    max_tokens: int
    temperature: float

    @property
    def samples(self) -> int:
        return len(self.prompts) * self.epochs


def workloads() -> dict[str, Workload]:
    from refute.datasets import load_dataset

    harmful = [r.prompt for r in load_dataset("harmful").records]
    lookalike = [r.prompt for r in load_dataset("benign-lookalike").records]
    mixed = [p for pair in zip(harmful[:64], lookalike[:64], strict=True) for p in pair]
    return {w.name: w for w in (
        Workload("greedy", tuple(harmful[:64]), 1, 32, 0.0),
        Workload("epochs", tuple(harmful[:64]), 5, 96, 0.7),
        Workload("mixed", tuple(mixed), 1, 160, 0.0),
    )}


def _figures(seconds: float, samples: int, new_tokens: int, **extra: object) -> dict:
    return {"seconds": round(seconds, 3), "samples_per_s": samples / seconds, "new_tokens": new_tokens,
            "tokens_per_s": new_tokens / seconds, **extra}


def bare_loop(w: Workload, batch: int, model, tok) -> tuple[dict, list[str]]:
    """transformers alone: ``generate`` on left-padded batches in dataset order."""
    import torch
    from transformers import GenerationConfig

    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                     tokenize=False) for p in w.prompts for _ in range(w.epochs)]
    sampled = w.temperature > 0
    cfg = GenerationConfig(max_new_tokens=w.max_tokens, do_sample=sampled, pad_token_id=tok.pad_token_id,
                           eos_token_id=model.generation_config.eos_token_id,
                           **({"temperature": w.temperature, "top_p": 1.0, "top_k": 0} if sampled else {}))
    torch.manual_seed(0)
    start, new_tokens, replies = time.perf_counter(), 0, []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=cfg)
        gen = out[:, enc["input_ids"].shape[1]:]
        new_tokens += int((gen != tok.pad_token_id).sum())
        replies.extend(tok.batch_decode(gen, skip_special_tokens=True))
    return _figures(time.perf_counter() - start, len(texts), new_tokens), replies


def refute_engine(w: Workload, backend, prompts_file: Path) -> tuple[dict, list[str]]:
    from refute.engine import TaskConfig, run_task
    from refute.models import GenerateConfig
    from refute.store import Store

    task = TaskConfig(dataset=str(prompts_file), epochs=w.epochs,
                      generate=GenerateConfig(max_tokens=w.max_tokens, temperature=w.temperature))
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.db") as store:
        start = time.perf_counter()
        run = run_task(task, backend, store, progress=False)
        elapsed = time.perf_counter() - start
        samples = store.samples(run.id)
    by_prompt = {(s.prompt_id, s.epoch): s.completion or "" for s in samples}
    replies = [by_prompt.get((f"p{i}", e), "") for i in range(len(w.prompts)) for e in range(w.epochs)]
    return _figures(elapsed, len(samples), sum(s.output_tokens or 0 for s in samples),
                    errors=sum(1 for s in samples if s.error)), replies


def inspect_eval(venv: Path, directory: Path, w: Workload, dtype: str) -> dict:
    """Inspect's ``hf/local`` provider on the same prompts and settings (eval time, from its log)."""
    from datetime import datetime

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "prompts.jsonl").write_text(
            "".join(json.dumps({"id": i, "input": p, "target": ""}) + "\n" for i, p in enumerate(w.prompts)))
        (tmp_path / "task.py").write_text(
            "from inspect_ai import Task, task\n"
            "from inspect_ai.dataset import json_dataset\n"
            "from inspect_ai.solver import generate\n"
            "from inspect_ai.scorer import includes\n"
            "@task\ndef bench():\n"
            "    return Task(dataset=json_dataset('prompts.jsonl'), solver=[generate()], scorer=includes())\n")
        # greedy through the provider's do_sample switch (temperature 0 is refused on transformers 5)
        sampling = (["--temperature", str(w.temperature), "--top-p", "1.0", "--top-k", "0"] if w.temperature > 0
                    else ["-M", "do_sample=False"])
        cmd = [str(venv / "bin" / "inspect"), "eval", "task.py", "--model", "hf/local", "-M",
               f"model_path={directory}", "-M", f"dtype={dtype}", "--max-connections", str(BATCH),
               "--max-tokens", str(w.max_tokens), "--epochs", str(w.epochs), *sampling,
               "--log-dir", "logs", "--log-format", "json", "--display", "none"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                              env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:], "command": " ".join(cmd)}
        log = json.loads(next((tmp_path / "logs").glob("*.json")).read_text())
        started = datetime.fromisoformat(log["stats"]["started_at"])
        completed = datetime.fromisoformat(log["stats"]["completed_at"])
        eval_s = (completed - started).total_seconds()
        usage = log["stats"].get("model_usage", {})
        new_tokens = sum(int(u.get("output_tokens", 0)) for u in usage.values())
        return {**_figures(eval_s, w.samples, new_tokens), "wall_seconds_with_startup": round(wall, 1),
                "command": " ".join(cmd[1:]), "version": log.get("eval", {}).get("packages", {})}


def run_workload(w: Workload, repeats: int, backends: dict, model, tok, tmp: Path) -> dict:
    prompts_file = tmp / f"{w.name}.jsonl"
    prompts_file.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                                    for i, p in enumerate(w.prompts)))
    warm = Workload(w.name, w.prompts[:4], 1, 8, w.temperature)
    warm_file = tmp / "warm.jsonl"
    warm_file.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                                 for i, p in enumerate(warm.prompts)))
    tools = {("refute" if b == BATCH else f"refute_batch{b}"): (lambda b=b: refute_engine(w, backends[b], prompts_file))
             for b in backends}
    tools.update({f"bare_batch{b}": (lambda b=b: bare_loop(w, b, model, tok)) for b in BARE_BATCHES})
    for backend in backends.values():
        refute_engine(warm, backend, warm_file)
    bare_loop(warm, BATCH, model, tok)
    runs: dict[str, list[dict]] = {name: [] for name in tools}
    replies: dict[str, list[str]] = {}
    names = list(tools)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            figures, texts = tools[name]()
            runs[name].append(figures)
            replies.setdefault(name, texts)
            print(f"{w.name} repeat {r + 1} {name}: {figures['seconds']:.1f} s", file=sys.stderr)
    best = {name: max(rs, key=lambda f: f["samples_per_s"]) for name, rs in runs.items()}
    bare_name = max((n for n in best if n.startswith("bare")), key=lambda n: best[n]["samples_per_s"])
    out = {"settings": asdict(w) | {"prompts": len(w.prompts), "samples": w.samples},
           "best": best, "all_runs": runs, "fastest_bare": bare_name,
           "refute_vs_bare": round(best["refute"]["samples_per_s"] / best[bare_name]["samples_per_s"], 3)}
    out.update(ratios(best))
    if w.temperature == 0:
        same = sum(a == b for a, b in zip(replies["refute"], replies[f"bare_batch{BATCH}"], strict=True))
        out["greedy_identical_to_bare"] = {"identical": same, "of": w.samples}
        # the bare loop against itself at another batch size: how much bf16 rounding alone changes
        same = sum(a == b for a, b in zip(replies["bare_batch32"], replies["bare_batch64"], strict=True))
        out["bare_batch32_identical_to_bare_batch64"] = {"identical": same, "of": w.samples}
    return out


def ratios(best: dict[str, dict]) -> dict:
    """refute against the bare loop at each batch size both ran, and the fastest of each."""
    speed = {name: f["samples_per_s"] for name, f in best.items()}
    refute = {BATCH if n == "refute" else int(n.removeprefix("refute_batch")): n
              for n in speed if n.startswith("refute")}
    same = {str(b): round(speed[n] / speed[f"bare_batch{b}"], 3)
            for b, n in refute.items() if f"bare_batch{b}" in speed}
    fastest = {kind: max((n for n in speed if n.startswith(kind)), key=speed.__getitem__)
               for kind in ("refute", "bare")}
    return {"same_batch": same, "best_vs_best": {**fastest, "ratio": round(
        speed[fastest["refute"]] / speed[fastest["bare"]], 3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inspect-venv", type=Path, help="virtualenv with inspect-ai installed")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="rotated repeats; best kept")
    parser.add_argument("--workloads", default="greedy,epochs,mixed",
                        help="run these; others already in --out are kept")
    parser.add_argument("--refute-batches", default=str(BATCH), help="refute batch sizes, comma-separated")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from refute.models import load_model, prepare_embedded

    directory = prepare_embedded("default")
    batches = [int(b) for b in args.refute_batches.split(",")]
    backends = {b: load_model("default", batch_size=b) for b in sorted({BATCH, *batches})}
    backend = backends[BATCH]
    dtype = backend.info.details["dtype"]
    tok = AutoTokenizer.from_pretrained(directory)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=getattr(torch, dtype)).eval()
    figures: dict = {"model": "default", "dtype": dtype, "refute_batch": BATCH, "bare_batches": list(BARE_BATCHES),
                     "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                     "refute_sampler": backend.info.details.get("sampler"), "workloads": {}}
    out = args.out or Path(__file__).parent / "results" / "throughput.json"
    if out.exists():  # workloads not rerun keep their figures, each with the commit that made them
        before = json.loads(out.read_text())
        for name, result in before.get("workloads", {}).items():
            result.setdefault("commit", before.get("commit"))
            result.setdefault("when", before.get("when"))
            result.update(ratios(result["best"]))
            figures["workloads"][name] = result
    chosen = workloads()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads.split(","):
            w = chosen[name]
            figures["workloads"][name] = run_workload(w, args.repeats, backends, model, tok, Path(tmp))
            figures["workloads"][name].update(commit=git_commit(), when=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            if args.inspect_venv:
                result = inspect_eval(args.inspect_venv, directory, w, dtype)
                figures["workloads"][name]["inspect"] = result
                if "samples_per_s" in result:
                    figures["workloads"][name]["refute_vs_inspect"] = round(
                        figures["workloads"][name]["best"]["refute"]["samples_per_s"] / result["samples_per_s"], 3)
            write_result("throughput", figures, out)  # what is done so far survives a crash
    path = write_result("throughput", figures, out)
    print(json.dumps({n: {k: v for k, v in f.items() if k in ("refute_vs_bare", "same_batch", "best_vs_best",
                                                            "refute_vs_inspect", "greedy_identical_to_bare")}
                      for n, f in figures["workloads"].items()}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
