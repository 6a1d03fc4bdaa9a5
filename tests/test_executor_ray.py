"""The ray executor on a real local Ray cluster: the same samples as the local executor, a killed
worker or driver loses nothing and stores nothing twice, and the executor options fail clearly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _kill import kill_after_samples
from typer.testing import CliRunner

from refute.cli import app
from refute.engine import PluginSpec, TaskConfig, run_task, use_executor
from refute.errors import ConfigError, RefuteError
from refute.models import Completion, GenerateConfig, GenerateRequest, ModelInfo
from refute.store import Store

ray = pytest.importorskip("ray")

PATTERNS = [PluginSpec(name="refusal_patterns")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray cluster (2 CPUs) for the module; yields its address for subprocess drivers."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fakes below, for the actors
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i:03d}", "prompt": f"How do I bake bread number {i}?"}) + "\n"
                            for i in range(n)))
    return path


def stored(store: Store, run_id: str) -> list[tuple]:
    """Every stored sample of a run with its scores, in key order: what must not depend on the executor."""
    scores: dict[int | None, list[tuple]] = {}
    for s in store.scores(run_id):
        scores.setdefault(s.sample_id, []).append((s.scorer, s.value, s.label))
    return sorted((s.prompt_id, s.epoch, s.transform_chain, s.seed, s.completion, s.input_tokens, s.output_tokens,
                   s.finish_reason, s.error, json.dumps(s.messages), sorted(scores.get(s.id, [])))
                  for s in store.samples(run_id))


class SlowFake:
    """A batched backend that takes ``delay`` seconds a reply and notes the pid of every process
    it answers in (the Ray workers) in ``pids``; ``fail`` makes every call raise."""

    concurrent = False
    preferred_batch_size = 2

    def __init__(self, pids: Path, delay: float = 0.0, fail: bool = False) -> None:
        self.info = ModelInfo(spec="fake:slow", backend="fake", details={"delay": delay})
        self.pids, self.delay, self.fail = pids, delay, fail

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        (self.pids / str(os.getpid())).touch()
        if self.fail:
            raise RuntimeError("injected worker failure")
        for i, request in enumerate(requests):
            time.sleep(self.delay)
            yield i, Completion(text=f"reply to {request.seed}", input_tokens=3, output_tokens=2)

    def close(self) -> None:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- (a) identical samples ------------------------------------------------------------------------


def test_ray_stores_the_samples_of_the_local_executor_greedy_and_sampled(cluster, tiny_backend, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 5)
    tasks = [TaskConfig(dataset=str(data), epochs=epochs, scorers=PATTERNS, seed=7,
                        generate=GenerateConfig(max_tokens=12, temperature=temperature))
             for temperature, epochs in ((0.0, 1), (0.7, 3))]
    local, remote = Store(tmp_path / "local.db"), Store(tmp_path / "ray.db")
    local_runs = [run_task(t, tiny_backend, local, progress=False) for t in tasks]
    with use_executor("ray", workers=2):  # one set of actors serves both runs
        ray_runs = [run_task(t, tiny_backend, remote, progress=False) for t in tasks]
    for a, b in zip(local_runs, ray_runs, strict=True):
        assert b.status == "completed"
        assert stored(remote, b.id) == stored(local, a.id)
        assert len(stored(remote, b.id)) == b.n_planned
    sampled = {s[4] for s in stored(remote, ray_runs[1].id) if s[0] == "p000"}
    assert len(sampled) == 3  # temperature 0.7: three epochs, three different replies


# -- (b) a worker killed mid-run ------------------------------------------------------------------


def test_a_killed_worker_loses_only_its_chunk_and_no_sample_is_stored_twice(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    data = write_prompts(tmp_path / "p.jsonl", 24)
    db = tmp_path / "s.db"
    store = Store(db)
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            with sqlite3.connect(db, timeout=5) as conn:
                n = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            busy = [int(p.name) for p in pids.iterdir()]
            if n >= 4 and busy:
                killed.append(busy[0])
                os.kill(busy[0], signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    with use_executor("ray", workers=2):
        run = run_task(TaskConfig(dataset=str(data), scorers=PATTERNS), SlowFake(pids, delay=0.1), store,
                       progress=False)
    killer.join()
    assert killed, "no worker was killed"
    assert not _alive(killed[0])
    assert run.status == "completed"
    samples = store.samples(run.id)
    keys = [(s.prompt_id, s.epoch, s.transform_chain) for s in samples]
    assert len(keys) == len(set(keys)) == 24
    assert {s.completion for s in samples} == {f"reply to {s.seed}" for s in samples}
    assert len(list(pids.iterdir())) >= 3  # the dead worker was replaced


def test_a_chunk_that_keeps_failing_stops_the_run_interrupted_naming_resume(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    store = Store(tmp_path / "s.db")
    task = TaskConfig(dataset=str(write_prompts(tmp_path / "p.jsonl", 4)), scorers=PATTERNS)
    with use_executor("ray", workers=2), pytest.raises(RefuteError) as info:
        run_task(task, SlowFake(pids, fail=True), store, progress=False)
    run = store.list_runs()[0]
    assert "injected worker failure" in str(info.value)
    assert f"refute run --resume {run.id}" in str(info.value)
    assert store.get_run(run.id).status == "interrupted"
    assert store.samples(run.id) == []


def test_one_set_of_workers_serves_every_run_of_the_block(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    store = Store(tmp_path / "s.db")
    tasks = [TaskConfig(dataset=str(write_prompts(tmp_path / "p.jsonl", 8)), scorers=PATTERNS, seed=seed)
             for seed in (1, 2)]
    with use_executor("ray", workers=2):
        runs = [run_task(t, SlowFake(pids), store, progress=False) for t in tasks]
    assert [r.status for r in runs] == ["completed", "completed"]
    assert [len(store.samples(r.id)) for r in runs] == [8, 8]
    assert len(list(pids.iterdir())) == 2  # the second run reused the first run's two actors


# -- (c) the driver killed mid-run, finished with --resume ----------------------------------------


def test_a_killed_driver_is_finished_by_resume_on_ray_with_the_local_samples(cluster, tiny_model_dir,
                                                                            tiny_backend, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 30)
    db = tmp_path / "s.db"
    cli = [sys.executable, "-m", "refute", "run", "--store", str(db), "--no-progress", "--executor", "ray",
           "--ray-address", cluster]
    proc = subprocess.Popen([*cli, "-m", f"hf:{tiny_model_dir}", "-d", str(data), "--epochs", "3",
                             "--temperature", "0.7", "--max-tokens", "32", "--dtype", "float32",
                             "--batch-size", "2", "--scorer", "refusal_patterns", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    n = kill_after_samples(proc, db, n=3)
    store = Store(db)
    run = store.list_runs()[0]
    assert 3 <= n < run.n_planned == 90
    assert store.get_run(run.id).status == "interrupted"  # its driver is dead

    done = subprocess.run([*cli, "--resume", run.id, "--workers", "1"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"ray: 1 worker on {cluster}" in done.stderr
    assert store.get_run(run.id).status == "completed"
    rows = stored(store, run.id)
    assert len(rows) == len({r[:3] for r in rows}) == 90

    task = TaskConfig.model_validate(store.get_run(run.id).config)
    local = Store(tmp_path / "local.db")
    assert rows == stored(local, run_task(task, tiny_backend, local, progress=False).id)


# -- (d) and (e): the local executor and the options --------------------------------------------


def test_the_local_executor_never_imports_ray(tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 3)
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from refute.cli import app
        from refute.engine import TaskConfig, PluginSpec, run_task, use_executor
        from refute.models import Completion, ModelInfo
        from refute.store import Store

        class Echo:
            info = ModelInfo(spec="fake:echo", backend="fake")
            preferred_batch_size = 4
            def generate(self, requests):
                for i, r in enumerate(requests):
                    yield i, Completion(text="ok")
            def close(self):
                pass

        with use_executor("local"):
            run = run_task(TaskConfig(dataset={str(data)!r}, scorers=[PluginSpec(name="refusal_patterns")]),
                           Echo(), Store({str(tmp_path / "s.db")!r}), progress=False)
        result = CliRunner().invoke(app, ["run", "--resume", "nope", "--executor", "local",
                                          "--store", {str(tmp_path / "s.db")!r}, "--no-progress"])
        print(run.status, result.exit_code, "no run 'nope'" in result.output, "ray" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["completed", "2", "True", "False"]


def test_a_bad_executor_or_an_unreachable_ray_address_is_a_clear_error(tmp_path):
    runner = CliRunner()
    base = ["run", "-m", "default", "-d", "harmful", "--store", str(tmp_path / "s.db")]
    bad = runner.invoke(app, [*base, "--executor", "spark"])
    assert bad.exit_code == 2
    words = " ".join(w for w in bad.output.split() if w != "│")
    assert "Invalid value for '--executor'" in words and "'spark' is not one of 'local', 'ray'" in words
    unreachable = runner.invoke(app, ["run", "--resume", "abcd", "--store", str(tmp_path / "s.db"),
                                      "--executor", "ray", "--ray-address", "127.0.0.1:9"])
    assert unreachable.exit_code == 2
    assert "--ray-address 127.0.0.1:9: nothing answers there" in unreachable.output
    assert not (tmp_path / "s.db").exists() or Store(tmp_path / "s.db").list_runs() == []
    with pytest.raises(ConfigError, match="--ray-address applies only with --executor ray"), \
            use_executor("local", address="auto"):
        pass
    with pytest.raises(ConfigError, match="choose local or ray"), use_executor("spark"):
        pass
