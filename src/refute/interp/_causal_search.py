"""Choosing the refusal direction on validation prompts without ablating every candidate.

The exhaustive search of Arditi et al. 2024 ablates each candidate direction (layers x positions)
in a full forward pass over the harmful validation prompts and ranks the candidates by the refusal
score that remains. That is one forward pass per candidate, most of `refute interp causal`'s time.
The selection rule stays the same here (rank by the exact ablation score; down that ranking, the
first candidate that passes the filters); what changes is how much of the ranking is computed:

1. **Estimate** every candidate's ablation score at once, to first order (attribution patching,
   Nanda 2023; Syed, Rager and Conmy 2023): one forward and backward pass over the harmful
   validation prompts gives the gradient ``g`` of the mean refusal score at every residual write
   (the embeddings and each attention and MLP output). Ablating a unit direction ``r`` changes each
   write ``x`` by ``-(x . r) r``, so the score changes by about ``-r^T M r`` with
   ``M = sum over writes and tokens of g x^T``: a ``D x D`` matrix, then a quadratic form per
   candidate. The same pass gives the clean log-probabilities of those prompts.
2. **Screen** candidates exactly, best estimate first. After at least ``min_screen`` of them, a
   line ``exact = a + b * estimate`` is fitted on the screened ones; an unscreened candidate can
   still matter only while ``a + b * estimate - margin * rms`` (its optimistic exact score) is below
   the exact score being decided. Screening stops when no unscreened candidate can.
3. **Filters** go down the exact ranking as before (KL, addition, then the dear CE check); before a
   candidate is tried, any unscreened candidate that could rank above it is screened first, so
   the candidate the filters accept is, by the bound, the one the exhaustive search would accept.

``exhaustive=True`` screens every candidate, as before. Every candidate's estimate, and the exact
score of each screened one, are kept in the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from refute.interp._capture import _forward, encode_batch
from refute.interp._directions import Direction, ablate, every_write
from refute.interp._scores import by_length, last_logprobs, refusal_score
from refute.interp._sites import Site, find_layers, hooks

if TYPE_CHECKING:
    import torch

__all__ = ["Search", "ablation_estimates", "exact_scores"]

Key = tuple[int, int]  # (layer, position)


def ablation_estimates(model: Any, tokenizer: Any, texts: Sequence[str], refusal_ids: Sequence[int],
                       candidates: dict[Key, Direction], *, batch_size: int = 8
                       ) -> tuple[dict[Key, float], torch.Tensor]:
    """First-order change of the mean refusal score of ``texts`` under each candidate's ablation,
    and the clean next-token log-probabilities of ``texts`` ``(N, V)``, from one forward and backward
    pass per batch (small batches: the backward pass keeps every layer's activations)."""
    import torch

    D = next(iter(candidates.values())).vector.shape[-1]
    M = torch.zeros(D, D, dtype=torch.float32)
    clean: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    device = str(next(model.parameters()).device)
    n_layers = len(find_layers(model))
    for batch in by_length(tokenizer, texts, batch_size):
        enc = encode_batch(tokenizer, [texts[i] for i in batch], device)
        writes: list[torch.Tensor] = []

        def keep(x: torch.Tensor, writes: list[torch.Tensor] = writes) -> torch.Tensor:
            if not writes:  # the embeddings: a leaf, so the graph exists whatever requires_grad says
                x = x.detach().requires_grad_(True)
            writes.append(x)
            return x

        sites = {Site("resid_pre", 0): keep}
        sites |= {Site(k, i): keep for i in range(n_layers) for k in ("attn_out", "mlp_out")}
        with torch.enable_grad(), hooks(model, sites):
            logprobs = torch.log_softmax(_forward(model, enc).logits[:, -1, :].float(), dim=-1)
            score = refusal_score(logprobs, refusal_ids).sum() / len(texts)
            grads = torch.autograd.grad(score, writes, allow_unused=True)
        mask = enc["attention_mask"].bool()
        for x, g in zip(writes, grads, strict=True):
            if g is not None:
                M += g[mask].float().T @ x.detach()[mask].float()
        for i, row in zip(batch, logprobs.detach().cpu(), strict=True):
            clean[i] = row
    estimates = {}
    for key, d in candidates.items():
        norm = float(d.vector.norm())
        # a zero difference in means (identical tokens at that position, as at the embeddings of a
        # chat template's last tokens) is ablated as nothing: exactly no change
        estimates[key] = float(-(d.vector.float() @ M @ d.vector.float())) / norm**2 if norm > 0 else 0.0
    return estimates, torch.stack(clean)


@dataclass
class Search:
    """Exact ablation scores computed lazily, best estimate first, until the ranking is decided.

    ``score(directions) -> scores`` gives the exact mean refusal score of the harmful validation
    prompts under each direction's ablation (``per_pass`` directions per call); ``base`` is their
    clean score.
    """

    candidates: dict[Key, Direction]
    estimates: dict[Key, float]
    base: float
    score: Callable[[list[Direction]], list[float]]
    exhaustive: bool = False
    min_screen: int = 8
    margin: float = 3.0
    per_pass: int = 1
    on_screen: Callable[[int], None] | None = None
    exact: dict[Key, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.order = sorted(self.estimates, key=lambda k: self.estimates[k])

    def _screen_next(self) -> bool:
        keys = [k for k in self.order if k not in self.exact][: self.per_pass]
        if not keys:
            return False
        for key, value in zip(keys, self.score([self.candidates[k] for k in keys]), strict=True):
            self.exact[key] = value
        if self.on_screen is not None:
            self.on_screen(len(keys))
        return True

    def fit(self) -> tuple[float, float, float]:
        """``exact ~ a + b * (base + estimate)`` on the screened candidates, and the RMS residual."""
        import numpy as np

        x = np.array([self.base + self.estimates[k] for k in self.exact])
        y = np.array([self.exact[k] for k in self.exact])
        b = float(np.cov(x, y, bias=True)[0, 1] / x.var()) if x.var() > 0 else 0.0
        a = float(y.mean() - b * x.mean())
        rms = float(np.sqrt(((y - a - b * x) ** 2).sum() / max(1, len(x) - 2)))
        return a, b, rms

    def optimistic(self, key: Key) -> float:
        """The lowest exact score an unscreened candidate may plausibly have, by the fitted line."""
        a, b, rms = self.fit()
        return a + max(b, 0.0) * (self.base + self.estimates[key]) - self.margin * rms

    def undecided(self, threshold: float) -> bool:
        """Could an unscreened candidate have an exact score at or below ``threshold``?"""
        rest = [k for k in self.order if k not in self.exact]
        if not rest:
            return False
        if self.exhaustive or len(self.exact) < self.min_screen:
            return True
        return any(self.optimistic(k) <= threshold for k in rest)

    def ranked(self) -> list[Key]:
        return sorted(self.exact, key=lambda k: self.exact[k])

    def next_to_try(self, tried: set[Key]) -> Key | None:
        """The best-ranked screened candidate not yet tried, once no unscreened one can beat it."""
        while True:
            left = [k for k in self.ranked() if k not in tried]
            if left and not self.undecided(self.exact[left[0]]):
                return left[0]
            if not self._screen_next():
                return left[0] if left else None

    def summary(self) -> dict[str, Any]:
        from scipy.stats import spearmanr

        a, b, rms = self.fit() if len(self.exact) >= 2 else (math.nan, math.nan, math.nan)
        screened = list(self.exact)
        rho = (float(spearmanr([self.estimates[k] for k in screened], [self.exact[k] for k in screened]).statistic)
               if len(screened) >= 3 else math.nan)
        return {
            "method": "exhaustive" if self.exhaustive else "first-order estimate, then exact screening until decided",
            "candidates": len(self.estimates), "screened": len(screened),
            "min_screen": self.min_screen, "margin_rms": self.margin, "per_pass": self.per_pass,
            "fit": {"intercept": a, "slope": b, "rms": rms}, "rank_correlation": rho,
        }


def exact_scores(model: Any, tokenizer: Any, texts: Sequence[str], refusal_ids: Sequence[int],
                 batch_size: int) -> Callable[[list[Direction]], list[float]]:
    """The exact mean refusal score of ``texts`` under each direction's ablation, as a function.

    Several directions share one forward pass: the prompts are repeated once per direction and
    each copy has its own direction projected out (on a CPU this is no faster than one pass per
    direction; on a GPU it fills the batch).
    """
    import torch


    def score(directions: list[Direction]) -> list[float]:
        if len(directions) == 1:
            lp = last_logprobs(model, tokenizer, texts, batch_size=batch_size,
                               intervention=ablate(model, directions[0]))
            return [float(refusal_score(lp, refusal_ids).mean())]
        units = torch.stack([d.vector.float() / d.vector.float().norm().clamp_min(1e-12) for d in directions])
        K, n = len(directions), len(texts)
        rows = units.repeat_interleave(n, dim=0)  # (K * n, D): copy k of the prompts gets direction k

        def project_out(x: torch.Tensor, start: list[int]) -> torch.Tensor:
            r = rows[start[0] : start[0] + x.shape[0]].to(x.device)  # (B, D)
            proj = torch.einsum("btd,bd->bt", x.float(), r)
            return x - (proj[..., None] * r[:, None, :]).to(x.dtype)

        lp = _repeated_logprobs(model, tokenizer, texts, K, batch_size, project_out)
        return [float(refusal_score(lp[k * n : (k + 1) * n], refusal_ids).mean()) for k in range(K)]

    return score


def _repeated_logprobs(model: Any, tokenizer: Any, texts: Sequence[str], copies: int, batch_size: int,
                       fn: Callable[[torch.Tensor, list[int]], torch.Tensor]) -> torch.Tensor:
    """Last-position log-probabilities of ``copies`` copies of ``texts`` (copy-major), with ``fn(x,
    [first row])`` applied at every ablation site of each batch."""
    import torch


    device = str(next(model.parameters()).device)
    enc = encode_batch(tokenizer, texts, device)
    big = {k: v.repeat(copies, 1) for k, v in enc.items()}
    start = [0]
    out = []
    with torch.inference_mode(), hooks(model, every_write(model, lambda x: fn(x, start))):
        for s in range(0, big["input_ids"].shape[0], batch_size * copies):
            start[0] = s
            part = {k: v[s : s + batch_size * copies] for k, v in big.items()}
            out.append(torch.log_softmax(_forward(model, part).logits[:, -1, :].float(), dim=-1).cpu())
    return torch.cat(out)
