"""No silent wrong answers: the cache, failed runs, the store failing, and replies out of bounds.

Regression tests for issue 11, over the fault-injecting server of ``_fault_server.py``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from _fault_server import serve
from typer.testing import CliRunner

from refute.cli._app import app
from refute.engine import TaskConfig, resume_run, run_task
from refute.errors import StoreError
from refute.models._openai import OpenAIBackend
from refute.store import Store
from refute.store._process import is_alive

runner = CliRunner()
REFUSAL = "I'm sorry, but I can't help with that."


def prompts(path: Path, contents: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": c}) + "\n" for i, c in enumerate(contents)))
    return path


def backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend("tiny-test-model", base_url=url, timeout_s=5.0, backoff_base_s=0.0, **kw)


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once this socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def refusal_rate(store: Store, run_id: str) -> float:
    values = [s.value for s in store.scores(run_id, "refusal_patterns")]
    return sum(values) / len(values)


def task(data: Path, **kw) -> TaskConfig:
    return TaskConfig(dataset=str(data), scorers=[{"name": "refusal_patterns"}], **kw)


# -- 1. the cache knows which server answered ------------------------------------------------------


def test_a_run_against_another_server_is_never_answered_from_the_first_servers_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    data = prompts(tmp_path / "p.jsonl", [f"id={i}" for i in range(6)])
    with serve() as a, serve(reply=REFUSAL) as b, Store(tmp_path / "s.db") as store:
        with backend(a.base_url) as model:
            first = run_task(task(data), model, store, progress=False)
        assert refusal_rate(store, first.id) == 0.0
        assert {s.source for s in store.samples(first.id)} == {"request"}
        with backend(b.base_url) as model:
            second = run_task(task(data), model, store, progress=False)
        assert b.total == 6  # every request reached B
        assert refusal_rate(store, second.id) == 1.0
        assert {s.source for s in store.samples(second.id)} == {"request"}
        # The same server again: now the cache may answer, and the samples say so.
        with backend(b.base_url) as model:
            third = run_task(task(data), model, store, progress=False)
        assert b.total == 6 and {s.source for s in store.samples(third.id)} == {"cache"}
        # A dead port is an error for every sample, never an answer from anybody's cache.
        with backend(dead_url(), max_retries=0) as model:
            dead = run_task(task(data), model, store, progress=False)
        assert dead.status == "failed" and store.sample_counts(dead.id) == (0, 6)


def test_a_reply_with_no_content_is_an_error_not_an_empty_answer(tmp_path):
    data = prompts(tmp_path / "p.jsonl", ["id=1", "id=2 fault=nocontent times=9"])
    with serve() as srv, Store(tmp_path / "s.db") as store, backend(srv.base_url) as model:
        run = run_task(task(data), model, store, progress=False)
        rows = {s.prompt_id: s for s in store.samples(run.id)}
        assert rows["p1"].error is not None and "no content" in rows["p1"].error
        assert rows["p1"].completion is None
        assert [s.value for s in store.scores(run.id, "refusal_patterns")] == [0.0]  # only p0 scored
        assert run.status == "completed_with_errors"


# -- 3, 4. failed runs exit non-zero; --resume may move to another server ---------------------------


def test_a_failed_run_exits_1_with_the_count_and_resumes_on_a_moved_server(tmp_path):
    data = prompts(tmp_path / "p.jsonl", [f"id={i}" for i in range(4)])
    db = tmp_path / "s.db"
    with serve() as srv:
        result = runner.invoke(app, ["run", "-m", "openai:tiny", "--base-url", dead_url(), "--retries", "0",
                                     "-d", str(data), "--store", str(db), "--no-progress"])
        assert result.exit_code == 1, result.output
        with Store(db) as store:
            (run,) = store.list_runs()
            assert run.status == "failed"
        assert "4 of 4 samples failed" in result.output and f"refute run --resume {run.id}" in result.output
        assert "Traceback" not in result.output
        wrong = runner.invoke(app, ["run", "--resume", run.id, "-m", "openai:other", "--store", str(db)])
        assert wrong.exit_code == 2 and "cannot change model" in wrong.output
        moved = runner.invoke(app, ["run", "--resume", run.id, "--base-url", srv.base_url, "--store", str(db),
                                    "--no-progress"])
        assert moved.exit_code == 0, moved.output
        assert srv.total == 4
        with Store(db) as store:
            run = store.get_run(run.id)
            assert run.status == "completed" and store.sample_counts(run.id) == (4, 0)
            assert run.model["details"]["base_url"] == srv.base_url  # the run records where it went on
            assert len(store.list_runs()) == 1


def test_resume_refuses_options_that_would_change_the_run(tmp_path):
    data = prompts(tmp_path / "p.jsonl", ["id=1"])
    db = tmp_path / "s.db"
    with serve() as srv:
        first = runner.invoke(app, ["run", "-m", "openai:tiny", "--base-url", srv.base_url, "-d", str(data),
                                    "--store", str(db), "--no-progress"])
        assert first.exit_code == 0, first.output
        with Store(db) as store:
            run_id = store.list_runs()[0].id
        again = runner.invoke(app, ["run", "--resume", run_id, "--epochs", "3", "--store", str(db)])
        assert again.exit_code == 2 and "--epochs" in again.output


# -- 5. the store failing mid-run ------------------------------------------------------------------


class LockAfter:
    """Answers like ``inner``, but after ``n`` requests another connection locks the store."""

    def __init__(self, inner, db: Path, n: int) -> None:
        self.inner, self.db, self.n, self.seen = inner, db, n, 0
        self.info, self.preferred_batch_size = inner.info, 1
        self.holder: sqlite3.Connection | None = None

    def generate(self, requests):
        self.seen += len(requests)
        if self.seen > self.n and self.holder is None:
            self.holder = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
            self.holder.execute("BEGIN EXCLUSIVE")
        yield from self.inner.generate(requests)

    def release(self) -> None:
        if self.holder is not None:
            self.holder.execute("ROLLBACK")
            self.holder.close()

    def close(self) -> None:
        self.inner.close()


def test_a_locked_store_stops_the_run_with_a_clear_error_and_resume_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("refute.store._store._LOCK_TIMEOUT_S", 0.2)
    data = prompts(tmp_path / "p.jsonl", [f"id={i}" for i in range(6)])
    db = tmp_path / "s.db"
    with serve() as srv, Store(db) as store, backend(srv.base_url) as inner:
        model = LockAfter(inner, db, n=3)
        with pytest.raises(StoreError) as caught:
            run_task(task(data), model, store, progress=False)
        message = str(caught.value)
        run = store.list_runs()[0]
        assert "locked" in message and f"refute run --resume {run.id}" in message
        assert caught.value.refute_run_id == run.id
        model.release()
        assert store.sample_counts(run.id) == (3, 0)
        done = resume_run(run.id, store, model=inner, progress=False)
        assert done.status == "completed" and store.sample_counts(run.id) == (6, 0)
        assert len(store.samples(run.id)) == 6


def test_a_full_disk_stops_the_run_as_interrupted_and_resume_completes_it(tmp_path):
    data = prompts(tmp_path / "p.jsonl", [f"id={i} chars=3000" for i in range(40)])
    with serve() as srv, Store(tmp_path / "s.db") as store, backend(srv.base_url) as model:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages + 12}")  # SQLite's own "disk is full"
        with pytest.raises(StoreError, match="disk holding it is full"):
            run_task(task(data), model, store, progress=False)
        run = store.list_runs()[0]
        assert run.status == "interrupted"
        ok, bad = store.sample_counts(run.id)
        assert 0 < ok < 40 and bad == 0
        store._db.execute("PRAGMA max_page_count = 1073741823")
        done = resume_run(run.id, store, model=model, progress=False)
        assert done.status == "completed" and store.sample_counts(done.id) == (40, 0)


def test_a_killed_process_is_not_running():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        host = socket.gethostname()
        start = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
        assert is_alive(proc.pid, host, start)
        assert not is_alive(proc.pid, host, str(int(start) + 1))  # the pid now belongs to another
        proc.kill()
        time.sleep(0.2)
        assert not is_alive(proc.pid, host, start)  # a zombie, not yet reaped
    finally:
        proc.kill()
        proc.wait()
    assert not is_alive(proc.pid, host, start)
    assert is_alive(proc.pid, "another-host", start)  # nothing can be checked there


def test_a_read_only_store_can_be_read_but_not_written(tmp_path):
    data = prompts(tmp_path / "p.jsonl", ["id=1"])
    with serve() as srv, Store(tmp_path / "s.db") as store, backend(srv.base_url) as model:
        run = run_task(task(data), model, store, progress=False)
    with Store(tmp_path / "s.db", read_only=True) as ro:
        assert [r.id for r in ro.list_runs()] == [run.id] and len(ro.samples(run.id)) == 1
        with pytest.raises(StoreError, match="read-only"):
            ro.set_status(run.id, "failed")


# -- 10, 11. replies out of bounds; one slow reply does not stall the others -----------------------


def test_a_huge_reply_is_stored_once_cut_at_the_cap_and_marked(tmp_path, monkeypatch):
    monkeypatch.setattr("refute.engine._runner.MAX_REPLY_CHARS", 1000)
    data = prompts(tmp_path / "p.jsonl", ["id=1 chars=200000", "id=2"])
    with serve() as srv, Store(tmp_path / "s.db") as store, backend(srv.base_url) as model:
        run = run_task(task(data), model, store, progress=False)
        rows = {s.prompt_id: s for s in store.samples(run.id)}
        assert len(rows["p0"].completion) == 1000 and rows["p0"].truncated
        assert len(rows["p0"].messages[-1]["content"]) == 1000
        assert not rows["p1"].truncated
        biggest = store._db.execute("SELECT MAX(LENGTH(completion)) FROM cache").fetchone()[0]
        assert biggest == 1000
    assert os.path.getsize(tmp_path / "s.db") < 200_000


def test_one_held_reply_does_not_stop_the_rest_of_the_run(tmp_path):
    data = prompts(tmp_path / "p.jsonl", ["id=0 hold=1"] + [f"id={i}" for i in range(1, 96)])
    box: dict = {}

    def go(model: OpenAIBackend) -> None:
        with Store(tmp_path / "s.db") as store:
            box["run"] = run_task(task(data), model, store, progress=False)

    with serve() as srv, backend(srv.base_url, concurrency=8) as model:
        worker = threading.Thread(target=go, args=(model,))
        worker.start()
        deadline = time.monotonic() + 4.0  # the held reply is released by the server after 5 s
        while srv.total < 96 and time.monotonic() < deadline:
            time.sleep(0.02)
        reached = srv.total
        srv.gate.set()
        worker.join(timeout=30)
        assert reached == 96, f"only {reached} of 96 requests were sent while one reply was held"
        assert box["run"].status == "completed"


# -- 5. a study run again after an interruption resumes its runs, it does not add new ones ---------


class InterruptAfter:
    """Answers like ``inner`` until ``n`` replies have been given, then raises KeyboardInterrupt."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.given = inner, n, 0
        self.info, self.preferred_batch_size = inner.info, 4

    def generate(self, requests):
        for i, completion in self.inner.generate(requests):
            if self.given >= self.n:
                raise KeyboardInterrupt
            self.given += 1
            yield i, completion

    def close(self) -> None:
        pass


def test_a_study_run_after_an_interruption_resumes_the_stopped_run(tmp_path):
    from test_study_gate import ScriptedModel, write_study

    from refute.gate import study_gate
    from refute.study import load_study, run_study

    study = load_study(write_study(tmp_path))
    with Store(tmp_path / "refute.db") as store:
        with pytest.raises(KeyboardInterrupt) as caught:
            run_study(study, store, model=InterruptAfter(ScriptedModel(), 10), progress=False, gate=study_gate)
        (stopped,) = store.list_runs()
        assert stopped.status == "interrupted" and caught.value.refute_run_id == stopped.id
        assert store.sample_counts(stopped.id) == (10, 0)
        run_study(study, store, model=ScriptedModel(), progress=False, gate=study_gate)
        runs = store.list_runs()
        assert len(runs) == 5 and all(r.status == "completed" for r in runs)
        resumed = store.get_run(stopped.id)
        assert resumed.status == "completed" and store.sample_counts(stopped.id) == (resumed.n_planned, 0)
