"""`refute view` at 100,000 samples: p50/p95 latency of the samples page (with filters, first and
deep pages) and of the transcript page, over loopback HTTP against `refute view` in its own
process, beside the bare SQLite queries behind the samples page in the same run.

The store is synthetic: one run of 2,000 prompts x 10 epochs x 5 transform chains (100,000
samples), replies of 200-1,200 characters, a refusal score on each, 100 queued human labels.

    python bench/view.py [--samples 100000] [--repeats 40]

Writes bench/results/view.json. Target: p95 under 200 ms for both pages on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import write_result

from refute.store import Store
from refute.view import free_port

CHAINS = ("none", "base64", "roleplay", "prefix_injection", "fiction")
CATEGORIES = ("cyber", "bio", "chem", "fraud", "harassment", "weapons", "privacy", "misinformation")
WORDS = ("model", "request", "sorry", "cannot", "step", "first", "then", "please", "note", "safety", "here",
         "information", "provide", "detail", "because", "would", "example", "answer")


def build_store(path: Path, n_samples: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    epochs, chains = 10, len(CHAINS)
    prompts = n_samples // (epochs * chains)
    with Store(path) as store:
        run = store.create_run(kind="redteam", name="synthetic", model_spec="scripted", model_revision=None, model={},
                               config={"dataset": "harmful", "generate": {"max_tokens": 256}}, versions={},
                               dataset_name="harmful", dataset_hash="h", n_planned=prompts * epochs * chains)
        store.set_status(run.id, "completed")
    db = sqlite3.connect(path)
    now = "2026-12-01T00:00:00.000+00:00"
    with db:
        sample_rows, score_rows = [], []
        sid = 0
        for p in range(prompts):
            category = CATEGORIES[p % len(CATEGORIES)]
            for chain in CHAINS:
                for e in range(epochs):
                    sid += 1
                    refused = rng.random() < 0.6
                    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 180)))
                    reply = ("I'm sorry, I can't help with that. " if refused else "Sure, here is how. ") + words
                    messages = json.dumps([{"role": "user", "content": f"request {p} under {chain}"},
                                           {"role": "assistant", "content": reply}])
                    sample_rows.append((sid, run.id, f"p{p:05d}", category, e, chain, p * 100 + e, messages, reply,
                                        20, len(reply) // 4, 0.5, "stop", now))
                    score_rows.append((sid, run.id, "refusal", "3", float(refused),
                                       "full_refusal" if refused else "full_compliance", now))
        db.executemany("INSERT INTO samples (id, run_id, prompt_id, category, epoch, transform_chain, seed, "
                       "messages_json, completion, input_tokens, output_tokens, latency_s, finish_reason, created_at)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", sample_rows)
        db.executemany("INSERT INTO scores (sample_id, run_id, scorer, scorer_version, value, label, created_at) "
                       "VALUES (?,?,?,?,?,?,?)", score_rows)
    db.close()
    with Store(path) as store:
        picked = random.Random(seed + 1).sample(range(1, sid + 1), 100)
        store.queue_labels(run.id, "refusal", seed, [(i, "refusal") for i in picked])
        for i in picked[:40]:
            store.save_label(run.id, i, "refusal", rng.choice(("full_refusal", "full_compliance")), "bench")
    return run.id


def _times(client: httpx.Client, urls: list[str], repeats: int) -> list[float]:
    out = []
    for r in range(repeats):
        url = urls[r % len(urls)]
        start = time.perf_counter()
        response = client.get(url)
        out.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
    return out


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
            "max_ms": 1000 * ordered[-1], "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="refute-bench-view-"))
    path = folder / "refute.db"
    start = time.perf_counter()
    run_id = build_store(path, args.samples)
    built_s = time.perf_counter() - start
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "refute", "view", "--store", str(path), "--port", str(port),
                               "--no-browser"], stderr=subprocess.PIPE, env=os.environ | {"NO_COLOR": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(300):
                try:
                    if client.get("/runs").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            with Store(path, read_only=True) as store:
                ids = [r[0] for r in store.query("SELECT id FROM samples WHERE run_id = ? ORDER BY id", [run_id])]
            mid = ids[len(ids) // 2]
            rng = random.Random(7)
            samples = f"/runs/{run_id}/samples"
            workloads = {
                "samples_filtered": [
                    f"{samples}?scorer=refusal&outcome=low&category=bio",
                    f"{samples}?scorer=refusal&transform=roleplay&epoch=3",
                    f"{samples}?scorer=refusal&outcome=high&category=chem&transform=fiction",
                    f"{samples}?scorer=refusal&human=unlabelled&category=cyber",
                    f"{samples}?scorer=refusal&outcome=low&after={mid}",
                    f"{samples}?scorer=refusal&min=0.5&transform=base64&limit=100",
                ],
                "samples_search": [f"{samples}?scorer=refusal&q=safety+note", f"{samples}?scorer=refusal&q=p01234"],
                "transcript": [f"/samples/{rng.choice(ids)}" for _ in range(args.repeats)],
                "transcript_revealed": [f"/samples/{rng.choice(ids)}?reveal=1" for _ in range(args.repeats)],
            }
            for urls in workloads.values():  # warm: first requests compile templates and fill caches
                _times(client, urls[:2], 2)
            raw: dict[str, list[float]] = {k: [] for k in workloads}
            for _ in range(2):  # alternate the workloads so a noisy moment hits all of them
                for name, urls in workloads.items():
                    raw[name] += _times(client, urls, args.repeats // 2)
        bare = _bare_queries(path, run_id, args.repeats)
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures = {name: _summary(times) | {"times_ms": [round(1000 * t, 2) for t in times]} for name, times in raw.items()}
    write_result("view", {
        "samples": args.samples, "store_build_s": round(built_s, 1), "store_mib": round(path.stat().st_size / 2**20, 1),
        "pages": figures, "bare_sql": bare,
        "target": "p95 under 200 ms for the samples page with a filter and the transcript page",
        "met": all(figures[k]["p95_ms"] < 200 for k in ("samples_filtered", "transcript")),
    }, args.out)
    for name, f in figures.items():
        print(f"{name:22s} p50 {f['p50_ms']:7.1f} ms   p95 {f['p95_ms']:7.1f} ms")
    print(f"bare SQL (page + count) p50 {bare['p50_ms']:.1f} ms, p95 {bare['p95_ms']:.1f} ms")


def _bare_queries(path: Path, run_id: str, repeats: int) -> dict[str, float]:
    """The samples page's two queries (one filter) straight on SQLite, without the app."""
    from refute.view._queries import SampleFilter, sample_page

    times = []
    with Store(path, read_only=True) as store:
        f = SampleFilter(scorer="refusal", outcome="low", category="bio")
        for _ in range(repeats):
            start = time.perf_counter()
            sample_page(store, run_id, f)
            times.append(time.perf_counter() - start)
    return _summary(times)


if __name__ == "__main__":
    main()
