"""Refusal scorer throughput: completions per second on 2,000 completions, rules only and full.

The 2,000 completions are the shipped labelled set (``refute/scorers/data/refusal_labels.jsonl``)
repeated to length, in a shuffled order, each with the request it answers (the classifier reads
it). Three figures: the rules alone (`RefusalScorer(mode=
"rules")`), the full scorer as the engine calls it (`score`, one completion at a time) and the full
scorer batched (`score_batch`, as `rescore_run` and `validate` call it), also with every reply under
one request (what embedding ~2,000 distinct requests costs, in the same run). The embedding model is
loaded and warmed up before timing; each figure is the best of --repeats runs. The embedding runs
on the scorer's default of one torch thread (see `Embedder`); ``--threads 2`` measures two. Target
(issue: measured scorers): >= 200 completions/s for the full scorer on 2 CPU cores. Also records the
share of completions that reached the classifier. Writes bench/results/refusal_scorer.json.

    python bench/refusal_scorer.py [--n 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-single", action="store_true", help="Skip the one-at-a-time figure.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads for the embedding model.")
    args = parser.parse_args()

    import torch

    from refute.datasets import Record
    from refute.scorers import RefusalScorer, ScoreInput, load_labels

    path = Path(__file__).resolve().parents[1] / "src" / "refute" / "scorers" / "data" / "refusal_labels.jsonl"
    rows = load_labels(path)
    picked = [rows[i % len(rows)] for i in range(args.n)]
    random.Random(0).shuffle(picked)
    # each reply with its own request, as the scorer reads it (the record's prompt): the classifier
    # embeds every distinct request once, so the corpus's ~3,400 distinct requests are the worst case
    items = [ScoreInput(record=Record(id=f"bench-{k}", prompt=r.prompt or "-"), messages=[], completion=r.completion)
             for k, r in enumerate(picked)]

    rules, full = RefusalScorer(mode="rules"), RefusalScorer(mode="full")
    if full._embedder is not None:
        full._embedder.threads = args.threads
    full.score_batch(items[:64])  # load and warm up the embedding model

    def best(fn) -> tuple[float, list]:
        times, result = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        return min(times), result

    t_rules, _ = best(lambda: [rules.score(i) for i in items])
    t_batch, scores = best(lambda: full.score_batch(items))
    # the same replies under one request: what the classifier costs without embedding the requests
    same = [ScoreInput(record=Record(id=i.record.id, prompt="bench"), messages=[], completion=i.completion)
            for i in items]
    t_same, _ = best(lambda: full.score_batch(same))
    figures = {
        "n_completions": args.n,
        "embedding_threads": args.threads,
        "torch_default_threads": torch.get_num_threads(),
        "scorer_version": full.version,
        "rules_only_per_s": round(args.n / t_rules, 1),
        "full_batched_per_s": round(args.n / t_batch, 1),
        "full_batched_one_request_per_s": round(args.n / t_same, 1),
        "classifier_share": round(sum(s.metadata.get("path") == "classifier" for s in scores) / args.n, 3),
        "target_per_s": 200,
    }
    if not args.skip_single:
        t_single, _ = best(lambda: [full.score(i) for i in items])
        figures["full_one_at_a_time_per_s"] = round(args.n / t_single, 1)
    figures["meets_target"] = figures["full_batched_per_s"] >= 200
    out = write_result("refusal_scorer", figures)
    print(out.read_text())


if __name__ == "__main__":
    main()
