"""A probe from two sets of prompts, end to end; and a saved probe's score on new transcripts.

`fit_probe_on_prompts` renders positive and negative prompts as the model sees them, captures one
position at every candidate site, fits a probe per site on a seeded train split, picks the site on
validation AUROC, and reports test (and out-of-distribution) AUROC and accuracy with intervals.
`score_messages` is what the ``probe`` scorer runs: the same rendering and capture on a transcript.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from refute.interp._capture import capture, render_prompts
from refute.interp._errors import InterpError
from refute.interp._probes import (
    LayerSweep,
    Probe,
    ProbeKind,
    auroc,
    layer_sweep,
    split_indices,
)
from refute.interp._sites import parse_site
from refute.models._base import Message
from refute.models._encode import render

if TYPE_CHECKING:
    import torch

__all__ = ["ProbeFit", "fit_probe_on_prompts", "render_messages", "score_messages"]


@dataclass
class ProbeFit:
    """The chosen probe (its ``metrics`` hold test and OOD results) and the sweep over sites."""

    probe: Probe
    sweep: LayerSweep
    val_auroc: dict[str, float]


def _acts(backend: Any, prompts: Sequence[str], sites: Sequence[str], position: int,
          batch_size: int) -> dict[str, torch.Tensor]:
    texts = render_prompts(backend.tokenizer, prompts)
    acts = capture(backend.model, backend.tokenizer, texts, sites, positions=(position,), batch_size=batch_size)
    return {s: acts[s][:, 0] for s in sites}  # (N, D)


def fit_probe_on_prompts(backend: Any, positive: Sequence[str], negative: Sequence[str], sites: Sequence[str], *,
                         position: int = -1, kind: ProbeKind = "logistic",
                         ood: tuple[Sequence[str], Sequence[str]] | None = None, seed: int = 0,
                         n_boot: int = 1000, batch_size: int = 16) -> ProbeFit:
    """Fit at every site in ``sites`` (label 1 = ``positive``); keep the best on validation AUROC.

    Splits are a seeded 60/20/20 permutation of all prompts; ``ood = (positive, negative)`` is
    evaluated under the name ``ood``.
    """
    import torch

    if len(positive) < 5 or len(negative) < 5:
        raise InterpError(f"a probe needs at least 5 prompts per class to split into train / val / test; "
                          f"got {len(positive)} positive and {len(negative)} negative")
    sites = [str(parse_site(s)) for s in sites]
    if not sites:
        raise InterpError("name at least one site to probe, such as resid_pre.12")
    prompts = [*positive, *negative]
    y = torch.tensor([1] * len(positive) + [0] * len(negative))
    acts = _acts(backend, prompts, sites, position, batch_size)
    ood_sets = None
    if ood is not None:
        ood_acts = _acts(backend, [*ood[0], *ood[1]], sites, position, batch_size)
        ood_sets = {"ood": (ood_acts, [1] * len(ood[0]) + [0] * len(ood[1]))}
    idx = split_indices(len(prompts), seed=seed)
    sweep = layer_sweep(acts, y.tolist(), kind=kind, splits=idx, ood=ood_sets, seed=seed, n_boot=n_boot)
    probes = {r.site: r.probe for r in sweep.rows if r.probe is not None}
    val = {site: auroc(p.score(acts[site][idx["val"]]).numpy(), y[idx["val"]].numpy()) for site, p in probes.items()}
    site = max(val, key=lambda s: val[s] if val[s] == val[s] else -1.0)  # NaN (one class in val) ranks last
    probe = probes[site]
    probe.site, probe.position, probe.model = site, position, backend.info.spec
    return ProbeFit(probe, sweep, val)


def render_messages(tokenizer: Any, messages: Sequence[dict[str, str]], fallback: str) -> str:
    """The prompt the model saw (`refute.models.render`): the transcript without its trailing
    assistant replies."""
    msgs = [Message(role=m["role"], content=m["content"]) for m in messages]
    while msgs and msgs[-1].role == "assistant":
        msgs.pop()
    if not msgs:
        msgs = [Message(role="user", content=fallback)]
    return render(tokenizer, msgs)


def score_messages(probe: Probe, backend: Any, transcripts: Sequence[Sequence[dict[str, str]]],
                   fallbacks: Sequence[str] | None = None) -> torch.Tensor:
    """Raw probe scores ``(N,)`` of each transcript's prompt at the probe's site and position."""
    if probe.site is None:
        raise InterpError("this probe does not record its site; refit it with `refute interp probe`")
    fallbacks = fallbacks or [""] * len(transcripts)
    texts = [render_messages(backend.tokenizer, m, f) for m, f in zip(transcripts, fallbacks, strict=True)]
    acts = capture(backend.model, backend.tokenizer, texts, [probe.site], positions=(probe.position,))
    return probe.score(acts[probe.site][:, 0])
