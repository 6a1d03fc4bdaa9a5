"""A saved linear probe as a scorer (or a monitor): its score on the prompt a sample was given.

The probe file (`refute.interp.Probe.save`, written by `refute interp probe`) names the model, the
activation site and the token position it was fitted on. The scorer loads that model once per
process (on first use, not at construction), renders the sample's transcript without its reply,
captures the site's activation at the position and returns 1.0 when ``score > threshold``.
The raw score and the probability (``sigmoid(score)``) go into the metadata.

It lives in `refute.interp` (above the scorers) and registers through the ``refute`` entry-point
group (``pyproject.toml``), so `refute.scorers.get_scorer("probe")` finds it without the scorers
importing interpretability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from refute.errors import ScorerError
from refute.interp._probe_fit import score_messages
from refute.interp._probes import Probe
from refute.models import load_model
from refute.scorers import DETECTION, Score, ScoreInput, scorer


@lru_cache(maxsize=4)
def _backend(spec: str, dtype: str) -> Any:
    """One loaded model per (spec, dtype) in this process; scorers that share a model share it."""
    backend = load_model(spec, dtype=dtype)
    if not hasattr(backend, "model") or not hasattr(backend, "tokenizer"):
        raise ScorerError(f"probe scorer: model '{spec}' is not a local hf model; a probe reads activations")
    return backend


@dataclass
class ProbeScorer:
    """1.0 when the probe's score on the sample's prompt exceeds its threshold."""

    path: str
    model: str | None = None
    dtype: str = "float32"
    name: str = "probe"
    version: str = "1"
    _probe: Any = field(default=None, init=False, repr=False)

    def _load(self) -> Any:
        if self._probe is None:
            self._probe = Probe.load(self.path)
        return self._probe

    def score(self, item: ScoreInput) -> Score:
        probe = self._load()
        spec = self.model or probe.model
        if not spec:
            raise ScorerError(f"probe {self.path} names no model; pass model=... to the probe scorer")
        raw = float(score_messages(probe, _backend(spec, self.dtype), [item.messages], [item.record.prompt])[0])
        positive = raw > probe.threshold
        prob = 1.0 / (1.0 + math.exp(-raw)) if raw > -700 else 0.0
        return Score(1.0 if positive else 0.0, "positive" if positive else "negative",
                     f"probe score {raw:.3f} {'>' if positive else '<='} threshold {probe.threshold:g} "
                     f"at {probe.site}, position {probe.position}",
                     {"score": raw, "probability": prob, "threshold": probe.threshold, "site": probe.site,
                      "position": probe.position, "model": spec, "probe": str(Path(self.path))})


@scorer("probe", "1 when a saved linear probe (refute interp probe) fires on the sample's prompt",
        meaning=DETECTION)
def probe_scorer(path: str, model: str | None = None, dtype: str = "float32") -> ProbeScorer:
    if not Path(path).exists():
        raise ScorerError(f"probe scorer: no probe file at {path}; fit one with `refute interp probe`")
    return ProbeScorer(path=path, model=model, dtype=dtype)
