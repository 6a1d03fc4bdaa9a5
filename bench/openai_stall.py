"""One slow reply per window: does it hold back the rest of an ``openai:`` run?

128 prompts against the fault-injecting server of the test suite on 127.0.0.1; one request in
every 32 takes ``--slow`` seconds, the others answer at once. The same run goes through the engine
twice per repeat, alternating: ``streaming`` (the engine refills a slot as soon as it frees, as
shipped) and ``barrier`` (the engine waits for a whole window before sending more, as before issue
11). The ideal is about ``--slow`` seconds: every slow request starts at once and the fast ones
fill the other slots.

    python bench/openai_stall.py --slow 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

import _fault_server
from _common import write_result

from refute.engine import TaskConfig, run_task
from refute.models._openai import OpenAIBackend
from refute.store import Store


def one_run(url: str, data: Path, db: Path, streaming: bool, concurrency: int) -> float:
    model = OpenAIBackend("bench", base_url=url, concurrency=concurrency, timeout_s=120)
    model.concurrent = streaming
    start = time.perf_counter()
    with model, Store(db) as store:
        run = run_task(TaskConfig(dataset=str(data), scorers=[{"name": "refusal_patterns"}]), model, store,
                       progress=False)
        assert run.status == "completed", run.status
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--slow", type=float, default=4.0, help="seconds the slow reply takes")
    parser.add_argument("--every", type=int, default=32, help="one slow request per this many")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"streaming": [], "barrier": []}
    _fault_server.MAX_REQUESTS = 10**6  # the test server's per-test cap does not apply here
    with tempfile.TemporaryDirectory() as tmp, _fault_server.serve() as srv:
        for r in range(args.repeats):
            for mode in (("streaming", "barrier") if r % 2 == 0 else ("barrier", "streaming")):
                data = Path(tmp) / f"{mode}-{r}.jsonl"  # distinct prompts: nothing from the cache
                lines = [{"id": f"p{i}", "prompt": f"id={i} r={r} mode={mode}"
                          + (f" slow={args.slow}" if i % args.every == 0 else "")} for i in range(args.prompts)]
                data.write_text("".join(json.dumps(x) + "\n" for x in lines))
                times[mode].append(one_run(srv.base_url, data, Path(tmp) / f"{mode}-{r}.db", mode == "streaming",
                                           args.concurrency))
                print(f"repeat {r} {mode}: {times[mode][-1]:.2f} s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    path = write_result("openai_stall", {
        "settings": vars(args), "seconds": times, "median_s": med,
        "barrier_over_streaming": med["barrier"] / med["streaming"],
        "ideal_s": args.slow,
    })
    print(json.dumps({"median_s": med, "ratio": med["barrier"] / med["streaming"]}), f"-> {path}")


if __name__ == "__main__":
    main()
