"""A fault-injecting OpenAI-compatible server on 127.0.0.1, for backend and engine tests.

Each request's user message scripts the server, as ``key=value`` words:
``id=3 fault=503 times=2`` fails the first two attempts of that request with a 503, then answers
``"answer 3"`` with ``prompt_tokens = 10 + id`` and ``completion_tokens = 3 + id``.
``slow=0.2`` delays the answer, ``hold=1`` holds it until the test opens ``server.gate``,
``retry_after=...`` sets the header on a 429, and ``chars=N`` makes the answer N characters long.
Faults: 429, 500, 503, 400, 401echo, badjson, nochoices, nocontent (a choice whose message has
``content: null``), drop (close without answering), stall (hang), trickle (send one byte every
50 ms, so no single read times out but the whole answer does).

A server made with ``reply="..."`` answers every request with that text instead ("a server that
refuses everything").
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "sk-test-SECRET-0123456789"
MAX_REQUESTS = 400  # the server answers no more than this many requests per test
STALL_S = 5.0  # how long a stalled response hangs (released at teardown)


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, reply: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.reply = reply
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.gate = threading.Event()  # a request with ``hold=1`` waits for it before answering
        self.attempts: Counter[str] = Counter()
        self.seen_at: defaultdict[str, list[float]] = defaultdict(list)
        self.bodies: dict[str, dict[str, Any]] = {}
        self.auth: list[str | None] = []
        self.total = 0
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        pass

    def do_POST(self) -> None:  # the stdlib's name
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(raw)
        content = body["messages"][-1]["content"]
        with srv.lock:
            srv.total += 1
            if srv.total > MAX_REQUESTS:
                self._json(418, {"error": {"message": "test server request limit reached"}})
                return
            srv.attempts[content] += 1
            attempt = srv.attempts[content]
            srv.seen_at[content].append(time.monotonic())
            srv.bodies[content] = body
            srv.auth.append(self.headers.get("Authorization"))
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            self._respond(dict(word.split("=", 1) for word in content.split()), attempt)
        except OSError:
            pass  # the client gave up on a stalled response
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _respond(self, spec: dict[str, str], attempt: int) -> None:
        fault = spec.get("fault")
        if fault is not None and attempt <= int(spec.get("times", "1")):
            if fault == "429":
                value = spec.get("retry_after")
                headers = {}
                if value is not None and value.startswith("date+"):
                    when = time.time() + float(value.removeprefix("date+"))
                    headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
                elif value is not None:
                    headers["Retry-After"] = value
                self._json(429, {"error": {"message": "rate limit reached"}}, headers)
            elif fault in ("500", "503"):
                self._json(int(fault), {"error": {"message": f"server fault {fault}"}})
            elif fault == "400":
                self._json(400, {"error": {"message": "max_tokens is too large for this model"}})
            elif fault == "401echo":  # some APIs echo the key they were given
                said = self.headers.get("Authorization", "")
                self._json(401, {"error": {"message": f"Incorrect API key provided: {said}"}})
            elif fault == "badjson":
                self._raw(200, b'{"choices": [{"message": ')
            elif fault == "nocontent":
                self._json(200, {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": None},
                     "finish_reason": "content_filter"}]})
            elif fault == "nochoices":
                self._json(200, {"id": "chatcmpl-1", "object": "chat.completion"})
            elif fault == "drop":
                self.close_connection = True  # close the socket without a response
            elif fault == "trickle":  # every read is quick, the whole answer is not
                data = b'{"choices": [{"message": {"content": "' + b"x" * 200 + b'"}}]}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    if self.server.release.wait(0.05):
                        break
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                self.close_connection = True
            elif fault == "stall":
                self.server.release.wait(STALL_S)
                self.close_connection = True
            else:
                raise ValueError(f"unknown fault {fault!r}")
            return
        if "hold" in spec:
            self.server.gate.wait(STALL_S)
        if "slow" in spec:
            self.server.release.wait(float(spec["slow"]))
        n = int(spec["id"])
        text = f"answer {n}" if "chars" not in spec else "x" * int(spec["chars"])
        self._json(200, {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.server.reply or text},
                "finish_reason": spec.get("finish", "stop"),
            }],
            "usage": {"prompt_tokens": 10 + n, "completion_tokens": 3 + n,
                      "total_tokens": 13 + 2 * n},
        })

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), headers)

    def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def serve(reply: str | None = None):
    """Start a FaultServer on a thread; a context manager that stops it."""
    return _Serving(reply)


class _Serving:
    def __init__(self, reply: str | None) -> None:
        self.srv = FaultServer(reply)
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self.srv

    def __exit__(self, *exc: object) -> None:
        self.srv.release.set()
        self.srv.gate.set()
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(timeout=5)
