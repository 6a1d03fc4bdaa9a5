"""The monitoring log of `refute serve`: one row per exchange (a request, the guard stack's work on
it, and the reply), committed in one transaction as the response is produced, so a killed server
loses no exchange its client received and leaves no partial row.

What is stored is what the server hands over: the request's messages, the reply (already redacted
by the server's rule: a marker in place of a harmful exchange's reply), and each layer's record.
No header or API key ever reaches this table.

`ExchangeMethods` holds the store's exchange methods; `Store` inherits them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from refute.errors import StoreError
from refute.store._db import Connection, Row
from refute.store._records import utc_now

__all__ = ["ExchangeMethods", "ExchangeOutcome", "ExchangeRecord", "LayerStats"]

#: What became of an exchange: answered as the model wrote it (``ok``), a layer fired without
#: blocking (``flagged``: flag or rewrite), a layer blocked it, a layer raised or the server failed
#: (``error``), or the model / upstream endpoint failed (``upstream_error``, answered 502).
ExchangeOutcome = Literal["ok", "flagged", "blocked", "error", "upstream_error"]


class ExchangeRecord(BaseModel):
    """One exchange of `refute serve`, as logged."""

    model_config = ConfigDict(frozen=True)

    id: int | None = Field(None, description="Row id, set by the store (increasing in commit order).")
    created_at: str = Field("", description="UTC ISO-8601 time it was logged (the store sets it when empty).")
    server_id: str = Field(description="The serve process that answered it (one id per process).")
    model_spec: str = Field(description="The served model's spec (openai:..., default, hf:...).")
    stack_name: str = Field(description="The guard stack's name (pass-through when it has no layers).")
    stack_sha256: str = Field(description="sha256 of the stack file ('' when it came from no file).")
    request_id: str = Field(description="The response id the client got (chatcmpl-...).")
    stream: bool = Field(description="Whether the client asked for a streamed (SSE) reply.")
    status: int = Field(description="HTTP status of the response.")
    outcome: ExchangeOutcome = Field(description="ok, flagged, blocked, error or upstream_error.")
    seed: int = Field(description="Seed the model was called with (the request's, or one drawn for it).")
    messages: list[dict[str, str]] = Field(description="The request's messages ({role, content} each).")
    reply: str = Field(description="The reply the client got, or a redaction marker; '' when none.")
    redacted: bool = Field(description="Whether ``reply`` is a redaction marker in place of the reply.")
    layers: list[dict[str, Any]] = Field(default_factory=list, description="Each layer's record: name, type, "
                                         "phase, score, fired, decision, ms, error.")
    blocked_by: str | None = Field(None, description="The layer that blocked it, if one did.")
    total_ms: float = Field(description="Time in the guard (layers and model), ms.")
    model_ms: float = Field(description="Time in the model (or the upstream request), ms.")
    input_tokens: int = Field(0, description="Prompt tokens the model reported.")
    output_tokens: int = Field(0, description="Reply tokens the model reported.")
    error: str | None = Field(None, description="What failed (a layer's or the upstream's error), if anything.")


@dataclass(frozen=True)
class LayerStats:
    """What one layer did over a window of exchanges: decision counts and mean time."""

    name: str
    type: str
    phase: str
    n: int
    passed: int
    flagged: int
    blocked: int
    rewritten: int
    applied: int
    errors: int
    mean_ms: float


_COLUMNS = ("created_at", "server_id", "model_spec", "stack_name", "stack_sha256", "request_id", "stream", "status",
            "outcome", "seed", "messages_json", "reply", "redacted", "layers_json", "blocked_by", "total_ms",
            "model_ms", "input_tokens", "output_tokens", "error")
_INSERT = (f"INSERT INTO exchanges ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
           " RETURNING id")

#: Per-layer counts over the exchanges from a row id on, in each dialect (the layers are a JSON array).
_STATS = {
    "sqlite": """
SELECT json_extract(l.value, '$.name') AS name, MIN(json_extract(l.value, '$.type')) AS type,
       MIN(json_extract(l.value, '$.phase')) AS phase, MIN(CAST(l.key AS INTEGER)) AS position, COUNT(*) AS n,
       SUM(json_extract(l.value, '$.decision') = 'pass') AS passed,
       SUM(json_extract(l.value, '$.decision') = 'flag') AS flagged,
       SUM(json_extract(l.value, '$.decision') = 'block') AS blocked,
       SUM(json_extract(l.value, '$.decision') = 'rewrite') AS rewritten,
       SUM(json_extract(l.value, '$.decision') = 'applied') AS applied,
       SUM(json_extract(l.value, '$.decision') = 'error') AS errors,
       AVG(json_extract(l.value, '$.ms')) AS mean_ms
FROM exchanges e, json_each(e.layers_json) l
WHERE e.id >= ?
GROUP BY name ORDER BY position, name
""",
    "postgresql": """
SELECT l.value->>'name' AS name, MIN(l.value->>'type') AS type, MIN(l.value->>'phase') AS phase,
       MIN(l.ord) - 1 AS pos, COUNT(*) AS n,
       COUNT(*) FILTER (WHERE l.value->>'decision' = 'pass') AS passed,
       COUNT(*) FILTER (WHERE l.value->>'decision' = 'flag') AS flagged,
       COUNT(*) FILTER (WHERE l.value->>'decision' = 'block') AS blocked,
       COUNT(*) FILTER (WHERE l.value->>'decision' = 'rewrite') AS rewritten,
       COUNT(*) FILTER (WHERE l.value->>'decision' = 'applied') AS applied,
       COUNT(*) FILTER (WHERE l.value->>'decision' = 'error') AS errors,
       AVG((l.value->>'ms')::double precision) AS mean_ms
FROM exchanges e, jsonb_array_elements(e.layers_json::jsonb) WITH ORDINALITY AS l(value, ord)
WHERE e.id >= ?
GROUP BY l.value->>'name' ORDER BY pos, name
""",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: a layer's non-finite score is stored as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class ExchangeMethods:
    """The monitoring log of `refute serve`: methods of `Store`."""

    if TYPE_CHECKING:  # provided by Store
        _dialect: ClassVar[str]

        def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Row]: ...
        def transaction(self) -> AbstractContextManager[Connection]: ...

    def add_exchange(self, record: ExchangeRecord) -> int:
        """Log one exchange (one transaction); returns its row id."""
        return self.add_exchanges([record])[0]

    def add_exchanges(self, records: Sequence[ExchangeRecord]) -> list[int]:
        """Log several exchanges in one transaction (all or none); returns their row ids in order."""
        rows = [_row(r) for r in records]
        ids: list[int] = []
        with self.transaction() as db:
            for row in rows:
                ids.append(int(db.execute(_INSERT, row).fetchone()[0]))
        return ids

    def recent_exchanges(self, limit: int = 20, since_id: int | None = None) -> list[ExchangeRecord]:
        """The newest ``limit`` exchanges (with ``since_id``: of those after that row), oldest first."""
        if limit < 1:
            raise StoreError(f"recent_exchanges: limit must be at least 1, got {limit}")
        rows = self._read("SELECT * FROM (SELECT * FROM exchanges WHERE id > ? ORDER BY id DESC LIMIT ?) AS recent"
                          " ORDER BY id",
                          (-1 if since_id is None else since_id, limit))
        return [_record(r) for r in rows]

    def exchange_layer_stats(self, since: int | None = None) -> list[LayerStats]:
        """Per layer, over the exchanges from row id ``since`` on (all, when None): how often it
        passed, flagged, blocked, rewrote, was applied or raised, and its mean time; in stack order."""
        return [LayerStats(name=r["name"], type=r["type"] or "", phase=r["phase"] or "", n=r["n"],
                           passed=r["passed"] or 0, flagged=r["flagged"] or 0, blocked=r["blocked"] or 0,
                           rewritten=r["rewritten"] or 0, applied=r["applied"] or 0, errors=r["errors"] or 0,
                           mean_ms=float(r["mean_ms"] or 0.0))
                for r in self._read(_STATS[self._dialect], (-1 if since is None else since,))]


def _row(r: ExchangeRecord) -> tuple[Any, ...]:
    layers = [{k: _finite(v) for k, v in layer.items()} for layer in r.layers]
    return (r.created_at or utc_now(), r.server_id, r.model_spec, r.stack_name, r.stack_sha256, r.request_id,
            int(r.stream), r.status, r.outcome, r.seed, _dumps(r.messages), r.reply, int(r.redacted), _dumps(layers),
            r.blocked_by, r.total_ms, r.model_ms, r.input_tokens, r.output_tokens, r.error)


def _record(row: Row) -> ExchangeRecord:
    return ExchangeRecord(
        id=row["id"], created_at=row["created_at"], server_id=row["server_id"], model_spec=row["model_spec"],
        stack_name=row["stack_name"], stack_sha256=row["stack_sha256"], request_id=row["request_id"],
        stream=bool(row["stream"]), status=row["status"], outcome=row["outcome"], seed=row["seed"],
        messages=json.loads(row["messages_json"]), reply=row["reply"], redacted=bool(row["redacted"]),
        layers=json.loads(row["layers_json"]), blocked_by=row["blocked_by"], total_ms=row["total_ms"],
        model_ms=row["model_ms"], input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
        error=row["error"])
