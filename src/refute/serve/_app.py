"""The OpenAI-compatible app in front of a guarded model: ``POST /v1/chat/completions``,
``GET /v1/models``, ``GET /health``.

Each request runs the guard (`Guard.respond_async`: an upstream endpoint awaited on the event loop,
layers and local models in worker threads), logs the exchange to the store, and only then
answers, as one JSON object or as server-sent events. Bad input gets a 4xx in OpenAI's error
shape, a failed model or upstream endpoint a 502 naming the cause, and anything unexpected a 500
that is logged, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from refute.errors import ConfigError, StoreError
from refute.guard import Guard, GuardedReply, LoadedStack, parse_stack
from refute.models import Message
from refute.serve._log import ExchangeLog, HarmMode, is_harmful, outcome_of, redaction_marker
from refute.serve._protocol import (
    ApiError,
    ChatRequest,
    Head,
    chunks,
    completion,
    error_body,
    parse_chat,
    refute_extra,
)
from refute.store import ExchangeOutcome, ExchangeRecord

__all__ = ["ServeConfig", "create_app", "pass_through"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class ServeConfig:
    """How one server answers and logs."""

    store: Path
    #: The name clients use for the model (``GET /v1/models``); the model's spec is accepted too.
    served_name: str | None = None
    #: Required as ``Authorization: Bearer KEY`` on every request when set.
    api_key: str | None = None
    harm: HarmMode = "auto"
    log_unredacted: bool = False
    max_tokens_default: int = 256
    max_body_bytes: int = MAX_BODY_BYTES
    #: Show clients each layer's score and decision (a red-teamer's view of their own stack); off, a
    #: client learns only the outcome, and cannot use the scores as an oracle to tune its prompts.
    layer_scores: bool = True
    #: One id per serve process, stored with each of its exchanges.
    server_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.max_tokens_default < 1:
            raise ConfigError(f"--max-tokens-default must be at least 1, got {self.max_tokens_default}")
        if self.harm not in ("auto", "harmful", "benign"):
            raise ConfigError(f"--harm must be auto, harmful or benign, not {self.harm!r}")


def _error(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
           code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type=type, param=param, code=code), status_code=status, headers=headers)


class _RequireKey:
    """Every request but ``/health`` needs ``Authorization: Bearer KEY`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                what = "wrong" if given else "missing"
                response = _error(401, f"Incorrect or missing API key ({what}): send 'Authorization: Bearer KEY' "
                                  "with the key refute serve was started with.", code="invalid_api_key",
                                  headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Server:
    """The handlers, with what they share: the guard, the log and the settings."""

    def __init__(self, guard: Guard, config: ServeConfig) -> None:
        self.guard, self.config = guard, config
        self.spec = guard.model_name
        self.name = config.served_name or self.spec
        self.names = {self.name, self.spec}
        self.stack = guard.stack.spec.name
        self.stack_sha256 = guard.stack.sha256
        self.started = int(time.time())
        self.log = ExchangeLog(config.store)

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"The request body is {int(declared)} bytes; refute serve takes at most {limit}.",
                           code="request_too_large")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise ApiError(413, f"The request body is over {limit} bytes, the most refute serve takes.",
                               code="request_too_large")
        return bytes(body)

    async def chat(self, request: Request) -> Response:
        try:
            parsed = parse_chat(await self._body(request))
            if parsed.model is not None and parsed.model not in self.names:
                raise ApiError(404, f"The model '{parsed.model}' does not exist here; this server serves "
                               f"'{self.name}'.", param="model", code="model_not_found")
            return await self._answer(parsed)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:  # the client gets a 500 in OpenAI's shape, the log the traceback
            logger.exception("refute serve: the request failed")
            return _error(500, "The server failed while answering; the cause is in its log.", type="server_error",
                          code="internal_error")

    def _log(self, parsed: ChatRequest, messages: Sequence[Message], seed: int, reply: GuardedReply
             ) -> tuple[Head, ExchangeOutcome, int]:
        """The exchange's row, committed (runs in a worker thread: a busy store must not stall the loop)."""
        head = Head(id=f"chatcmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()), model=self.name)
        outcome = outcome_of(reply)
        redact = is_harmful(reply, self.config.harm) and not self.config.log_unredacted and bool(reply.text)
        errors = [f"{r.name}: {r.error}" for r in reply.layers if r.decision == "error"]
        record = ExchangeRecord(
            server_id=self.config.server_id, model_spec=self.spec, stack_name=self.stack,
            stack_sha256=self.stack_sha256, request_id=head.id, stream=bool(parsed.stream),
            status=502 if reply.upstream_error else 200, outcome=outcome, seed=seed,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            reply=redaction_marker(reply.text) if redact else reply.text, redacted=redact,
            layers=[r.to_dict() for r in reply.layers], blocked_by=reply.blocked_by, total_ms=reply.total_ms,
            model_ms=reply.model_ms, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
            error=reply.upstream_error or ("; ".join(errors) if errors else None))
        try:
            row_id = self.log.write(record)
        except StoreError as exc:
            raise ApiError(500, f"The exchange could not be logged, so it is not answered: {exc}",
                           type="server_error", code="log_failed") from None
        return head, outcome, row_id

    async def _answer(self, parsed: ChatRequest) -> Response:
        seed = parsed.seed if parsed.seed is not None else secrets.randbelow(2**31)
        messages = parsed.to_messages()
        # an upstream endpoint is awaited on this loop; layers and local models run in worker threads
        reply = await self.guard.respond_async(messages, parsed.generate_config(self.config.max_tokens_default), seed)
        head, outcome, row_id = await run_in_threadpool(self._log, parsed, messages, seed, reply)
        headers = {"x-request-id": head.id}
        if reply.upstream_error:
            return _error(502, f"The model behind refute serve failed: {reply.upstream_error}",
                          type="upstream_error", code="upstream_error", headers=headers)
        shown = (refute_extra(reply, stack=self.stack, outcome=outcome, server_id=self.config.server_id)
                 if self.config.layer_scores else {"stack": self.stack, "outcome": outcome})
        extra = {**shown, "exchange_id": row_id}
        if parsed.stream:
            return StreamingResponse(_iterate(chunks(head, reply, extra, include_usage=parsed.include_usage)),
                                     media_type="text/event-stream",
                                     headers={**headers, "cache-control": "no-cache"})
        return JSONResponse(completion(head, reply, extra), headers=headers)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model()]})

    async def model(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.names:
            return _error(404, f"The model '{name}' does not exist here; this server serves '{self.name}'.",
                          param="model", code="model_not_found")
        return JSONResponse(self._model())

    def _model(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.started, "owned_by": "refute",
                "refute": {"spec": self.spec, "stack": self.stack}}

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})  # no key needed here, so it names nothing


async def _iterate(items: Any) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _http_error(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    if exc.status_code == 404:
        message, code = f"Unknown path {request.url.path}; refute serve answers /v1/chat/completions and " \
                        "/v1/models.", "not_found"
    elif exc.status_code == 405:
        message, code = f"Method {request.method} is not allowed on {request.url.path}.", "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    return _error(exc.status_code, message, code=code, headers=dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("refute serve: %s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "The server failed while answering; the cause is in its log.", type="server_error",
                  code="internal_error")


def pass_through() -> LoadedStack:
    """A stack without layers: the server only logs what passes through it."""
    return parse_stack({"name": "pass-through"}, path="<pass-through>")


def create_app(guard: Guard, config: ServeConfig) -> Starlette:
    """The app serving ``guard`` by ``config``; opens the store's exchange log now (a `StoreError`
    for a store that cannot be written) and closes it when the app shuts down."""
    server = _Server(guard, config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            aclose = getattr(guard.backend, "aclose", None)
            if aclose is not None:
                await aclose()
            server.log.close()

    routes = [
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/models/{name:path}", server.model, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
    ]
    middleware = [Middleware(_RequireKey, key=config.api_key)] if config.api_key else []
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.serve = server
    return app
