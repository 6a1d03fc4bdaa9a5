"""`refute serve` under load: what the guarded proxy adds to each request, measured against the
upstream it fronts, in the same run.

A fake OpenAI-compatible upstream (Starlette on uvicorn, its own process) answers every chat
completion at once with a fixed short reply. `refute serve openai:fake --base-url ...` runs in front
of it twice, each in its own process on loopback: with a pass-through stack (no layers: the proxy,
the `openai:` backend it holds, and one committed SQLite row per exchange) and with a small stack of
cheap layers (an input scorer, a system prompt and an output scorer, all the regex
``refusal_patterns``). The official ``openai`` client drives each target with N concurrent workers
(one client each), a bounded number of requests and a time cap; the targets alternate over the
repeats, so a noisy moment on the machine hits all of them. Three loads per target and repeat:

* closed loop: N workers, each sending its next request as soon as the last is answered: the
  throughput, and latency when the CPUs are saturated (then latency is N / throughput, so the
  difference between targets measures CPU per request, not time added to one request);
* paced: the same N workers at a fixed offered rate (``--rate``, well below every target's
  capacity): the latency each request sees on a machine that is not saturated;
* sequential: one worker, one request at a time.

Each reports p50 / p99 latency and the proxy's overhead (its p50 minus the upstream's in the same
repeat), and the CPU time per request of each process (client, proxy, upstream) in the closed loop.

    python bench/serve.py [--workers 8] [--requests 400] [--repeats 3] [--rate 40] [--cap-s 60]

Writes bench/results/serve.json. Target: pass-through overhead at most 5 ms p50 per request.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import write_result

from refute.serve import free_port

REPLY = "Sure. Here is a short answer."
PROMPT = "Name three primary colours."
STACK = """name: bench-cheap
description: cheap layers, to show what layers add to the proxy
layers:
  - name: request_words
    type: input_scorer
    scorer: refusal_patterns
    action: flag
  - name: safety_prompt
    type: system_prompt
    prompt: You are a helpful assistant. Refuse requests that could cause serious harm.
  - name: reply_words
    type: output_scorer
    scorer: refusal_patterns
    action: flag
"""
TARGET_MS = 5.0


def upstream_app() -> Any:
    """The fake upstream: every chat completion answered at once with the same reply."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    body = json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}}).encode()

    async def chat(request: Any) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def run_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(upstream_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _wait(url: str, proc: subprocess.Popen[bytes], probe: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode})")
        try:
            r = httpx.post(url + probe, json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]},
                           timeout=2) if probe.endswith("completions") else httpx.get(url + probe, timeout=2)
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}: the server did not start")


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used: another's from /proc, this one's from rusage."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(base_url: str, model: str, workers: int, requests: int, cap_s: float, rate: float | None = None,
           pids: dict[str, int | None] | None = None) -> dict[str, Any]:
    """``requests`` chat completions from ``workers`` threads (one official client each), or as
    many as fit in ``cap_s``; closed loop, or request k sent at k / ``rate`` s when ``rate`` is given.
    Every latency, the throughput, and the CPU per request of each process in ``pids``."""
    import openai

    latencies: list[float] = []
    failures: list[str] = []
    late = [0]
    lock = threading.Lock()
    counter = iter(range(requests))
    clients = [openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=30) for _ in range(workers)]

    def worker(client: openai.OpenAI) -> None:
        mine: list[float] = []
        while time.perf_counter() < deadline:
            with lock:
                k = next(counter, None)
            if k is None:
                break
            if rate is not None:
                wait = start + k / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -0.001:
                    with lock:
                        late[0] += 1
            sent = time.perf_counter()
            try:
                got = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                                     max_tokens=16)
                if got.choices[0].message.content != REPLY:
                    raise RuntimeError(f"unexpected reply {got.choices[0].message.content!r}")
            except Exception as exc:  # noqa: BLE001 - counted, and the run goes on
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            mine.append(time.perf_counter() - sent)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    cpu0 = {name: _cpu_s(pid) for name, pid in (pids or {}).items()}
    start = time.perf_counter()
    deadline = start + cap_s
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = {name: round(1000 * (_cpu_s(pid) - cpu0[name]) / max(len(latencies), 1), 3)
           for name, pid in (pids or {}).items()}
    for c in clients:
        c.close()
    ordered = sorted(latencies)
    out: dict[str, Any] = {
        "n": len(ordered), "failed": len(failures), "failures": failures[:3], "elapsed_s": round(elapsed, 3),
        "throughput_rps": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(1000 * statistics.median(ordered), 3) if ordered else None,
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3) if ordered else None,
        "latencies_ms": [round(1000 * x, 3) for x in latencies]}
    if rate is not None:
        out |= {"offered_rps": rate, "sent_late": late[0]}
    if pids:
        out["cpu_ms_per_request"] = cpu
    return out


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("refute", "starlette", "uvicorn", "httpx", "openai", "pydantic", "uvloop", "httptools"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _overhead(run: dict[str, dict[str, Any]], target: str) -> dict[str, float | None]:
    up, proxy = run["upstream"], run[target]
    if up["p50_ms"] is None or proxy["p50_ms"] is None:
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": round(proxy["p50_ms"] - up["p50_ms"], 3), "p99_ms": round(proxy["p99_ms"] - up["p99_ms"], 3)}


def _pooled(runs: list[dict[str, Any]], target: str) -> dict[str, float]:
    values = sorted(x for r in runs for x in r["targets"][target]["latencies_ms"])
    n = sum(r["targets"][target]["n"] for r in runs)
    secs = sum(r["targets"][target]["elapsed_s"] for r in runs)
    return {"n": n, "throughput_rps": round(n / secs, 1), "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="requests per target per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="offered requests per second of the paced load")
    parser.add_argument("--cap-s", type=float, default=60.0, help="time cap per target, load and repeat")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--upstream", type=int, default=None, help=argparse.SUPPRESS)  # run the fake upstream
    args = parser.parse_args()
    if args.upstream is not None:
        run_upstream(args.upstream)
        return

    folder = Path(tempfile.mkdtemp(prefix="refute-bench-serve-"))
    (folder / "stack.yaml").write_text(STACK)
    env = os.environ | {"NO_COLOR": "1"}
    env.pop("OPENAI_API_KEY", None)
    up_port, pass_port, layered_port = free_port(), free_port(), free_port()
    up_url = f"http://127.0.0.1:{up_port}/v1"
    procs = {"upstream": subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port)], env=env)}
    for name, port, extra in (("pass_through", pass_port, []), ("layered", layered_port,
                                                                 ["--stack", str(folder / "stack.yaml")])):
        procs[name] = subprocess.Popen([sys.executable, "-m", "refute", "serve", "openai:fake", "--base-url", up_url,
                                        "--port", str(port), "--store", str(folder / f"{name}.db"), "--retries", "0",
                                        *extra], env=env, stderr=subprocess.DEVNULL)
    targets = {"upstream": (up_url, "fake"), "pass_through": (f"http://127.0.0.1:{pass_port}/v1", "openai:fake"),
               "layered": (f"http://127.0.0.1:{layered_port}/v1", "openai:fake")}
    loads = {"closed_loop": {"workers": args.workers, "requests": args.requests},
             "paced": {"workers": args.workers, "requests": args.requests, "rate": args.rate},
             "sequential": {"workers": 1, "requests": args.requests // 4}}
    try:
        _wait(f"http://127.0.0.1:{up_port}", procs["upstream"], "/v1/chat/completions")
        _wait(f"http://127.0.0.1:{pass_port}", procs["pass_through"], "/health")
        _wait(f"http://127.0.0.1:{layered_port}", procs["layered"], "/health")
        for url, model in targets.values():  # warm: connections, imports, SQLite pages
            _drive(url, model, args.workers, 100, args.cap_s)
        runs: dict[str, list[dict[str, Any]]] = {load: [] for load in loads}
        for repeat in range(args.repeats):
            order = list(targets) if repeat % 2 == 0 else list(reversed(targets))
            for load, how in loads.items():
                pids = {"client": None, **{n: p.pid for n, p in procs.items()}} if load == "closed_loop" else None
                got = {name: _drive(*targets[name], how["workers"], how["requests"], args.cap_s, how.get("rate"),
                                    pids) for name in order}
                runs[load].append({"repeat": repeat, "order": order, "targets": got,
                                   "overhead": {t: _overhead(got, t) for t in ("pass_through", "layered")}})
            print(f"repeat {repeat}: " + "  ".join(
                f"{load} overhead p50 pass {r[-1]['overhead']['pass_through']['p50_ms']:.2f} ms "
                f"layered {r[-1]['overhead']['layered']['p50_ms']:.2f} ms" for load, r in runs.items()), flush=True)
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited during the run")
        logged = {}
        for name in ("pass_through", "layered"):
            with sqlite3.connect(folder / f"{name}.db") as db:
                logged[name] = db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
    results: dict[str, Any] = {}
    for load, load_runs in runs.items():
        overall = {t: _pooled(load_runs, t) for t in targets}
        results[load] = {**loads[load], "runs": load_runs, "overall": overall, "overall_overhead": {
            t: {"p50_ms": round(overall[t]["p50_ms"] - overall["upstream"]["p50_ms"], 3),
                "p99_ms": round(overall[t]["p99_ms"] - overall["upstream"]["p99_ms"], 3)}
            for t in ("pass_through", "layered")}}
        for r in load_runs:
            for g in r["targets"].values():
                g.pop("latencies_ms")
    cpu = {t: {proc: round(statistics.median(r["targets"][t]["cpu_ms_per_request"][proc]
                                             for r in runs["closed_loop"]), 3)
               for proc in ("client", *procs)} for t in targets}
    paced = results["paced"]["overall_overhead"]["pass_through"]["p50_ms"]
    closed = results["closed_loop"]["overall_overhead"]["pass_through"]["p50_ms"]
    write_result("serve", {
        "workers": args.workers, "requests_per_target": args.requests, "repeats": args.repeats, "cap_s": args.cap_s,
        "versions": _versions(), "stack": STACK, "reply": REPLY, "loads": results,
        "cpu_ms_per_request_closed_loop": cpu, "exchanges_logged": logged,
        "target": f"pass-through overhead at most {TARGET_MS:g} ms p50 per request",
        "notes": ("closed_loop saturates the machine's CPUs (client, proxy and upstream share them), so its "
                  "overhead is workers x the proxy's CPU per request / cores, not time added to one request; "
                  "paced (the same workers at a fixed rate below every target's capacity) and sequential "
                  "measure the time the proxy adds to a request"),
        "met_paced": paced <= TARGET_MS,
        "met_paced_every_repeat": all(r["overhead"]["pass_through"]["p50_ms"] <= TARGET_MS for r in runs["paced"]),
        "met_closed_loop": closed <= TARGET_MS,
    }, args.out)
    for load, res in results.items():
        print(f"{load}: " + "  ".join(f"{t} {g['throughput_rps']:.0f} rps p50 {g['p50_ms']:.2f} ms "
                                      f"p99 {g['p99_ms']:.2f} ms" for t, g in res["overall"].items())
              + f"  | overhead p50 pass-through {res['overall_overhead']['pass_through']['p50_ms']:.2f} ms, "
              f"layered {res['overall_overhead']['layered']['p50_ms']:.2f} ms")
    print("CPU ms per request (closed loop): " + "; ".join(
        f"{t}: " + ", ".join(f"{p} {v:.2f}" for p, v in c.items()) for t, c in cpu.items()))


if __name__ == "__main__":
    main()
