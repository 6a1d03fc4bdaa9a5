"""The OpenAI chat-completions wire format, as `refute serve` speaks it: the request read and
checked (unknown fields ignored, as OpenAI does), the reply as a ``chat.completion`` or as
``chat.completion.chunk`` server-sent events, and errors in OpenAI's shape::

    {"error": {"message": ..., "type": "invalid_request_error", "param": ..., "code": ...}}

Every response carries an extra top-level ``refute`` object: each layer's name, score and
decision, the layer that blocked the request, and how long the guard and the model took.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from refute.errors import RefuteError
from refute.guard import GuardedReply
from refute.models import GenerateConfig, Message

__all__ = ["ApiError", "ChatRequest", "chunks", "completion", "error_body", "parse_chat", "refute_extra", "usage"]

#: Finish reasons a client understands; anything else a backend says is reported as ``stop``.
_FINISH = frozenset({"stop", "length", "content_filter"})
_MAX_SEED = 2**63


class ApiError(RefuteError):
    """A request the server answers with an OpenAI-style error instead of a completion."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        """A string, or a list of text parts (joined by newlines); nothing else is supported."""
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            texts = []
            for part in value:
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ValueError("each content part must be an object with a 'type'")
                if part["type"] != "text":
                    raise ValueError(f"only text content parts are supported, not {part['type']!r}")
                if not isinstance(part.get("text"), str):
                    raise ValueError("a text content part needs 'text' (a string)")
                texts.append(part["text"])
            return "\n".join(texts)
        raise ValueError("content must be a string or a list of text parts")


class ChatRequest(BaseModel):
    """The fields of a chat-completions request that the server reads; others are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-_MAX_SEED, lt=_MAX_SEED)
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None

    def to_messages(self) -> tuple[Message, ...]:
        return tuple(Message(role="system" if m.role == "developer" else m.role, content=m.content)
                     for m in self.messages)

    def generate_config(self, max_tokens_default: int) -> GenerateConfig:
        stop = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return GenerateConfig(
            max_tokens=self.max_completion_tokens or self.max_tokens or max_tokens_default,
            temperature=1.0 if self.temperature is None else self.temperature,  # OpenAI's default
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=tuple(s for s in stop if s))

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage") is True)


def _param(loc: tuple[int | str, ...]) -> str | None:
    """A pydantic location as OpenAI names a parameter: ``messages[0].role``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[str]", "function-before[_text(), any]"):
            continue  # a union branch or a validator, not a field
        else:
            out += f".{part}" if out else str(part)
    return out or None


_CODES = {"missing": "missing_required_parameter", "json_invalid": "invalid_json", "json_type": "invalid_json"}


def parse_chat(body: bytes) -> ChatRequest:
    """The request, checked; an `ApiError` (400) names the first problem and its parameter."""
    try:
        request = ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise ApiError(400, "We could not parse the JSON body of your request: "
                           f"{first['msg']}. Send a JSON object.", code="invalid_json") from None
        if first["type"] == "model_type" or not first["loc"]:
            raise ApiError(400, "The request body must be a JSON object.", code="invalid_type") from None
        param = _param(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        code = _CODES.get(first["type"]) or ("invalid_type" if first["type"].endswith("_type") else "invalid_value")
        raise ApiError(400, f"Invalid '{param}': {message}.", param=param, code=code) from None
    if request.n not in (None, 1):
        raise ApiError(400, f"Invalid 'n': refute serve returns one choice per request (n=1), got {request.n}.",
                       param="n", code="invalid_value")
    for name in ("tools", "functions"):
        if getattr(request, name):
            raise ApiError(400, f"'{name}' is not supported by refute serve: its layers judge text replies only.",
                           param=name, code="unsupported_parameter")
    return request


def finish_reason(reply: GuardedReply) -> str:
    return reply.finish_reason if reply.finish_reason in _FINISH else "stop"


def _score(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)


def refute_extra(reply: GuardedReply, *, stack: str, outcome: str, server_id: str) -> dict[str, Any]:
    """What the stack did, for the client: each layer's score and decision (not its error text)."""
    return {
        "stack": stack, "server_id": server_id, "outcome": outcome, "blocked_by": reply.blocked_by,
        "flagged": list(reply.flagged),
        "layers": [{"name": r.name, "type": r.type, "phase": r.phase, "score": _score(r.score), "fired": r.fired,
                    "decision": r.decision, "ms": round(r.ms, 3)} for r in reply.layers],
        "model_ms": round(reply.model_ms, 3), "total_ms": round(reply.total_ms, 3),
    }


def usage(reply: GuardedReply) -> dict[str, int]:
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens}


@dataclass(frozen=True)
class Head:
    """What every object of one response shares."""

    id: str
    created: int
    model: str


def completion(head: Head, reply: GuardedReply, extra: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {"id": head.id, "object": "chat.completion", "created": head.created, "model": head.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "logprobs": None, "finish_reason": finish_reason(reply)}],
            "usage": usage(reply), "system_fingerprint": None, "refute": extra}


_PIECE = re.compile(r"\s*\S+\s*|\s+")


def pieces(text: str, size: int = 24) -> Iterator[str]:
    """The reply cut at word boundaries into pieces of about ``size`` characters (the last may be shorter)."""
    buf = ""
    for word in _PIECE.findall(text):
        buf += word
        if len(buf) >= size:
            yield buf
            buf = ""
    if buf:
        yield buf


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def chunks(head: Head, reply: GuardedReply, extra: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """The reply as server-sent events: a role chunk, content chunks, a final chunk with the
    finish reason (and the ``refute`` object), the usage chunk when asked for, then ``[DONE]``."""
    base = {"id": head.id, "object": "chat.completion.chunk", "created": head.created, "model": head.model,
            "system_fingerprint": None}

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        return _event({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                       **more})

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(reply.text):
        yield chunk({"content": piece})
    yield chunk({}, finish_reason(reply), refute=extra)
    if include_usage:
        yield _event({**base, "choices": [], "usage": usage(reply)})
    yield b"data: [DONE]\n\n"
