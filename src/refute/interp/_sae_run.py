"""A TopK SAE trained on a dataset's activations, judged on held-out prompts; and its features'
top-activating prompts.

`train_sae_on_prompts` captures one site for every prompt (every token, or chosen positions),
splits the *prompts* (not the tokens) into train and held-out sets with a seeded permutation,
trains with `train_sae`, and reports FVU, L0 and the dead-feature share on both sets.
`feature_top_prompts` encodes every token of every prompt and ranks prompts by each feature's
largest activation on them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from refute.interp._capture import render_prompts
from refute.interp._capture_file import capture_prompts, capture_tokens
from refute.interp._errors import InterpError
from refute.interp._sae import SAEConfig, SAEMetrics, sae_metrics, train_sae
from refute.interp._sites import parse_site

if TYPE_CHECKING:
    import torch

__all__ = ["FeaturePrompt", "FeatureTop", "SAETraining", "feature_top_prompts", "features_markdown", "parse_width",
           "split_prompts", "train_sae_on_prompts"]

_WIDTH = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)x|(\d+))\s*$")


def parse_width(text: str, d_model: int | None = None) -> int | None:
    """``4x`` -> 4 * d_model features, ``512`` -> 512. None for a multiple while d_model is unknown."""
    match = _WIDTH.match(text)
    if not match:
        raise InterpError(f"width '{text}' is neither a multiple of the model width (4x) nor a feature count (4096)")
    if match.group(2) is not None:
        n = int(match.group(2))
    elif d_model is None:
        if float(match.group(1)) <= 0:
            raise InterpError(f"width '{text}' gives no features")
        return None
    else:
        n = round(float(match.group(1)) * d_model)
    if n < 1:
        raise InterpError(f"width '{text}' gives no features")
    return n


def split_prompts(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``n`` prompt indices into (train, held out); each set keeps its order."""
    import numpy as np

    if not 0.0 <= eval_fraction < 1.0:
        raise InterpError(f"the held-out fraction must be in [0, 1), got {eval_fraction}")
    n_eval = 0 if eval_fraction == 0 or n < 2 else min(n - 1, max(1, round(n * eval_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    held = sorted(int(i) for i in order[:n_eval])
    return sorted(int(i) for i in order[n_eval:]), held


@dataclass(frozen=True)
class SAETraining:
    """A trained SAE, the prompts it saw and did not see, and its health on each."""

    sae: Any
    site: str
    n_features: int
    k: int
    train: SAEMetrics
    held_out: SAEMetrics | None
    train_ids: tuple[str, ...]
    held_out_ids: tuple[str, ...]
    steps: int

    def to_markdown(self) -> str:
        lines = [f"TopK SAE at {self.site}: {self.n_features} features, k={self.k}, {self.steps} steps.", "",
                 "| prompts | n prompts | n vectors | FVU | L0 | dead features |", "|---|---|---|---|---|---|"]
        sets = [("train", self.train, len(self.train_ids)), ("held out", self.held_out, len(self.held_out_ids))]
        for name, m, n in sets:
            if m is not None:
                lines.append(f"| {name} | {n} | {m.n_tokens} | {m.fvu:.4f} | {m.l0:.1f} | {m.dead_fraction:.1%} |")
        lines += ["", "FVU: fraction of variance unexplained (0 is perfect); "
                  "dead: features that never fire on that set."]
        return "\n".join(lines)

    def results(self) -> dict[str, Any]:
        def row(m: SAEMetrics | None) -> dict[str, float] | None:
            return None if m is None else {"fvu": m.fvu, "l0": m.l0, "dead_fraction": m.dead_fraction,
                                           "n_vectors": m.n_tokens}

        return {"site": self.site, "n_features": self.n_features, "k": self.k, "steps": self.steps,
                "train": row(self.train), "held_out": row(self.held_out), "train_ids": list(self.train_ids),
                "held_out_ids": list(self.held_out_ids)}


def _rows(arrays: Any, index: list[int], counts: list[int] | None) -> torch.Tensor:
    """The activation vectors of the prompts in ``index``: ``(n, D)``."""
    import numpy as np
    import torch

    if counts is None:
        picked = arrays[index]  # (n, [P,] D)
    else:
        starts = np.concatenate([[0], np.cumsum(counts)])
        picked = np.concatenate([arrays[starts[i] : starts[i + 1]] for i in index]) if index else arrays[:0]
    return torch.from_numpy(np.ascontiguousarray(picked)).reshape(-1, arrays.shape[-1])


def train_sae_on_prompts(backend: Any, prompts: Sequence[str], prompt_ids: Sequence[str], site: str, *,
                         config: SAEConfig, positions: Sequence[int] | Literal["all"] = "all",
                         eval_fraction: float = 0.2, batch_size: int = 16) -> SAETraining:
    """Capture ``site`` for ``prompts``, train on a seeded share of them, judge on the rest."""
    name = str(parse_site(site))
    if config.k > config.n_features:
        raise InterpError(f"k={config.k} is more than the SAE's {config.n_features} features")
    captured = capture_prompts(backend, prompts, prompt_ids, [name], positions=positions, batch_size=batch_size)
    arrays = captured.arrays[name]
    train_idx, held_idx = split_prompts(len(prompts), eval_fraction, config.seed)
    x_train = _rows(arrays, train_idx, captured.token_counts)
    sae = train_sae(x_train, config)
    held = None
    if held_idx:
        held = sae_metrics(sae, _rows(arrays, held_idx, captured.token_counts))
    steps = config.epochs * math.ceil(x_train.shape[0] / config.batch_size)
    return SAETraining(sae, name, config.n_features, config.k, sae_metrics(sae, x_train), held,
                       tuple(prompt_ids[i] for i in train_idx), tuple(prompt_ids[i] for i in held_idx), steps)


@dataclass(frozen=True)
class FeaturePrompt:
    """A prompt where a feature fires: its largest activation there and the token it peaks on."""

    prompt_id: str
    activation: float
    token: str
    prompt: str


@dataclass(frozen=True)
class FeatureTop:
    """A feature, how many prompts it fires on, and the prompts where it fires hardest."""

    feature: int
    n_active: int
    n_prompts: int
    max_activation: float
    prompts: tuple[FeaturePrompt, ...]


def _short(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def feature_top_prompts(backend: Any, sae: Any, site: str, prompts: Sequence[str], prompt_ids: Sequence[str], *,
                        top: int = 10, features: Sequence[int] | None = None, n_features: int = 10,
                        batch_size: int = 16) -> list[FeatureTop]:
    """For each feature (``features``, else the ``n_features`` with the largest activations), the
    ``top`` prompts ranked by its largest activation on any of their tokens."""
    import torch

    if len(prompts) != len(prompt_ids):
        raise InterpError(f"{len(prompts)} prompts but {len(prompt_ids)} ids")
    n_total = int(sae.W_dec.shape[0])
    for f in features or ():
        if not 0 <= f < n_total:
            raise InterpError(f"feature {f} does not exist; the SAE has {n_total} features (0-{n_total - 1})")
    name = str(parse_site(site))
    tokenizer = backend.tokenizer
    got = capture_tokens(backend.model, tokenizer, render_prompts(tokenizer, prompts), [name], batch_size=batch_size)
    device = sae.W_dec.device
    peak = torch.zeros(len(prompts), n_total)  # (N, F): each feature's largest activation per prompt
    where = torch.zeros(len(prompts), n_total, dtype=torch.long)  # (N, F): the token it peaks on
    with torch.no_grad():
        for i in range(len(prompts)):
            z = sae.encode(got.data[name][got.rows(i)].to(device)).cpu()  # (T_i, F)
            peak[i], where[i] = z.max(dim=0)
    if features is None:
        best = peak.max(dim=0).values  # (F,)
        ranked = [int(f) for f in best.argsort(descending=True, stable=True) if best[f] > 0]
        chosen = ranked[:n_features]
    else:
        chosen = list(dict.fromkeys(int(f) for f in features))
    tops = []
    for f in chosen:
        col = peak[:, f]
        order = [int(i) for i in col.argsort(descending=True, stable=True) if col[i] > 0][:top]
        rows = tuple(FeaturePrompt(prompt_ids[i], float(col[i]),
                                   tokenizer.decode([got.token_ids[i][int(where[i, f])]]), _short(prompts[i]))
                     for i in order)
        tops.append(FeatureTop(f, int((col > 0).sum()), len(prompts), float(col.max()), rows))
    return tops


def features_markdown(tops: Sequence[FeatureTop]) -> str:
    """One table per feature: its top prompts with their peak activation and token."""
    if not tops:
        return "No feature fires on these prompts."
    lines: list[str] = []
    for t in tops:
        lines += [f"feature {t.feature}: fires on {t.n_active}/{t.n_prompts} prompts, max {t.max_activation:.4g}", "",
                  "| rank | prompt id | activation | peak token | prompt |", "|---|---|---|---|---|"]
        lines += [f"| {r} | {p.prompt_id} | {p.activation:.4g} | {p.token!r} | {p.prompt.replace('|', '/')} |"
                  for r, p in enumerate(t.prompts, start=1)]
        lines.append("")
    return "\n".join(lines).rstrip()
