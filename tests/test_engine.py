"""Engine mechanics on a tiny random model: storage, seeds, cache, resume, failures."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _kill import kill_after_samples

from refute.engine import TaskConfig, resume_run, run_task
from refute.errors import DatasetError, StoreError
from refute.models import Completion, GenerateConfig, GenerateRequest
from refute.store import SampleRecord, Store


def write_prompts(path: Path, n: int) -> Path:
    rows = [{"id": f"p{i:03d}", "prompt": f"How do I bake bread number {i}?", "category": "c" + str(i % 3)}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task_for(path: Path, **kw) -> TaskConfig:
    kw.setdefault("generate", GenerateConfig(max_tokens=6))
    return TaskConfig(dataset=str(path), **kw)


class Recording:
    """Wraps a backend: counts requests, can fail some prompts or interrupt after N results."""

    def __init__(self, inner, *, fail_if: str | None = None, interrupt_after: int | None = None):
        self.inner, self.info, self.preferred_batch_size = inner, inner.info, inner.preferred_batch_size
        self.fail_if, self.interrupt_after = fail_if, interrupt_after
        self.requests: list[GenerateRequest] = []
        self.yielded = 0

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        self.requests += requests
        for i, completion in self.inner.generate(requests):
            if self.interrupt_after is not None and self.yielded >= self.interrupt_after:
                raise KeyboardInterrupt
            self.yielded += 1
            if self.fail_if and self.fail_if in requests[i].messages[-1].content:
                yield i, Completion(text="", error="injected failure")
            else:
                yield i, completion

    def close(self) -> None:
        pass


def test_run_stores_every_sample_with_seeds_scores_and_provenance(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 5)
    run = run_task(task_for(data, epochs=2), tiny_backend, store, progress=False)
    samples = store.samples(run.id)
    assert run.status == "completed" and run.n_planned == 10
    assert len(samples) == 10
    assert len({(s.prompt_id, s.epoch) for s in samples}) == 10
    assert len({s.seed for s in samples}) == 10  # each sample its own seed
    assert all(s.error is None and s.output_tokens and s.input_tokens for s in samples)
    assert all(s.messages[-1]["role"] == "assistant" for s in samples)
    scores = store.scores(run.id)
    assert len(scores) == 10 and {s.scorer for s in scores} == {"refusal"}
    assert {"python", "refute", "torch", "transformers"} <= set(run.versions)
    assert len(run.dataset_hash) == 64 and run.config["epochs"] == 2


def test_identical_requests_are_answered_from_the_cache(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 4)
    first = run_task(task_for(data), tiny_backend, store, progress=False)
    wrapped = Recording(tiny_backend)
    second = run_task(task_for(data), wrapped, store, progress=False)
    assert wrapped.requests == []  # nothing reached the model
    a = {s.prompt_id: s.completion for s in store.samples(first.id)}
    b = store.samples(second.id)
    assert all(s.cached for s in b) and {s.prompt_id: s.completion for s in b} == a
    # another seed is another request
    third = Recording(tiny_backend)
    run_task(task_for(data, seed=1), third, store, progress=False)
    assert len(third.requests) == 4


def test_sampling_is_reproducible_and_independent_of_batch_size(tiny_model_dir, tmp_path):
    from refute.models._hf import HFBackend

    data = write_prompts(tmp_path / "p.jsonl", 6)
    task = task_for(data, epochs=2, generate=GenerateConfig(max_tokens=8, temperature=1.0))
    outputs = []
    for batch in (1, 5):
        backend = HFBackend(tiny_model_dir, dtype="float32", batch_size=batch)
        with Store(tmp_path / f"s{batch}.db") as s:
            run = run_task(task, backend, s, progress=False)
            outputs.append({(x.prompt_id, x.epoch): x.completion for x in s.samples(run.id)})
    assert outputs[0] == outputs[1]
    # epochs differ (own seeds), so sampled replies are not all identical
    assert len({v for v in outputs[0].values()}) > 6


def test_interrupted_run_resumes_without_repeating_or_duplicating(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 9)
    flaky = Recording(tiny_backend, interrupt_after=5)
    flaky.preferred_batch_size = 2
    with pytest.raises(KeyboardInterrupt):
        run_task(task_for(data), flaky, store, progress=False)
    run = store.list_runs()[0]
    assert run.status == "interrupted"
    before = {s.prompt_id: (s.id, s.created_at, s.completion) for s in store.samples(run.id)}
    assert len(before) == 5
    again = Recording(tiny_backend)
    done = resume_run(run.id, store, model=again, progress=False)
    assert done.status == "completed"
    assert sorted(r.messages[-1].content for r in again.requests) == sorted(
        f"How do I bake bread number {i}?" for i in range(9)
        if f"p{i:03d}" not in before
    )
    after = store.samples(run.id)
    assert len(after) == 9 == len({s.prompt_id for s in after})
    for s in after:
        if s.prompt_id in before:
            assert (s.id, s.created_at, s.completion) == before[s.prompt_id]


def test_failed_samples_are_recorded_and_retried_on_resume(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 6)
    broken = Recording(tiny_backend, fail_if="number 3?")
    run = run_task(task_for(data), broken, store, progress=False)
    failed = [s for s in store.samples(run.id) if s.error]
    assert [s.prompt_id for s in failed] == ["p003"] and failed[0].error == "injected failure"
    assert store.sample_counts(run.id) == (5, 1)
    assert len(store.scores(run.id)) == 5  # no score for the failed sample
    healed = Recording(tiny_backend)
    resume_run(run.id, store, model=healed, progress=False)
    assert len(healed.requests) == 1
    assert store.sample_counts(run.id) == (6, 0)
    assert len(store.samples(run.id)) == 6


def test_malformed_dataset_raises_before_any_run_is_written(tiny_backend, store, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "fine"}\n{"id": "b"}\n')
    with pytest.raises(DatasetError) as info:
        run_task(task_for(bad), tiny_backend, store, progress=False)
    assert "bad.jsonl" in str(info.value) and ":2" in str(info.value) and "prompt" in str(info.value)
    assert store.list_runs() == []


def test_store_refuses_to_overwrite_a_completed_sample(store):
    run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={},
                           config={}, versions={}, dataset_name="d", dataset_hash="h", n_planned=1)
    sample = SampleRecord(run_id=run.id, prompt_id="p", category="c", epoch=0, transform_chain="none",
                          seed=1, messages=[], completion="x")
    store.record_sample(sample)
    with pytest.raises(StoreError, match="already completed"):
        store.record_sample(sample)
    assert store.get_run(run.id[:6]).id == run.id


def test_store_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "old.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 999"):
        Store(path)


def test_kill_9_then_resume_loses_and_duplicates_nothing(tiny_model_dir, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 40)
    db_path = tmp_path / "kill.db"
    env = {**os.environ, "REFUTE_STORE": str(db_path)}
    cmd = [sys.executable, "-m", "refute", "run", "--model", f"hf:{tiny_model_dir}", "--dataset",
           str(data), "--batch-size", "1", "--max-tokens", "40", "--dtype", "float32", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_samples(proc, db_path)
    with Store(db_path) as s:
        run = s.list_runs()[0]
        assert run.status == "interrupted"  # killed: its process is gone, so it is not "running"
        before = {x.prompt_id: (x.id, x.created_at) for x in s.samples(run.id)}
    assert 5 <= len(before) < 40
    result = subprocess.run([sys.executable, "-m", "refute", "run", "--resume", run.id, "--no-progress"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with Store(db_path) as s:
        after = s.samples(run.id)
        assert s.get_run(run.id).status == "completed"
    assert len(after) == 40 == len({x.prompt_id for x in after})
    for x in after:
        if x.prompt_id in before:
            assert (x.id, x.created_at) == before[x.prompt_id]


def test_multi_turn_run_killed_with_sigkill_resumes_turn_by_turn_transcripts(tiny_model_dir, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 30)
    db_path = tmp_path / "kill-mt.db"
    env = {**os.environ, "REFUTE_STORE": str(db_path)}
    cmd = [sys.executable, "-m", "refute", "run", "--model", f"hf:{tiny_model_dir}", "--dataset", str(data),
           "--batch-size", "1", "--max-tokens", "16", "--dtype", "float32", "--no-progress",
           "--solver", "scripted_escalation", "--solver-arg", "turns=3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_samples(proc, db_path, n=3)
    with Store(db_path) as s:
        run = s.list_runs()[0]
        before = {x.prompt_id: (x.id, x.created_at, x.messages) for x in s.samples(run.id)}
    assert run.status == "interrupted" and 3 <= len(before) < 30
    result = subprocess.run([sys.executable, "-m", "refute", "run", "--resume", run.id, "--no-progress"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with Store(db_path) as s:
        after = s.samples(run.id)
    assert len(after) == 30 == len({x.prompt_id for x in after})
    for x in after:
        roles = [m["role"] for m in x.messages]
        assert roles == ["user", "assistant"] * 3  # stored turn by turn
        assert len(x.metadata["turns"]) == 3
        if x.prompt_id in before:
            assert (x.id, x.created_at, x.messages) == before[x.prompt_id]


def test_unknown_solver_or_argument_fails_before_a_run_exists(tiny_backend, store, tmp_path):
    from refute.engine import PluginSpec
    from refute.errors import ConfigError

    data = write_prompts(tmp_path / "p.jsonl", 2)
    with pytest.raises(ConfigError, match="unknown solver 'nope'"):
        run_task(task_for(data, solver=PluginSpec(name="nope")), tiny_backend, store, progress=False)
    with pytest.raises(ConfigError, match="bad arguments"):
        run_task(task_for(data, solver=PluginSpec(name="scripted_escalation", args={"rounds": 2})),
                 tiny_backend, store, progress=False)
    assert store.list_runs() == []


def test_progress_rate_is_samples_done_over_time_elapsed_not_the_last_burst():
    from rich.console import Console
    from rich.progress import Progress

    from refute.engine._progress import _Rate

    now = [0.0]
    rate = _Rate(done=10)  # 10 samples were stored before this session: they do not count
    progress = Progress(rate, console=Console(file=io.StringIO()), get_time=lambda: now[0])
    task_id = progress.add_task("run", total=100, completed=10)
    for _ in range(3):  # batches complete in bursts: 20 samples at once every 88 s
        now[0] += 88.0
        progress.advance(task_id, 20)
    text = rate.render(progress.tasks[0]).plain
    assert text == f"{60 / 264:.2f} samples/s"  # 0.23, where a windowed speed shows a burst's rate


def test_a_bar_finished_early_ends_at_what_was_done_and_shows_its_description():
    from refute.engine import progress_bar

    with progress_bar("candidates screened", total=95, unit="candidates") as bar:
        bar.advance(8)
        bar.describe("screened: decided")
        bar.finish()  # the other 87 were ruled out: no ETA for them
        task = bar._progress.tasks[0]  # type: ignore[attr-defined]
        assert (task.completed, task.total, task.description) == (8, 8, "screened: decided")
