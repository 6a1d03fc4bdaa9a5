"""A model behind its stack of layers: input layers, system prompts, the model, output layers.

`Guard.respond` is what `refute serve` calls per request. A layer that raises is recorded as an
``error`` for that exchange; the stack's ``on_error`` then blocks the request (fail closed, the
default) or goes on without the layer. A model that fails gives a reply with ``upstream_error``
set, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from refute.guard._layers import SystemPromptLayer, build_layers, fires, last_user
from refute.guard._spec import LayerSpec, LoadedStack
from refute.guard._types import Decision, GuardedReply, LayerRecord
from refute.models import Completion, GenerateConfig, GenerateRequest, Message, ModelBackend

__all__ = ["Guard"]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class Guard:
    """One loaded model and its stack. Thread-safe: a local model is used by one request at a time
    (its layers included); an upstream endpoint takes requests concurrently."""

    def __init__(self, stack: LoadedStack, backend: ModelBackend, *, probes: dict[str, Any] | None = None) -> None:
        self.stack, self.backend = stack, backend
        self.layers = build_layers(stack, backend, probes)
        #: An upstream endpoint takes requests concurrently; a local model one at a time.
        self._concurrent = backend.info.backend in ("openai",)
        self._lock: contextlib.AbstractContextManager[Any] = (contextlib.nullcontext() if self._concurrent
                                                              else threading.Lock())

    @property
    def model_name(self) -> str:
        return self.backend.info.spec

    def _refusal(self, spec: LayerSpec) -> str:
        return spec.message or self.stack.spec.refusal_message

    def _run_layer(self, layer: Any, messages: Sequence[Message], reply: str | None
                   ) -> tuple[LayerRecord, str | None]:
        """The layer's record, and the text that replaces the request or reply (None: unchanged)."""
        spec: LayerSpec = layer.spec
        t0 = time.perf_counter()
        try:
            score = layer.score(messages, reply)
        except Exception as exc:  # noqa: BLE001 - a layer's bug is that exchange's error, never the server's
            return LayerRecord(spec.name, spec.type, spec.phase, None, False, "error", _ms(t0),
                               f"{type(exc).__name__}: {exc}"), None
        fired = fires(spec, layer.threshold, score)
        decision: Decision = spec.action if fired else "pass"
        new = None
        if fired and spec.action == "block":
            new = self._refusal(spec)
        elif fired and spec.action == "rewrite":
            new = str(spec.rewrite).replace("{text}", last_user(messages) if reply is None else reply)
        return LayerRecord(spec.name, spec.type, spec.phase, score, fired, decision, _ms(t0)), new

    def respond(self, messages: Sequence[Message], config: GenerateConfig, seed: int = 0) -> GuardedReply:
        with self._lock:
            t0 = time.perf_counter()
            state = self._before(tuple(messages))
            if isinstance(state, GuardedReply):
                return state
            m0 = time.perf_counter()
            try:
                got = next(iter(self.backend.generate([self._request(state.messages, config, seed)])))[1]
            except Exception as exc:  # noqa: BLE001 - the backend's own failure (connection refused, out of memory)
                got = Completion(text="", error=f"{type(exc).__name__}: {exc}")
            return self._after(state, got, _ms(m0), t0)

    async def respond_async(self, messages: Sequence[Message], config: GenerateConfig, seed: int = 0) -> GuardedReply:
        """`respond` for a server's event loop. An upstream endpoint is awaited on that loop; layers run
        in a worker thread when there are any (they may block); a local model runs wholly in one."""
        complete = getattr(self.backend, "complete", None)
        if complete is None or not self._concurrent:
            return await asyncio.to_thread(self.respond, messages, config, seed)
        t0 = time.perf_counter()
        if self._has("input"):
            state = await asyncio.to_thread(self._before, tuple(messages))
        else:
            state = self._before(tuple(messages))
        if isinstance(state, GuardedReply):
            return state
        m0 = time.perf_counter()
        got = await complete(self._request(state.messages, config, seed))
        model_ms = _ms(m0)
        if self._has("output"):
            return await asyncio.to_thread(self._after, state, got, model_ms, t0)
        return self._after(state, got, model_ms, t0)

    def _has(self, phase: str) -> bool:
        return any(x.spec.phase == phase for x in self.layers)

    @staticmethod
    def _request(messages: tuple[Message, ...], config: GenerateConfig, seed: int) -> GenerateRequest:
        return GenerateRequest(messages=messages, config=config, seed=seed)

    def _before(self, messages: tuple[Message, ...]) -> GuardedReply | _Sent:
        """Input layers, then system prompts: a reply when a layer stopped the request, else what to send."""
        t0 = time.perf_counter()
        records: list[LayerRecord] = []
        on_error = self.stack.spec.on_error
        for layer in (x for x in self.layers if x.spec.phase == "input"):
            record, new = self._run_layer(layer, messages, None)
            records.append(record)
            if (record.decision == "error" and on_error == "block") or record.decision == "block":
                text = str(new) if record.decision == "block" else self._refusal(layer.spec)
                return GuardedReply(text, "content_filter", tuple(records), blocked_by=layer.spec.name,
                                    total_ms=_ms(t0))
            if record.decision == "rewrite":
                users = [i for i, m in enumerate(messages) if m.role == "user"]
                idx = users[-1] if users else len(messages) - 1
                messages = (*messages[:idx], Message(role="user", content=str(new)), *messages[idx + 1:])
        for layer in self.layers:
            if isinstance(layer, SystemPromptLayer):
                s = time.perf_counter()
                messages = layer.apply(messages)
                records.append(LayerRecord(layer.spec.name, layer.spec.type, "system", None, False, "applied", _ms(s)))
        return _Sent(messages, records)

    def _after(self, state: _Sent, got: Completion, model_ms: float, t0: float) -> GuardedReply:
        """Output layers on the model's reply (or the upstream's failure, as it is)."""
        messages, records = state.messages, state.records
        sent = tuple({"role": m.role, "content": m.content} for m in messages)
        if got.error or not got.ok:
            return GuardedReply("", "error", tuple(records), model_ms=model_ms, total_ms=_ms(t0),
                                upstream_error=got.error or "no reply", sent=sent)
        reply, finish, blocked = got.text, got.finish_reason or "stop", None
        for layer in (x for x in self.layers if x.spec.phase == "output"):
            record, new = self._run_layer(layer, messages, reply)
            records.append(record)
            if record.decision == "error" and self.stack.spec.on_error == "block":
                reply, finish, blocked = self._refusal(layer.spec), "content_filter", layer.spec.name
                break
            if record.decision == "block":
                reply, finish, blocked = str(new), "content_filter", layer.spec.name
                break
            if record.decision == "rewrite":
                reply, finish = str(new), "content_filter"
        return GuardedReply(reply, finish, tuple(records), blocked_by=blocked, model_ms=model_ms, total_ms=_ms(t0),
                            input_tokens=got.input_tokens, output_tokens=got.output_tokens, sent=sent)


@dataclass
class _Sent:
    """What passed the input layers: the messages for the model and the records so far."""

    messages: tuple[Message, ...]
    records: list[LayerRecord]
