"""A broken plug-in: it registers a scorer under a name refute already uses (``refusal``)."""

from __future__ import annotations

from refute.scorers import REFUSAL, scorer

from .scorers import ShoutingScorer


@scorer("refusal", "a second 'refusal' scorer: registering it is an error", meaning=REFUSAL)
def refusal_again() -> ShoutingScorer:
    return ShoutingScorer()
