"""`refute serve` and `refute monitor`: the OpenAI-compatible server in front of a guarded model, its
errors, its log of exchanges in the store (redacted, complete after kill -9), and the CLI.

The official ``openai`` client talks to the server on a free loopback port (uvicorn in a thread, or
`python -m refute serve` in a subprocess). Models are a fake local backend or ``openai:fake`` in
front of the fault server of tests/_fault_server.py; nothing loads a real model.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _fault_server import SECRET
from typer.testing import CliRunner

from refute.cli import app as cli_app
from refute.guard import Guard, guard_layer, parse_stack
from refute.models import Completion, GenerateRequest, Message, ModelInfo, load_model
from refute.serve import ServeConfig, create_app, free_port, pass_through, redaction_marker, serving
from refute.store import SCHEMA_VERSION, ExchangeRecord, Store

runner = CliRunner()
REFUSAL = "I can't help with that request."


def _last_user(messages: Sequence[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


@guard_layer("serve_test_word", "1 when the request contains the word (test)", stage="input")
def _word(word: str = "bomb"):
    return lambda messages, reply: word in _last_user(messages).lower()


@guard_layer("serve_test_boom", "raises when the request says explode (test)", stage="input")
def _boom():
    def check(messages, reply):
        if "explode" in _last_user(messages):
            raise RuntimeError("the layer broke")
        return 0.0
    return check


class EchoBackend:
    """A local model that answers 'echo: <the last user message> (system: <system prompt>)'."""

    info = ModelInfo(spec="fake:echo", backend="fake")
    preferred_batch_size = 1

    def __init__(self) -> None:
        self.seen: list[GenerateRequest] = []

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.seen.append(r)
            system = next((m.content for m in r.messages if m.role == "system"), "none")
            text = f"echo: {_last_user(r.messages)} (system: {system})"
            yield i, Completion(text=text, input_tokens=7, output_tokens=len(text.split()), finish_reason="stop")

    def close(self) -> None:
        pass


STACK = {"name": "test-stack", "layers": [
    {"name": "no_bombs", "type": "callable", "layer": "serve_test_word", "stage": "input", "args": {"word": "bomb"}},
    {"name": "recipes", "type": "callable", "layer": "serve_test_word", "stage": "input", "action": "flag",
     "args": {"word": "recipe"}},
    {"name": "boom", "type": "callable", "layer": "serve_test_boom", "stage": "input"},
    {"name": "safety", "type": "system_prompt", "prompt": "Be safe."},
]}


@contextmanager
def running(guard: Guard, store: Path, **config: Any) -> Iterator[str]:
    with serving(create_app(guard, ServeConfig(store=store, **config))) as url:
        yield url


def _rows(db: Path) -> list[ExchangeRecord]:
    with Store(db) as store:
        return store.recent_exchanges(1000)


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=20)


# --- the API, with the official client --------------------------------------------------------------------


def test_the_openai_client_gets_completions_streams_and_the_stacks_work(tmp_path):
    backend = EchoBackend()
    db = tmp_path / "refute.db"
    with running(Guard(parse_stack(STACK), backend), db) as url:
        client = _client(url)
        assert [m.id for m in client.models.list().data] == ["fake:echo"]
        got = client.chat.completions.create(model="fake:echo", seed=5, max_tokens=9, temperature=0.2, stop=["zz"],
                                             messages=[{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "hello there"}])
        text = "echo: hello there (system: Be safe.\n\nBe brief.)"
        assert got.choices[0].message.content == text and got.choices[0].finish_reason == "stop"
        assert got.id.startswith("chatcmpl-") and got.object == "chat.completion" and got.model == "fake:echo"
        assert (got.usage.prompt_tokens, got.usage.completion_tokens, got.usage.total_tokens) == (7, 8, 15)
        extra = got.model_extra["refute"]
        assert extra["stack"] == "test-stack" and extra["outcome"] == "ok" and extra["blocked_by"] is None
        assert [(x["name"], x["decision"], x["score"]) for x in extra["layers"]] == [
            ("no_bombs", "pass", 0.0), ("recipes", "pass", 0.0), ("boom", "pass", 0.0), ("safety", "applied", None)]
        seen = backend.seen[-1]
        assert (seen.seed, seen.config.max_tokens, seen.config.temperature, seen.config.stop) == (5, 9, 0.2, ("zz",))

        # text parts are joined; the stream is the same reply, cut into chunks, with a final finish_reason
        parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "there friend, " * 6}]
        stream = client.chat.completions.create(model="fake:echo", messages=[{"role": "user", "content": parts}],
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert content == f"echo: hello\n{'there friend, ' * 6} (system: Be safe.)"
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
        finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
        assert finals[0].model_extra["refute"]["outcome"] == "ok"
        assert chunks[-1].usage.prompt_tokens == 7 and not chunks[-1].choices

        # a blocking layer: the refusal, content_filter, in both shapes; the model is never asked
        asked = len(backend.seen)
        blocked = client.chat.completions.create(model="fake:echo", messages=[{"role": "user", "content": "A BOMB"}])
        assert blocked.choices[0].message.content == REFUSAL and blocked.choices[0].finish_reason == "content_filter"
        assert blocked.model_extra["refute"]["blocked_by"] == "no_bombs"
        assert blocked.usage.total_tokens == 0
        streamed = list(client.chat.completions.create(model="fake:echo", stream=True,
                                                       messages=[{"role": "user", "content": "bomb"}]))
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == REFUSAL
        assert streamed[-1].choices[0].finish_reason == "content_filter"
        assert len(backend.seen) == asked

    rows = _rows(db)
    assert [(r.outcome, r.stream, r.status, r.blocked_by) for r in rows] == [
        ("ok", False, 200, None), ("ok", True, 200, None), ("blocked", False, 200, "no_bombs"),
        ("blocked", True, 200, "no_bombs")]
    assert rows[0].request_id == got.id and rows[0].seed == 5 and rows[0].messages[1] == {
        "role": "user", "content": "hello there"}
    assert rows[0].reply == text and not rows[0].redacted and rows[0].stack_name == "test-stack"
    assert rows[2].redacted and rows[2].reply == redaction_marker(REFUSAL)
    assert len({r.server_id for r in rows}) == 1


def test_no_layer_scores_shows_clients_only_the_outcome_and_the_log_keeps_them(tmp_path):
    db = tmp_path / "refute.db"
    with running(Guard(parse_stack(STACK), EchoBackend()), db, layer_scores=False) as url:
        got = _client(url).chat.completions.create(model="fake:echo", messages=[{"role": "user", "content": "bomb"}])
    assert got.choices[0].message.content == REFUSAL
    assert set(got.model_extra["refute"]) == {"stack", "outcome", "exchange_id"}
    assert got.model_extra["refute"]["outcome"] == "blocked"
    row = _rows(db)[-1]
    assert row.blocked_by == "no_bombs" and row.layers[0]["score"] == 1.0


def test_a_layer_that_raises_is_an_error_of_that_exchange_and_the_next_is_answered(tmp_path):
    db = tmp_path / "refute.db"
    with running(Guard(parse_stack(STACK), EchoBackend()), db) as url:
        client = _client(url)
        broken = client.chat.completions.create(model="fake:echo", messages=[{"role": "user", "content": "explode"}])
        assert broken.choices[0].message.content == REFUSAL  # on_error: block (fail closed)
        assert broken.choices[0].finish_reason == "content_filter"
        assert [x["decision"] for x in broken.model_extra["refute"]["layers"]] == ["pass", "pass", "error"]
        after = client.chat.completions.create(model="fake:echo", messages=[{"role": "user", "content": "hi"}])
        assert after.choices[0].message.content.startswith("echo: hi")
    first, second = _rows(db)
    assert first.outcome == "error" and first.blocked_by == "boom"
    assert first.layers[2]["decision"] == "error" and "RuntimeError: the layer broke" in first.layers[2]["error"]
    assert first.error == "boom: RuntimeError: the layer broke"
    assert second.outcome == "ok" and second.error is None


# --- an upstream endpoint ------------------------------------------------------------------------------------


def test_in_front_of_an_upstream_endpoint_failures_are_502s_naming_the_cause(server, tmp_path):
    db = tmp_path / "refute.db"
    upstream = load_model("openai:fake", base_url=server.base_url, max_retries=0, timeout_s=5)
    dead = load_model("openai:fake", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0, timeout_s=5)
    try:
        with running(Guard(pass_through(), upstream), db, served_name="guarded") as url:
            client = _client(url)
            ok = client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "id=4"}])
            assert ok.choices[0].message.content == "answer 4" and ok.usage.prompt_tokens == 14
            assert ok.model == "guarded" and ok.model_extra["refute"]["layers"] == []
            assert client.chat.completions.create(model="openai:fake", messages=[  # the spec is accepted too
                {"role": "user", "content": "id=5"}]).choices[0].message.content == "answer 5"
            with pytest.raises(openai.APIStatusError) as failed:
                client.chat.completions.create(model="guarded",
                                               messages=[{"role": "user", "content": "id=6 fault=500 times=9"}])
            assert failed.value.status_code == 502
            error = failed.value.body
            assert error["type"] == "upstream_error" and "server fault 500" in error["message"]
            with pytest.raises(openai.NotFoundError) as wrong:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "id=7"}])
            assert wrong.value.body["code"] == "model_not_found"
        with running(Guard(pass_through(), dead), db) as url, pytest.raises(openai.APIStatusError) as unreachable:
            _client(url).chat.completions.create(model="openai:fake", messages=[{"role": "user", "content": "x"}],
                                                 stream=True)
        assert unreachable.value.status_code == 502 and "connection failed" in unreachable.value.body["message"]
    finally:
        upstream.close()
        dead.close()
    rows = _rows(db)
    assert [(r.outcome, r.status) for r in rows] == [("ok", 200), ("ok", 200), ("upstream_error", 502),
                                                     ("upstream_error", 502)]
    assert "server fault 500" in rows[2].error and rows[2].reply == "" and rows[3].stream


def test_no_api_key_reaches_the_store_and_flagged_replies_are_redacted_unless_asked(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stack = parse_stack({"name": "flags", "layers": [
        {"name": "fault_words", "type": "callable", "layer": "serve_test_word", "stage": "input", "action": "flag",
         "args": {"word": "fault"}}]})
    serve_key = "serve-key-0123456789abcdef"
    upstream = load_model("openai:fake", base_url=server.base_url, max_retries=0, timeout_s=5)
    dbs = {name: tmp_path / f"{name}.db" for name in ("auto", "unredacted", "harmful", "benign")}
    try:
        for i, (name, db) in enumerate(dbs.items()):
            config = {"log_unredacted": True} if name == "unredacted" else {"harm": name}
            with running(Guard(stack, upstream), db, api_key=serve_key, **config) as url:
                client = _client(url, serve_key)
                n = 10 * i
                plain = client.chat.completions.create(model="openai:fake", messages=[
                    {"role": "user", "content": f"id={n}"}])
                assert plain.choices[0].message.content == f"answer {n}"
                flagged = client.chat.completions.create(model="openai:fake", messages=[
                    {"role": "user", "content": f"id={n + 1} fault=500 times=0"}])
                assert flagged.choices[0].message.content == f"answer {n + 1}"  # a flag only records
                assert flagged.model_extra["refute"]["flagged"] == ["fault_words"]
                with pytest.raises(openai.APIStatusError):  # an upstream that echoes the key it was sent
                    client.chat.completions.create(model="openai:fake", messages=[
                        {"role": "user", "content": f"id={n + 2} fault=401echo"}])
            rows = _rows(db)
            assert [r.outcome for r in rows] == ["ok", "flagged", "upstream_error"]
            redacted = [r.redacted for r in rows[:2]]
            assert redacted == {"auto": [False, True], "unredacted": [False, False], "harmful": [True, True],
                                "benign": [False, False]}[name], name
            for row, was in zip(rows[:2], (plain, flagged), strict=True):
                text = was.choices[0].message.content
                assert row.reply == (redaction_marker(text) if row.redacted else text)
            assert "***" in rows[2].error
    finally:
        upstream.close()
    assert server.auth and all(a == f"Bearer {SECRET}" for a in server.auth)  # the key did go upstream
    for db in dbs.values():
        for path in db.parent.glob(db.name + "*"):  # the database, its WAL and shared memory
            data = path.read_bytes()
            assert SECRET.encode() not in data and serve_key.encode() not in data, path


# --- bad requests -------------------------------------------------------------------------------------------


BAD = [  # (body, status, param or None, code)
    (b"{not json", 400, None, "invalid_json"),
    (b"[1, 2]", 400, None, "invalid_type"),
    (b'{"model": "fake:echo"}', 400, "messages", "missing_required_parameter"),
    (b'{"messages": []}', 400, "messages", "invalid_value"),
    (b'{"messages": [{"role": "tool", "content": "x"}]}', 400, "messages[0].role", "invalid_value"),
    (b'{"messages": [{"role": "user", "content": 5}]}', 400, "messages[0].content", "invalid_value"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, "messages[0].content",
     "invalid_value"),
    (b'{"messages": [{"role": "user", "content": "x"}], "n": 2}', 400, "n", "invalid_value"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}', 400, "max_tokens", "invalid_type"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', 400, "temperature", "invalid_value"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stop": [1]}', 400, "stop", "invalid_type"),
    (b'{"messages": [{"role": "user", "content": "x"}], "model": "gpt-4o"}', 404, "model", "model_not_found"),
    (b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}', 400, "tools",
     "unsupported_parameter"),
]


def _is_openai_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code, response.text
    return error


def test_malformed_requests_get_openai_errors_and_no_traceback(tmp_path):
    db = tmp_path / "refute.db"
    with running(Guard(parse_stack(STACK), EchoBackend()), db, max_body_bytes=20_000) as url:
        chat = f"{url}/v1/chat/completions"
        for body, status, param, code in BAD:
            error = _is_openai_error(httpx.post(chat, content=body), status, code)
            assert error["param"] == param and error["type"] == "invalid_request_error", body
        extra = {"frequency_penalty": 0.5, "user": "u1", "logit_bias": {}}  # ignored, as OpenAI does
        ok = httpx.post(chat, json={"model": "fake:echo", "messages": [{"role": "user", "content": "x"}], **extra})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"].startswith("echo: x")
        _is_openai_error(httpx.post(chat, content=b'{"messages": "' + b"x" * 30_000 + b'"}'), 413, "request_too_large")
        chunked = httpx.post(chat, content=iter([b'{"messages": "', b"x" * 30_000, b'"}']))  # no Content-Length
        _is_openai_error(chunked, 413, "request_too_large")
        _is_openai_error(httpx.get(chat), 405, "method_not_allowed")
        _is_openai_error(httpx.get(f"{url}/v1/nothing"), 404, "not_found")
    assert [r.outcome for r in _rows(db)] == ["ok"]  # bad requests are answered, not logged

    with running(Guard(pass_through(), EchoBackend()), tmp_path / "key.db", api_key="k-123") as url:
        body = {"messages": [{"role": "user", "content": "x"}]}
        _is_openai_error(httpx.post(f"{url}/v1/chat/completions", json=body), 401, "invalid_api_key")
        _is_openai_error(httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer k-124"}), 401,
                         "invalid_api_key")
        with pytest.raises(openai.AuthenticationError):
            _client(url, "wrong").chat.completions.create(model="fake:echo", messages=body["messages"])
        assert _client(url, "k-123").chat.completions.create(model="fake:echo", messages=body["messages"]).choices
        assert httpx.get(f"{url}/health").status_code == 200  # a liveness probe needs no key


def test_a_v3_store_migrates_to_v4_with_an_empty_log(tmp_path):
    db = tmp_path / "refute.db"
    Store(db).close()
    con = sqlite3.connect(db)
    con.executescript("DROP TABLE exchanges; UPDATE meta SET value='3' WHERE key='schema_version';")
    con.close()
    with Store(db) as store:
        assert store._version() == SCHEMA_VERSION == 4
        assert store.recent_exchanges() == []
        row_id = store.add_exchange(ExchangeRecord(
            server_id="s", model_spec="m", stack_name="st", stack_sha256="", request_id="chatcmpl-1", stream=False,
            status=200, outcome="ok", seed=1, messages=[{"role": "user", "content": "hi"}], reply="hello",
            redacted=False, total_ms=1.0, model_ms=0.5))
        assert [r.id for r in store.recent_exchanges()] == [row_id]


# --- kill -9 in the middle of traffic ------------------------------------------------------------------------


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"refute serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("refute serve did not start")


def test_kill_9_during_traffic_loses_no_answered_exchange_and_leaves_no_partial_row(server, tmp_path):
    db, port = tmp_path / "refute.db", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "refute", "serve", "openai:fake", "--base-url", server.base_url,
                             "--port", str(port), "--store", str(db), "--retries", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    received: dict[str, int] = {}
    lock, counter = threading.Lock(), iter(range(1, 10_000))

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                with lock:
                    n = next(counter)
                try:
                    body = {"model": "openai:fake", "stream": n % 3 == 0,
                            "messages": [{"role": "user", "content": f"id={n}"}]}
                    r = client.post(f"{url}/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    rid = r.headers["x-request-id"]
                    with lock:
                        received[rid] = n
    try:
        _wait_healthy(url, proc)
        workers = [threading.Thread(target=traffic, daemon=True) for _ in range(6)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(received) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        for w in workers:
            w.join(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert len(received) >= 60
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM exchanges").fetchall()
    finally:
        con.close()
    stored = {r["request_id"]: r for r in rows}
    assert set(received) <= set(stored), "an exchange the client received is missing"
    for row in rows:
        values = dict(row)
        assert all(v is not None for k, v in values.items() if k not in ("blocked_by", "error")), values
        n = int(json.loads(row["messages_json"])[0]["content"].removeprefix("id="))
        assert json.loads(row["layers_json"]) == [] and row["outcome"] == "ok" and row["status"] == 200
        assert row["reply"] == f"answer {n}" and row["input_tokens"] == 10 + n
    for rid, n in received.items():
        assert stored[rid]["reply"] == f"answer {n}" and bool(stored[rid]["stream"]) == (n % 3 == 0)


# --- the CLI ------------------------------------------------------------------------------------------------


def test_serve_beyond_loopback_without_a_key_exits_2_before_loading_anything(monkeypatch, tmp_path):
    monkeypatch.delenv("REFUTE_SERVE_API_KEY", raising=False)
    result = runner.invoke(cli_app, ["serve", "default", "--host", "0.0.0.0", "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 2, result.output
    assert "--api-key" in result.output and "0.0.0.0" in result.output
    assert not (tmp_path / "r.db").exists()
    blank = runner.invoke(cli_app, ["serve", "default", "--api-key", " ", "--store", str(tmp_path / "r.db")])
    assert blank.exit_code == 2 and "empty" in blank.output


def _logged(layer_decisions: list[str], prompt: str) -> ExchangeRecord:
    layers = [{"name": "kw", "type": "callable", "phase": "input", "score": 1.0 if d != "pass" else 0.0,
               "fired": d in ("flag", "block"), "decision": d, "ms": 2.0, "error": None} for d in layer_decisions]
    layers.append({"name": "safety", "type": "system_prompt", "phase": "system", "score": None, "fired": False,
                   "decision": "applied", "ms": 0.5, "error": None})
    blocked = "block" in layer_decisions
    outcome = "error" if "error" in layer_decisions else "blocked" if blocked else (
        "flagged" if "flag" in layer_decisions else "ok")
    return ExchangeRecord(server_id="s1", model_spec="fake:echo", stack_name="st", stack_sha256="", request_id="r",
                          stream=False, status=200, outcome=outcome, seed=0,
                          messages=[{"role": "user", "content": prompt}], reply="[redacted: 3 chars, sha256 0]",
                          redacted=True, layers=layers, blocked_by="kw" if blocked else None, total_ms=3.0,
                          model_ms=1.0)


def test_monitor_shows_recent_exchanges_and_each_layers_counts(tmp_path):
    db = tmp_path / "refute.db"
    with Store(db) as store:
        for d in ("block", "pass", "flag", "pass", "error", "block"):  # --last 5 leaves the first out
            store.add_exchange(_logged([d], f"prompt {d} \x1b[31m[bold]x[/bold]"))
    result = runner.invoke(cli_app, ["monitor", "--store", str(db), "--last", "5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["outcome"] for r in data["exchanges"]] == ["ok", "flagged", "ok", "error", "blocked"]
    kw, safety = data["layers"]
    assert (kw["name"], kw["n"], kw["passed"], kw["flagged"], kw["blocked"], kw["errors"]) == ("kw", 5, 2, 1, 1, 1)
    assert kw["rates"]["blocked"]["value"] == pytest.approx(0.2) and kw["rates"]["blocked"]["low"] < 0.2
    assert (safety["applied"], safety["mean_ms"]) == (5, 0.5)

    table = runner.invoke(cli_app, ["monitor", "--store", str(db), "--last", "5"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "\x1b[31m" not in table.stdout  # text from clients is inert in the terminal
    assert "[redacted: 3 chars" in table.stdout
    assert "layers over exchanges 2-6" in table.stdout
    kw_row = next(line for line in table.stdout.splitlines() if "│ kw " in line and "input" in line)
    assert "1/5 20% [4-62]" in kw_row and "2.00" in kw_row
    empty = runner.invoke(cli_app, ["monitor", "--store", str(tmp_path / "none.db")])
    assert empty.exit_code == 2 and "no store" in empty.output


def test_monitor_follow_prints_new_exchanges_until_ctrl_c(tmp_path):
    db = tmp_path / "refute.db"
    with Store(db) as store:
        store.add_exchange(_logged(["pass"], "before"))
    proc = subprocess.Popen([sys.executable, "-m", "refute", "monitor", "--store", str(db), "--last", "1", "--follow",
                             "--interval", "0.1", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(90, proc.kill)  # a monitor that prints nothing fails the test, never hangs it
    watchdog.start()
    try:
        first = json.loads("".join(iter(proc.stdout.readline, "}\n")) + "}")  # the indented first object
        assert [r["messages"][0]["content"] for r in first["exchanges"]] == ["before"]
        with Store(db) as store:
            store.add_exchange(_logged(["block"], "after 1"))
            store.add_exchange(_logged(["flag"], "after 2"))
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [(r["messages"][0]["content"], r["outcome"]) for r in lines] == [("after 1", "blocked"),
                                                                               ("after 2", "flagged")]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
