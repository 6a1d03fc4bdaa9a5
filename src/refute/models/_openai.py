"""``openai:<model>``: any server that speaks the OpenAI chat-completions API.

vLLM, SGLang, Ollama, the llama.cpp server and hosted APIs all answer ``POST
{base_url}/chat/completions``. This backend runs an asyncio loop on a background thread, keeps at
most ``concurrency`` requests in progress, and yields each ``(index, completion)`` as soon as that
request finishes, so the engine can store it at once.

Transient failures are retried with exponential backoff and full jitter (Brooker, "Exponential
Backoff And Jitter", AWS Architecture Blog, 2015): 408, 409, 429, 500, 502, 503, 504, timeouts,
refused or dropped connections, and a 200 whose body is not a chat completion. A ``Retry-After``
(or ``retry-after-ms``) header replaces the backoff, capped at ``backoff_max_s``. Any other status
is recorded on the completion at once, with the server's message. A request never raises: when
its attempts run out, the completion carries ``error``.

Several servers of one model (vLLM or SGLang replicas) form one backend: ``base_url`` takes a list
of URLs, or of ``{url, concurrency}`` entries, or a YAML file of them (see `read_endpoints`). Each
endpoint has its own concurrency limit; a request goes to the endpoint with the fewest requests in
progress. An endpoint whose attempts fail ``drain_after`` times in a row (transient failures only)
is drained when there are others: it gets no requests for ``drain_s`` seconds (doubling while it
keeps failing, up to ``backoff_max_s``), then it is tried again. A retry prefers another endpoint
than the one that failed.

The API key is read from the environment variable ``api_key_env`` each time ``generate`` is
called, sent as a Bearer header, and never kept on the backend, in its ``info``, or in any error
or log text. If the variable is unset, no ``Authorization`` header is sent (local servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import queue
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from refute.errors import BackendRequestError, ConfigError, ModelError
from refute.models._base import Completion, GenerateRequest, Message, ModelInfo, cut_at_stop

__all__ = ["Endpoint", "OpenAIBackend", "read_endpoints"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Statuses worth another attempt: request timeout, conflict, rate limit, server-side failures.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
#: Body keys this backend sets itself; ``extra_body`` may not override them.
RESERVED_BODY_KEYS = frozenset(
    {"model", "messages", "max_tokens", "temperature", "top_p", "seed", "n", "stream", "tools"}
)
_MAX_MESSAGE_CHARS = 500
_CLOSE_WAIT_S = 10.0
_DONE = object()  # put on a generate() queue once its coroutine has ended

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    """One server: its OpenAI-compatible base URL and how many requests it may have in progress."""

    url: str
    concurrency: int


def read_endpoints(value: str | Path | Sequence[str | dict[str, Any] | Endpoint], concurrency: int,
                   api_key_env: str = "OPENAI_API_KEY") -> list[Endpoint]:
    """Endpoints from a URL, a list of URLs or ``{url, concurrency}`` mappings, or a YAML file.

    The file holds such a list, or a mapping with an ``endpoints:`` list::

        endpoints:
          - http://10.0.0.5:8000/v1
          - {url: http://10.0.0.6:8000/v1, concurrency: 16}

    ``concurrency`` is the limit of an entry that sets none. Errors name the file, the entry and
    the field.
    """
    where = "base_url"
    items: Any = value
    if isinstance(value, (str, Path)) and str(value).endswith((".yaml", ".yml")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(f"endpoints file {path} does not exist; give base URLs or a YAML list of them")
        import yaml

        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        items = loaded.get("endpoints") if isinstance(loaded, dict) else loaded
        where = str(path)
    if isinstance(items, (str, Endpoint)):
        items = [items]
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{where}: expected a base URL or a list of endpoints "
                          "(URLs or {url: ..., concurrency: N} entries)")
    out: list[Endpoint] = []
    for i, item in enumerate(items, 1):
        if isinstance(item, Endpoint):
            out.append(item)
            continue
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"url", "concurrency"})
            if unknown or "url" not in item:
                raise ConfigError(f"{where}: endpoint {i}: " + (
                    f"unknown field(s) {unknown}; use url and concurrency" if unknown else "needs a url"))
            url, limit = item["url"], item.get("concurrency", concurrency)
        else:
            url, limit = item, concurrency
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{where}: endpoint {i}: url must be text such as http://host:8000/v1, got {url!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"{where}: endpoint {i}: concurrency must be an integer >= 1, got {limit!r}")
        url = url.strip().rstrip("/")
        _check_base_url(url, api_key_env)
        out.append(Endpoint(url, limit))
    seen = [e.url for e in out]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"{where}: an endpoint is listed twice: {sorted({u for u in seen if seen.count(u) > 1})}")
    return out


@dataclass
class _Health:
    """One endpoint's state on one event loop."""

    endpoint: Endpoint
    in_flight: int = 0
    failures: int = 0  # transient failures in a row
    drained_until: float = 0.0
    drain_s: float = 0.0


class _Pool:
    """Request slots and health of every endpoint, on one event loop."""

    def __init__(self, endpoints: Sequence[Endpoint], drain_after: int, drain_s: float, drain_max_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.health = [_Health(e, drain_s=drain_s) for e in endpoints]
        self.drain_after, self.drain_base_s, self.drain_max_s = drain_after, drain_s, drain_max_s
        self.clock = clock
        self.changed = asyncio.Condition()

    async def acquire(self, avoid: _Health | None = None) -> _Health:
        """The open endpoint with the fewest requests in progress (not ``avoid`` if another is
        open), once one has a free slot."""
        async with self.changed:
            while True:
                now = self.clock()
                open_ = [h for h in self.health
                         if h.drained_until <= now and h.in_flight < h.endpoint.concurrency]
                if open_:
                    others = [h for h in open_ if h is not avoid] or open_
                    chosen = min(others, key=lambda h: h.in_flight / h.endpoint.concurrency)
                    chosen.in_flight += 1
                    return chosen
                drained = [h.drained_until - now for h in self.health if h.drained_until > now]
                with contextlib.suppress(TimeoutError):  # until a slot frees or a drain ends
                    await asyncio.wait_for(self.changed.wait(), min(drained) if drained else None)

    async def release(self, health: _Health, outcome: bool | None) -> None:
        """Free the slot; ``outcome`` True (answered), False (transient failure), None (neither)."""
        async with self.changed:
            health.in_flight -= 1
            if outcome:
                health.failures, health.drain_s = 0, self.drain_base_s
            elif outcome is False:
                health.failures += 1
                if health.failures >= self.drain_after and len(self.health) > 1:  # others can take over
                    health.drained_until = self.clock() + health.drain_s
                    health.drain_s = min(health.drain_s * 2, self.drain_max_s)
                    health.failures = 0
                    logger.warning("endpoint %s drained for %.0f s after %d failures in a row",
                                   health.endpoint.url, health.drained_until - self.clock(), self.drain_after)
            # One slot freed: one waiter can take it. Waking them all costs ~1 ms of CPU per request at
            # 128 waiters (bench/scale.py). While an endpoint is drained, waiters also wait with a
            # timeout, and a waiter cancelled by it right after a notify would swallow that wake-up
            # (asyncio before 3.13): then every waiter is woken.
            if any(h.drained_until > self.clock() for h in self.health):
                self.changed.notify_all()
            else:
                self.changed.notify(1)


@dataclass(frozen=True)
class _Session:
    """What exists between the first ``generate`` and ``close``: the loop, its thread, the
    HTTP client and the endpoints' slots and health."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    client: httpx.AsyncClient
    pool: _Pool


class OpenAIBackend:
    """``openai:<model>`` on any OpenAI-compatible server.

    ``sleep`` (an async function of seconds), ``rng`` (for the jitter) and ``transport`` (an
    ``httpx.AsyncBaseTransport`` such as ``httpx.MockTransport``) can be swapped for tests.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | Path | Sequence[str | dict[str, Any] | Endpoint] | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        drain_after: int = 3,
        drain_s: float = 10.0,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not model or not model.strip():
            raise ConfigError("openai backend: the model name is empty; use 'openai:<model>'")
        for name, value, low in (
            ("concurrency", concurrency, 1),
            ("max_retries", max_retries, 0),
            ("drain_after", drain_after, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"openai backend: {name} must be an integer >= {low}, got {value!r}"
                )
        for name, number, least in (
            ("timeout_s", timeout_s, "> 0"),
            ("backoff_base_s", backoff_base_s, ">= 0"),
            ("backoff_max_s", backoff_max_s, ">= 0"),
            ("drain_s", drain_s, ">= 0"),
        ):
            if not math.isfinite(number) or number < 0 or (least == "> 0" and number == 0):
                raise ConfigError(
                    f"openai backend: {name} must be a number {least}, got {number!r}"
                )
        extra = dict(extra_body or {})
        clash = sorted(RESERVED_BODY_KEYS & extra.keys())
        if clash:
            raise ConfigError(
                f"openai backend: extra_body may not set {clash}; these come from the request "
                "and GenerateConfig"
            )
        try:
            extra_json = json.dumps(extra, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"openai backend: extra_body is not JSON-serialisable ({exc})"
            ) from None

        self._endpoints = read_endpoints(
            base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, concurrency, api_key_env)
        url = ",".join(sorted(e.url for e in self._endpoints))  # one cache key whatever the order
        self._model = model
        self._base_url = url
        self._api_key_env = api_key_env
        self._concurrency = sum(e.concurrency for e in self._endpoints)
        self._drain = (drain_after, float(drain_s))
        self._timeout_s = float(timeout_s)
        self._max_retries = max_retries
        self._backoff_base_s = float(backoff_base_s)
        self._backoff_max_s = float(backoff_max_s)
        self._extra_body = extra
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._transport = transport

        details = {"base_url": url}
        if extra:
            details["extra_body"] = extra_json
        self.info = ModelInfo(
            spec=f"openai:{model}", backend="openai", revision=None, details=details
        )
        #: Enough requests to keep every concurrency slot busy while finished ones are stored.
        self.preferred_batch_size = self._concurrency * 4
        #: ``generate`` may be called from several threads at once (they share one loop and one
        #: concurrency bound), so the engine can send each request as soon as a slot frees up.
        self.concurrent = True

        self._lock = threading.Lock()
        self._closed = False
        self._session: _Session | None = None
        #: `complete`'s clients, one per event loop that awaited it (a server's).
        self._loop_sessions: dict[asyncio.AbstractEventLoop, _Session] = {}

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self._model!r}, base_url={self._base_url!r}, "
            f"api_key_env={self._api_key_env!r}, concurrency={self._concurrency})"
        )

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the sync face -----------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield ``(index, completion)`` for every request, each index once, as each finishes."""
        requests = list(requests)
        if not requests:
            return
        session = self._start()
        key = os.environ.get(self._api_key_env) or None
        out: queue.Queue[Any] = queue.Queue()
        future = asyncio.run_coroutine_threadsafe(
            self._run(session, requests, key, out), session.loop
        )
        future.add_done_callback(lambda _: out.put(_DONE))
        pending = set(range(len(requests)))
        try:
            while pending:
                item = out.get()
                if item is _DONE:
                    # Only when the run was cancelled (close() from another thread) or crashed.
                    why = "the backend was closed" if future.cancelled() else repr(future.exception())
                    error = f"{self.info.spec}: not finished: {why}"
                    for index in sorted(pending):
                        yield index, Completion(text="", error=error)
                    return
                index, completion = item
                if index in pending:
                    pending.discard(index)
                    yield index, completion
        finally:
            if not future.done():
                future.cancel()  # the caller stopped early: stop sending its requests

    def close(self) -> None:
        """Cancel requests in progress, close the HTTP client and stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            session, self._session = self._session, None
        if session is None:
            return
        loop = session.loop
        try:
            asyncio.run_coroutine_threadsafe(_shutdown(session.client), loop).result(_CLOSE_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - closing must not fail the caller's run
            logger.warning("%s: closing the HTTP client failed: %r", self.info.spec, exc)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            session.thread.join(timeout=_CLOSE_WAIT_S)
            if not session.thread.is_alive():
                loop.close()

    async def complete(self, request: GenerateRequest) -> Completion:
        """One request awaited on the caller's own event loop (a server's), with the same retries,
        limits and errors as `generate`, without crossing to the backend's loop thread. The HTTP
        client for that loop is made on first use; `aclose` (on the same loop) closes it."""
        if self._closed:
            raise ModelError(f"{self.info.spec}: the backend is closed; create a new one")
        loop = asyncio.get_running_loop()
        session = self._loop_sessions.get(loop)
        if session is None:
            session = _Session(loop=loop, thread=threading.current_thread(), client=self._client(),
                               pool=self._pool())
            self._loop_sessions[loop] = session
        key = os.environ.get(self._api_key_env) or None
        try:
            return await self._complete(session, request, key)
        except Exception as exc:  # noqa: BLE001 - as in generate: one request never raises
            return Completion(text="", error=_scrub(f"{self.info.spec}: unexpected {type(exc).__name__}: {exc}", key))

    async def aclose(self) -> None:
        """Close the HTTP client `complete` made for the running loop."""
        session = self._loop_sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:  # the loop is the caller's: its other tasks are not ours to cancel
            await session.client.aclose()

    def _pool(self) -> _Pool:
        return _Pool(self._endpoints, self._drain[0], self._drain[1], max(self._backoff_max_s, self._drain[1]))

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout_s),
            limits=httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency),
            transport=self._transport,
        )

    def _start(self) -> _Session:
        with self._lock:
            if self._closed:
                raise ModelError(f"{self.info.spec}: the backend is closed; create a new one")
            if self._session is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="refute-openai", daemon=True
                )
                thread.start()
                client = self._client()
                # Both bind to the loop that first awaits them, which is the loop thread's.
                self._session = _Session(loop=loop, thread=thread, client=client, pool=self._pool())
            return self._session

    # -- the loop thread ---------------------------------------------------------------------

    async def _run(
        self,
        session: _Session,
        requests: list[GenerateRequest],
        key: str | None,
        out: queue.Queue[Any],
    ) -> None:
        async def one(index: int, request: GenerateRequest) -> None:
            try:
                completion = await self._complete(session, request, key)
            except Exception as exc:  # noqa: BLE001 - one request never fails the run
                error = f"{self.info.spec}: unexpected {type(exc).__name__}: {exc}"
                completion = Completion(text="", error=_scrub(error, key))
            out.put((index, completion))

        await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))

    async def _complete(
        self, session: _Session, request: GenerateRequest, key: str | None
    ) -> Completion:
        body = self._body(request)
        attempts = 0
        health: _Health | None = None
        while True:
            attempts += 1
            # The slot is held through the backoff too, so a rate-limited server sees fewer
            # requests; the retry then goes to the least busy open endpoint, another if it can.
            health = await session.pool.acquire(avoid=health)
            outcome: bool | None = None
            try:
                completion = await self._attempt(session.client, health.endpoint.url, body, key)
                outcome = True
                if any(s in completion.text for s in request.config.stop):
                    completion = replace(completion, text=cut_at_stop(completion.text, request.config.stop),
                                         finish_reason="stop")
                return completion
            except BackendRequestError as exc:
                failure = exc
                outcome = False if failure.retryable else None
                if failure.retryable and attempts <= self._max_retries:
                    delay = self._delay(attempts, failure.retry_after)
                    logger.debug(
                        "%s: attempt %d failed (%s) at %s; retrying in %.2f s",
                        self.info.spec, attempts, _scrub(str(failure), key), health.endpoint.url, delay,
                    )
                    await self._sleep(delay)
            finally:
                await session.pool.release(health, outcome)
            if not failure.retryable or attempts > self._max_retries:
                break
        tried = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if not failure.retryable:
            tried += ", not retryable"
        error = f"{self.info.spec} at {health.endpoint.url}: {failure} ({tried})"
        return Completion(text="", error=_scrub(error, key))

    def _body(self, request: GenerateRequest) -> dict[str, Any]:
        body = {
            **self._extra_body,
            "model": self._model,
            "messages": [_message(m) for m in request.messages],
            "max_tokens": request.config.max_tokens,
            "temperature": request.config.temperature,
            "top_p": request.config.top_p,
            "seed": request.seed,
        }
        if request.tools:
            body["tools"] = list(request.tools)
        return body

    def _delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempts`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self._backoff_max_s)
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2.0 ** min(attempts - 1, 60))
        return self._rng.uniform(0.0, ceiling)

    async def _attempt(
        self, client: httpx.AsyncClient, base_url: str, body: dict[str, Any], key: str | None
    ) -> Completion:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        start = time.perf_counter()
        try:
            # httpx's timeout bounds each phase; this bounds the whole exchange.
            async with asyncio.timeout(self._timeout_s):
                response = await client.post(f"{base_url}/chat/completions", json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise BackendRequestError(
                f"no response within {self._timeout_s:g} s (timeout)", retryable=True
            ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise BackendRequestError(
                f"connection failed ({type(exc).__name__}: {exc})", retryable=True
            ) from None
        latency = time.perf_counter() - start
        if not response.is_success:
            raise self._status_error(response, base_url, key)
        return _parse_completion(response, latency)

    def _status_error(self, response: httpx.Response, base_url: str, key: str | None) -> BackendRequestError:
        status = response.status_code
        retryable = status in RETRY_STATUSES
        message = f"HTTP {status} {response.reason_phrase}: {_server_message(response)}".rstrip()
        if status in (401, 403):
            state = "is set" if key else "is not set"
            message += f" (check the API key in ${self._api_key_env}, which {state})"
        elif status == 404:
            message += f" (is {base_url!r} the server's OpenAI-compatible base URL?)"
        return BackendRequestError(
            message,
            status=status,
            retryable=retryable,
            retry_after=_retry_after(response.headers) if retryable else None,
        )


async def _shutdown(client: httpx.AsyncClient) -> None:
    """Cancel every request still in progress on this loop, then close the client."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


def _check_base_url(url: str, api_key_env: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"openai backend: base_url {url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"openai backend: base_url {url!r} must be http(s)://host[:port]/path, "
            "e.g. http://localhost:8000/v1"
        )
    if parsed.userinfo:
        raise ConfigError(
            "openai backend: base_url carries credentials; put the key in the environment "
            f"variable {api_key_env} instead"
        )


def _message(m: Message) -> dict[str, Any]:
    """A message as the chat completions API takes it, tool calls and tool results included."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.get("id"), "type": "function",
                              "function": {"name": c.get("name"), "arguments": c.get("arguments", "{}")}}
                             for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def _tool_calls(message: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The reply's tool calls as {id, name, arguments}; malformed entries are kept, named empty,
    so the solver can tell the model what was wrong."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return ()
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        fn = fn if isinstance(fn, dict) else {}
        args = fn.get("arguments")
        out.append({"id": call.get("id") if isinstance(call, dict) else None, "name": str(fn.get("name") or ""),
                    "arguments": args if isinstance(args, str) else json.dumps(args or {})})
    return tuple(out)


def _parse_completion(response: httpx.Response, latency: float) -> Completion:
    """Read one chat completion, or raise a retryable error saying what is wrong with it."""
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        raise BackendRequestError(
            f"HTTP {status} but the body is not JSON: {_clip(response.text) or '(empty)'}",
            status=status,
            retryable=True,
        ) from None
    problem: str | None = None
    content: Any = None
    choice: dict[str, Any] = {}
    if not isinstance(data, dict):
        problem = "the body is not a JSON object"
    elif not isinstance(data.get("choices"), list) or not data["choices"]:
        error = data.get("error")
        problem = f"the server sent an error: {_clip(str(error))}" if error else "no 'choices'"
    elif not isinstance(data["choices"][0], dict) or not isinstance(
        data["choices"][0].get("message"), dict
    ):
        problem = "choices[0] has no 'message'"
    else:
        choice = data["choices"][0]
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            problem = "choices[0].message.content is not text"
    if problem is not None:
        raise BackendRequestError(
            f"HTTP {status} but not a chat completion: {problem}", status=status, retryable=True
        )
    calls = _tool_calls(choice["message"])
    if content is None and calls:
        content = ""  # a reply that only calls tools
    if content is None:
        # No text at all (a refused-by-filter reply, a tool call, a server bug) is not an empty
        # answer: stored as one, it would be scored as a refusal. It is an error the run reports.
        finish = choice.get("finish_reason")
        raise BackendRequestError(
            f"HTTP {status} but the reply has no content (finish_reason {finish!r}); "
            "an incomplete reply is not stored as an answer",
            status=status, retryable=False,
        )
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    finish = choice.get("finish_reason")
    return Completion(
        text=content,
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        latency_s=latency,
        finish_reason=finish if isinstance(finish, str) else None,
        tool_calls=calls,
    )


def _server_message(response: httpx.Response) -> str:
    """The server's own words: ``error.message`` (OpenAI), ``message`` (vLLM), ``detail``."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or data.get("message") or data.get("detail")
    if not isinstance(message, str) or not message.strip():
        message = response.text
    return _clip(message)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, or ``Retry-After`` in seconds
    or as an HTTP-date), or None."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            seconds = float(millis) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return max(seconds, 0.0)
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 1] + "…"


def _scrub(text: str, key: str | None) -> str:
    """Remove the API key from text a server may have echoed it into."""
    return text.replace(key, "***") if key else text
