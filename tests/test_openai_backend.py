"""The ``openai:`` backend against the fault-injecting server of ``_fault_server.py``."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any

import pytest
from _fault_server import SECRET, FaultServer

from refute.errors import ConfigError, ModelError
from refute.models._base import (
    Completion,
    GenerateConfig,
    GenerateRequest,
    Message,
    ModelBackend,
)
from refute.models._openai import OpenAIBackend


class RecordingSleep:
    """Stands in for ``asyncio.sleep``: records each backoff and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def backends():
    made: list[OpenAIBackend] = []
    yield made
    for backend in made:
        backend.close()


@pytest.fixture
def make(server: FaultServer, backends: list[OpenAIBackend]):
    def make(**kwargs: Any) -> OpenAIBackend:
        settings: dict[str, Any] = {
            "base_url": server.base_url, "max_retries": 3, "timeout_s": 2.0,
            "sleep": RecordingSleep(), "rng": random.Random(0),
        }
        settings.update(kwargs)
        backend = OpenAIBackend("tiny-test-model", **settings)
        backends.append(backend)
        return backend

    return make


def req(content: str, *, seed: int = 0, max_tokens: int = 16) -> GenerateRequest:
    return GenerateRequest(
        messages=(
            Message(role="system", content="be brief"),
            Message(role="user", content=content),
        ),
        config=GenerateConfig(max_tokens=max_tokens, temperature=0.7, top_p=0.9),
        seed=seed,
    )


def run(backend: OpenAIBackend, contents: list[str]) -> dict[int, Completion]:
    """Generate, checking that every index comes back exactly once."""
    pairs = list(backend.generate([req(c) for c in contents]))
    indices = [i for i, _ in pairs]
    assert sorted(indices) == list(range(len(contents))), f"indices yielded: {indices}"
    return dict(pairs)


def assert_answered(completion: Completion, n: int) -> None:
    assert completion.error is None, completion.error
    assert completion.text == f"answer {n}"
    assert (completion.input_tokens, completion.output_tokens) == (10 + n, 3 + n)
    assert completion.finish_reason == "stop"
    assert completion.latency_s > 0


def test_plain_successes_carry_text_tokens_and_request_fields(make, server) -> None:
    backend = make(extra_body={"top_k": 20})
    assert isinstance(backend, ModelBackend)
    results = run(backend, [f"id={n}" for n in range(5)])
    for n in range(5):
        assert_answered(results[n], n)
    body = server.bodies["id=3"]
    assert body["model"] == "tiny-test-model"
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "id=3"}]
    sampling = (body["max_tokens"], body["temperature"], body["top_p"], body["seed"])
    assert sampling == (16, 0.7, 0.9, 0)
    assert body["top_k"] == 20
    assert backend.info.spec == "openai:tiny-test-model"
    assert backend.info.backend == "openai" and backend.info.revision is None
    assert backend.info.details == {"base_url": server.base_url, "extra_body": '{"top_k": 20}'}
    assert server.auth == [None] * 5  # no key in the environment: no Authorization header


@pytest.mark.parametrize("fault", ["429", "500", "503", "stall", "badjson", "nochoices", "drop"])
def test_transient_fault_is_retried_until_success(make, server, fault: str) -> None:
    backend = make(timeout_s=0.3)
    content = f"id=7 fault={fault} times=2"
    results = run(backend, [content])
    assert_answered(results[0], 7)
    assert server.attempts[content] == 3


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("429", "HTTP 429"),
        ("503", "HTTP 503"),
        ("500", "server fault 500"),
        ("stall", "timeout"),
        ("trickle", "timeout"),
        ("drop", "RemoteProtocolError"),
        ("badjson", "not JSON"),
        ("nochoices", "no 'choices'"),
    ],
)
def test_fault_on_every_attempt_ends_in_an_error_naming_it(make, server, fault, expected) -> None:
    sleep = RecordingSleep()
    backend = make(timeout_s=0.3, max_retries=2, sleep=sleep)
    content = f"id=1 fault={fault} times=99"
    completion = run(backend, [content])[0]
    assert completion.error is not None and completion.text == ""
    assert expected in completion.error
    assert "3 attempts" in completion.error and server.base_url in completion.error
    assert server.attempts[content] == 3
    assert len(sleep.delays) == 2


def test_400_is_recorded_at_once_with_the_servers_message(make, server) -> None:
    sleep = RecordingSleep()
    backend = make(sleep=sleep)
    completion = run(backend, ["id=1 fault=400 times=99"])[0]
    assert completion.error is not None
    assert "HTTP 400" in completion.error
    assert "max_tokens is too large for this model" in completion.error
    assert "1 attempt, not retryable" in completion.error
    assert server.attempts["id=1 fault=400 times=99"] == 1
    assert sleep.delays == []


def test_mixed_batch_yields_each_index_once_and_never_over_retries(make, server) -> None:
    contents = [
        "id=0", "id=1",
        "id=2 fault=429 times=2 retry_after=0", "id=3 fault=500 times=1",
        "id=4 fault=503 times=3", "id=5 fault=stall times=1", "id=6 fault=badjson times=2",
        "id=7 fault=nochoices times=1", "id=8 fault=drop times=2",
        "id=9 fault=400 times=99", "id=10 fault=503 times=99", "id=11 fault=drop times=99",
        "id=12 fault=stall times=99", "id=13",
    ]
    backend = make(timeout_s=0.3, max_retries=3, concurrency=4)
    results = run(backend, contents)
    failing = {9, 10, 11, 12}
    for n, content in enumerate(contents):
        if n in failing:
            assert results[n].error is not None and results[n].text == ""
        else:
            assert_answered(results[n], n)
        assert server.attempts[content] <= 3 + 1
    assert server.attempts["id=4 fault=503 times=3"] == 4  # succeeded on the last allowed try
    assert server.attempts["id=10 fault=503 times=99"] == 4
    assert server.attempts["id=9 fault=400 times=99"] == 1


def test_retry_after_seconds_is_waited_for_in_real_time(make, server) -> None:
    backend = make(sleep=None, backoff_base_s=0.01, backoff_max_s=5.0)
    content = "id=2 fault=429 times=1 retry_after=1"
    assert_answered(run(backend, [content])[0], 2)
    first, second = server.seen_at[content]
    assert second - first >= 0.95


def test_retry_after_http_date_and_cap(make, server) -> None:
    sleep = RecordingSleep()
    backend = make(sleep=sleep, backoff_max_s=30.0)
    assert_answered(run(backend, ["id=1 fault=429 times=1 retry_after=date+8"])[0], 1)
    (waited,) = sleep.delays
    assert 6.0 <= waited <= 8.0  # an HTTP-date has one-second resolution

    sleep = RecordingSleep()
    backend = make(sleep=sleep, backoff_max_s=2.5)
    assert_answered(run(backend, ["id=2 fault=429 times=2 retry_after=1000"])[0], 2)
    assert sleep.delays == [2.5, 2.5]


def test_backoff_without_retry_after_is_exponential_with_full_jitter(make, server) -> None:
    sleep = RecordingSleep()
    backend = make(sleep=sleep, max_retries=6, backoff_base_s=0.5, backoff_max_s=3.0)
    assert_answered(run(backend, ["id=1 fault=503 times=6"])[0], 1)
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert len(sleep.delays) == 6
    assert all(0.0 <= d <= c for d, c in zip(sleep.delays, ceilings, strict=True)), sleep.delays
    assert len(set(sleep.delays)) == 6  # jittered, not a fixed schedule


def test_api_key_is_sent_but_never_exposed(make, server, monkeypatch, caplog) -> None:
    backend = make(max_retries=2)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # read when generating, not when built
    caplog.set_level(logging.DEBUG, logger="refute")
    results = run(backend, ["id=0", "id=1 fault=401echo times=99", "id=2 fault=503 times=99"])
    assert_answered(results[0], 0)
    assert server.auth and all(a == f"Bearer {SECRET}" for a in server.auth)
    assert "HTTP 401" in results[1].error and "$OPENAI_API_KEY, which is set" in results[1].error
    assert "Incorrect API key provided: Bearer ***" in results[1].error
    exposed = [repr(backend), str(backend), repr(backend.info), repr(vars(backend)), caplog.text,
               *(c.error or "" for c in results.values())]
    assert "attempt 1 failed" in caplog.text  # retries were logged: the check below means something
    assert not [text for text in exposed if SECRET in text]


def test_concurrency_never_exceeds_the_bound(make, server) -> None:
    backend = make(concurrency=3)
    assert backend.preferred_batch_size >= 3
    results = run(backend, [f"id={n} slow=0.1" for n in range(12)])
    assert all(c.ok for c in results.values())
    assert server.max_in_flight == 3


def test_completions_are_yielded_as_each_finishes(make, server) -> None:
    backend = make(concurrency=2)
    stream = backend.generate([req("id=0 hold=1"), req("id=1")])
    index, completion = next(stream)  # while request 0 is still held by the server
    assert (index, completion.text) == (1, "answer 1")
    # request 0 is in flight beside it (its attempt may reach the server a moment after request 1's
    # answer came back, so wait for it) and still held: 1 was yielded before 0 could finish
    deadline = time.monotonic() + 5
    while server.attempts["id=0 hold=1"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.attempts["id=0 hold=1"] == 1 and not server.gate.is_set()
    server.gate.set()
    assert [i for i, _ in stream] == [0]


def test_stopping_early_and_close(make, server) -> None:
    backend = make(concurrency=1)
    stream = backend.generate([req("id=0"), req("id=1 slow=3"), req("id=2")])
    assert next(stream)[0] == 0
    stream.close()  # the caller stops early: the rest is cancelled, nothing hangs
    start = time.monotonic()
    backend.close()
    backend.close()
    assert time.monotonic() - start < 2.0
    assert not [t for t in threading.enumerate() if t.name == "refute-openai" and t.is_alive()]
    with pytest.raises(ModelError, match="closed"):
        list(backend.generate([req("id=3")]))
    assert list(backend.generate([])) == []


def test_base_url_from_environment_and_404_hint(server, backends, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url.removesuffix("/v1") + "/wrong/")
    backend = OpenAIBackend("m", sleep=RecordingSleep())
    backends.append(backend)
    assert backend.info.details["base_url"].endswith("/wrong")
    (_, completion), = backend.generate([req("id=0")])
    assert "HTTP 404" in completion.error and "base URL" in completion.error


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"max_retries": -1},
        {"timeout_s": 0},
        {"base_url": "ftp://example.invalid/v1"},
        {"base_url": "http://user:sk-xyz@127.0.0.1:1/v1"},
        {"extra_body": {"seed": 1}},
        {"extra_body": {"x": object()}},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        OpenAIBackend("m", **kwargs)
    assert "sk-xyz" not in str(info.value)


def test_engine_run_over_faults_stores_each_sample_once_and_resume_heals_errors(make, server, tmp_path) -> None:
    """Through the engine: every sample ends completed or recorded with its error, none twice."""
    from refute.engine import TaskConfig, resume_run, run_task
    from refute.store import Store

    prompts = ["id=1", "id=2 fault=500 times=1", "id=3 fault=400 times=1", "id=4 fault=drop times=9",
               "id=5 fault=badjson times=2", "id=6 fault=429 retry_after=0 times=1", "id=7"]
    data = tmp_path / "faults.jsonl"
    data.write_text("".join(json.dumps({"id": f"f{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    backend = make(max_retries=3)
    with Store(tmp_path / "s.db") as store:
        run = run_task(TaskConfig(dataset=str(data)), backend, store, progress=False)
        rows = {s.prompt_id: s for s in store.samples(run.id)}
        assert len(rows) == len(prompts) == len(store.samples(run.id))
        failed = {pid for pid, s in rows.items() if s.error}
        assert failed == {"f2", "f3"}  # the 400 is not retried; the dropped connection never heals
        assert "HTTP 400" in rows["f2"].error and rows["f2"].completion is None
        assert all(rows[f"f{i}"].completion == f"answer {i + 1}" for i in (0, 1, 4, 5, 6))
        assert max(server.attempts.values()) <= 4
        assert run.status == "completed_with_errors" and store.sample_counts(run.id) == (5, 2)
        resume_run(run.id, store, model=backend, progress=False)
        healed = {s.prompt_id: s for s in store.samples(run.id)}
        assert len(healed) == len(prompts)
        assert healed["f2"].completion == "answer 3" and healed["f3"].error is not None
        assert server.attempts["id=1"] == 1  # completed samples were not asked again


def test_complete_on_the_callers_loop_retries_and_fails_like_generate(make, server) -> None:
    """`complete` (what `refute serve` awaits on its own event loop) keeps generate's retries and
    errors, never raises, and makes no loop thread of its own."""
    import asyncio

    backend = make(timeout_s=0.3)

    async def main() -> tuple[Completion, Completion]:
        ok = await backend.complete(req("id=7 fault=503 times=2"))
        bad = await backend.complete(req("id=8 fault=500 times=9"))
        await backend.aclose()
        return ok, bad

    ok, bad = asyncio.run(main())
    assert_answered(ok, 7)
    assert server.attempts["id=7 fault=503 times=2"] == 3
    assert bad.text == "" and "server fault 500" in str(bad.error) and server.attempts["id=8 fault=500 times=9"] == 4
    assert not [t for t in threading.enumerate() if t.name == "refute-openai"]
