"""Several servers of one model behind one openai: backend: spread, per-server limits, draining."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _fault_server import serve

from refute.errors import ConfigError
from refute.models import GenerateConfig, GenerateRequest, Message
from refute.models._openai import Endpoint, OpenAIBackend, _Pool, read_endpoints


def _req(content: str) -> GenerateRequest:
    return GenerateRequest((Message(role="user", content=content),), GenerateConfig(max_tokens=8), 0)


class _Down(ThreadingHTTPServer):
    """A server that answers every request with 503 and counts them."""

    daemon_threads = True

    def __init__(self) -> None:
        self.hits = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(handler) -> None:  # the server is `self` here
                with self.lock:
                    self.hits += 1
                handler.rfile.read(int(handler.headers.get("content-length", 0)))
                body = json.dumps({"error": {"message": "overloaded"}}).encode()
                handler.send_response(503)
                handler.send_header("content-type", "application/json")
                handler.send_header("content-length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


async def _no_sleep(seconds: float) -> None:
    return None


def test_requests_spread_over_servers_within_each_ones_limit(tmp_path: Path) -> None:
    with serve() as a, serve() as b:
        file = tmp_path / "endpoints.yaml"
        file.write_text(f"endpoints:\n  - {{url: {a.base_url}, concurrency: 1}}\n  - url: {b.base_url}\n")
        with OpenAIBackend("m", base_url=str(file), concurrency=3, sleep=_no_sleep) as backend:
            assert backend.preferred_batch_size == 4 * (1 + 3)
            got = dict(backend.generate([_req(f"id={i} slow=0.1") for i in range(16)]))
        assert all(c.ok for c in got.values()) and sorted(got) == list(range(16))
        assert a.max_in_flight == 1 and b.max_in_flight == 3
        assert a.total + b.total == 16 and a.total >= 2 and b.total > a.total
        # one key for the pair, whatever order they are listed in
        assert backend.info.details["base_url"] == ",".join(sorted([a.base_url, b.base_url]))


def test_a_failing_server_is_drained_and_its_requests_answered_elsewhere() -> None:
    down = _Down()
    try:
        with serve() as live, OpenAIBackend("m", base_url=[down.base_url, live.base_url], concurrency=2,
                                            drain_after=2, drain_s=60, max_retries=3, sleep=_no_sleep) as backend:
            got = dict(backend.generate([_req(f"id={i} slow=0.05") for i in range(12)]))
        assert all(c.ok for c in got.values()), [c.error for c in got.values() if not c.ok]
        assert live.total == 12
        assert 2 <= down.hits <= 2 + 2  # drained after 2 failures in a row (2 more may be in flight)
    finally:
        down.shutdown()


def test_with_every_server_failing_the_error_names_one_and_nothing_hangs() -> None:
    first, second = _Down(), _Down()
    try:
        with OpenAIBackend("m", base_url=[first.base_url, second.base_url], concurrency=1, drain_after=5,
                           max_retries=2, sleep=_no_sleep) as backend:
            got = dict(backend.generate([_req("id=0")]))
        assert "HTTP 503" in got[0].error and "3 attempts" in got[0].error
        assert first.hits + second.hits == 3 and first.hits >= 1 and second.hits >= 1  # retries switch server
    finally:
        first.shutdown()
        second.shutdown()


def test_a_drained_endpoint_is_tried_again_after_its_drain_and_drains_longer_if_it_still_fails() -> None:
    now = [0.0]
    pool = _Pool([Endpoint("http://a/v1", 1), Endpoint("http://b/v1", 1)], drain_after=2, drain_s=10,
                 drain_max_s=30, clock=lambda: now[0])

    async def scenario() -> list[str]:
        seen = []
        for _ in range(2):  # a fails twice in a row: drained for 10 s
            a = await pool.acquire()
            assert a.endpoint.url == "http://a/v1"
            await pool.release(a, False)
        b = await pool.acquire()
        seen.append(b.endpoint.url)
        await pool.release(b, True)
        seen.append((await pool.acquire()).endpoint.url)  # still b: a is drained
        now[0] = 10.5
        seen.append((await pool.acquire()).endpoint.url)  # b is busy, a's drain is over
        return seen

    assert asyncio.run(scenario()) == ["http://b/v1", "http://b/v1", "http://a/v1"]
    assert pool.health[0].drain_s == 20  # the next drain is twice as long


@pytest.mark.parametrize(("text", "message"), [
    ("endpoints:\n  - {url: http://a:1/v1, concurency: 2}\n", "endpoint 1: unknown field(s) ['concurency']"),
    ("- http://a:1/v1\n- {url: http://b:1/v1, concurrency: 0}\n", "endpoint 2: concurrency must be an integer >= 1"),
    ("- http://a:1/v1\n- http://a:1/v1/\n", "an endpoint is listed twice"),
    ("- ftp://a/v1\n", "must be http(s)://host[:port]/path"),
    ("endpoints: {}\n", "expected a base URL or a list of endpoints"),
])
def test_a_bad_endpoints_file_is_named_with_the_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "servers.yml"
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_endpoints(str(file), 4)
    assert message in str(err.value) and ("servers.yml" in str(err.value) or "ftp" in str(err.value))


def test_refute_run_takes_the_base_url_option_repeated(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from refute.cli import app
    from refute.store import Store

    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"id={i} slow=0.05"}) + "\n" for i in range(10)))
    with serve() as a, serve() as b:
        result = CliRunner().invoke(app, ["run", "-m", "openai:m", "--base-url", a.base_url, "--base-url",
                                          b.base_url, "--concurrency", "2", "-d", str(data),
                                          "--store", str(tmp_path / "r.db"), "--no-progress"])
        assert result.exit_code == 0, result.output
        assert a.total > 0 and b.total > 0 and a.total + b.total == 10
    with Store(tmp_path / "r.db") as store:
        run = store.list_runs()[0]
        assert run.model["details"]["base_url"] == ",".join(sorted([a.base_url, b.base_url]))
