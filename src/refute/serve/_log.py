"""The server's log of exchanges: what becomes a row of the store's ``exchanges`` table, redacted by
the rule reports follow, and the one thread that writes the rows.

Redaction: reports hide replies to harmful requests unless asked not to. A served request has no
dataset label, so ``harm`` decides: ``auto`` (the default) counts a request as harmful when any
layer fired on it or blocked it, ``harmful`` counts every request, ``benign`` none. A harmful
exchange's reply is stored as a marker, ``[redacted: 412 chars, sha256 1a2b3c4d]``, unless the
server runs with ``log_unredacted``. Request messages are stored as sent; no header is.

Writes: each exchange is one transaction, committed by the worker thread that answered it before
the response is sent, so every exchange a client received is in the store, even if the server is
then killed, and no row is ever half written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Literal

from refute.errors import StoreError
from refute.guard import GuardedReply
from refute.store import ExchangeOutcome, ExchangeRecord, Store

__all__ = ["ExchangeLog", "HarmMode", "is_harmful", "outcome_of", "redaction_marker"]

logger = logging.getLogger(__name__)

HarmMode = Literal["auto", "harmful", "benign"]


def outcome_of(reply: GuardedReply) -> ExchangeOutcome:
    """upstream_error, error (a layer raised), blocked, flagged (a layer fired) or ok, first that applies."""
    if reply.upstream_error:
        return "upstream_error"
    if reply.errors:
        return "error"
    if reply.blocked_by:
        return "blocked"
    return "flagged" if reply.flagged else "ok"


def is_harmful(reply: GuardedReply, harm: HarmMode) -> bool:
    """Whether the exchange counts as harmful for redaction (see the module doc)."""
    if harm == "harmful":
        return True
    if harm == "benign":
        return False
    return bool(reply.flagged or reply.blocked_by)


def redaction_marker(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"[redacted: {len(text)} chars, sha256 {digest}]"


class ExchangeLog:
    """Commits exchanges to the store from whichever thread answered them, one row per transaction.

    Each thread gets its own connection (SQLite connections belong to the thread that opened them)
    and a lock lets one thread write at a time, so no writer waits in SQLite's busy loop. Writing in
    the request's own worker thread, rather than handing the row to a writer thread, saves two
    thread switches per request; a commit itself takes about 0.1 ms (WAL, synchronous=NORMAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        Store(path).close()  # a store that cannot be opened or migrated fails here, before the server listens

    def write(self, record: ExchangeRecord) -> int:
        """Commit one exchange; returns its row id. A `StoreError` when it cannot be written."""
        store: Store | None = getattr(self._local, "store", None)
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.path}: the exchange log is closed")
            if store is None:
                store = self._local.store = Store(self.path)
            try:
                row_id = store.add_exchange(record)
            except StoreError as exc:
                logger.error("refute serve: could not log exchange %s to %s: %s", record.request_id, self.path, exc)
                raise
            self.written += 1
        return row_id

    def close(self) -> None:
        """Refuse further writes. Each thread's connection closes when its thread ends."""
        with self._lock:
            self._closed = True
