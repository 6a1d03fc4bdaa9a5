"""Capability scorers for tasks with a known answer: exact, normalized, includes, regex,
numeric (with tolerance) and multiple choice. Value 1.0 means correct."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Literal

from refute.datasets._record import MatchKind
from refute.errors import ScorerError
from refute.scorers._base import Score, ScoreInput, scorer
from refute.scorers._meaning import CORRECTNESS

_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_CHOICE = re.compile(r"(?:^|[^A-Za-z])\(?([A-Ja-j])\)?(?:[^A-Za-z]|$)")


def normalize(text: str) -> str:
    """Lower case, accents and punctuation removed, whitespace collapsed, articles dropped."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.translate(str.maketrans("", "", string.punctuation))
    words = [w for w in text.split() if w not in {"a", "an", "the"}]
    return " ".join(words)


def first_number(text: str) -> float | None:
    for token in _NUMBER.findall(text):
        try:
            return float(token.replace(",", ""))
        except ValueError:
            continue
    return None


def first_choice(text: str) -> str | None:
    stripped = text.strip()
    m = re.match(r"^(?:answer\s*[:\-]?\s*)?\(?([A-Ja-j])\)?(?:[\s.:)\-]|$)", stripped, re.IGNORECASE)
    if m:
        return m.group(1).upper()
    m = re.search(r"answer(?: is)?\s*[:\-]?\s*\(?([A-J])\)?\b", stripped, re.IGNORECASE)
    return m.group(1).upper() if m else None


def check(kind: MatchKind, target: str, reply: str, *, tolerance: float = 1e-6) -> bool:
    """True when ``reply`` answers ``target`` under the given match kind."""
    if kind == "exact":
        return reply.strip() == target.strip()
    if kind == "normalized":
        return normalize(reply) == normalize(target)
    if kind == "includes":
        return normalize(target) in normalize(reply)
    if kind == "regex":
        return re.search(target, reply, re.IGNORECASE | re.MULTILINE) is not None
    if kind == "numeric":
        got = first_number(reply)
        want = float(target)
        return got is not None and math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance)
    if kind == "choice":
        return first_choice(reply) == target.strip().upper()
    raise ScorerError(f"unknown match kind '{kind}'; use exact, normalized, includes, regex, numeric or choice")


@dataclass(frozen=True)
class Match:
    """Checks the reply against the record's target, by the record's match kind or a fixed one."""

    kind: MatchKind | Literal["record"] = "record"
    tolerance: float = 1e-6
    name: str = "match"
    version: str = "1"

    def score(self, item: ScoreInput) -> Score:
        target = item.record.target
        kind = item.record.match if self.kind == "record" else self.kind
        if target is None or kind is None:
            return Score(None, "unscorable", f"record {item.record.id} has no target/match kind")
        ok = check(kind, target, item.completion, tolerance=self.tolerance)
        return Score(1.0 if ok else 0.0, "correct" if ok else "incorrect", f"{kind} vs {target!r}")


@scorer("match", "1 when the reply answers the record's target (its own match kind)", meaning=CORRECTNESS)
def match(kind: str = "record", tolerance: float = 1e-6) -> Match:
    return Match(kind=kind, tolerance=tolerance)  # type: ignore[arg-type]


for _kind in ("exact", "normalized", "includes", "regex", "numeric", "choice"):
    def _factory(tolerance: float = 1e-6, _k: str = _kind) -> Match:
        return Match(kind=_k, tolerance=tolerance, name=_k)  # type: ignore[arg-type]

    scorer(_kind, f"1 when the reply matches the target ({_kind})", meaning=CORRECTNESS)(_factory)
