"""Cheap forward-pass measures used to choose interventions and to price them.

* `refusal_score`: the log-odds that the first reply token starts a refusal ("I'm sorry", "I
  cannot", "As an AI", ...), the selection metric of Arditi et al. 2024 (their appendix on
  direction selection); one forward pass, last position only.
* `next_token_kl`: KL(base || intervened) of the first reply token's distribution.
* `cross_entropy`: mean next-token cross-entropy per text, optionally only after a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from refute.interp._capture import _forward, encode_batch
from refute.models._encode import encode_text

if TYPE_CHECKING:
    import torch

__all__ = ["by_length", "cross_entropy", "last_logprobs", "next_token_kl", "refusal_score", "refusal_token_ids"]

REFUSAL_STARTS = ("I'm sorry", "I cannot", "I can't", "I apologize", "Sorry", "As an AI", "Unfortunately")


def refusal_token_ids(tokenizer: Any, starts: Sequence[str] = REFUSAL_STARTS) -> list[int]:
    """The first token of each refusal opening, deduplicated."""
    ids = []
    for phrase in starts:
        tok = tokenizer.encode(phrase, add_special_tokens=False)
        if tok and tok[0] not in ids:
            ids.append(tok[0])
    return ids


def by_length(tokenizer: Any, texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar token length, so that little is spent on padding.

    Every text's result is independent of its batch, so callers put results back in input order.
    """
    lengths = [len(encode_text(tokenizer, t)) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def last_logprobs(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32,
                  intervention: AbstractContextManager[Any] | None = None) -> torch.Tensor:
    """Log-probabilities of the next token after each text: ``(N, V)`` float32."""
    import torch

    out: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    device = str(next(model.parameters()).device)
    with torch.inference_mode(), (intervention or nullcontext()):  # a context manager enters once
        for batch in by_length(tokenizer, texts, batch_size):
            enc = encode_batch(tokenizer, [texts[i] for i in batch], device)
            logits = _forward(model, enc).logits[:, -1, :].float()  # (B, V)
            for i, row in zip(batch, torch.log_softmax(logits, dim=-1).cpu(), strict=True):
                out[i] = row
    return torch.stack(out)


def refusal_score(logprobs: torch.Tensor, refusal_ids: Sequence[int]) -> torch.Tensor:
    """Per prompt: log p(refusal start) - log p(anything else), ``(N,)``."""
    import torch

    lp_ref = torch.logsumexp(logprobs[:, list(refusal_ids)], dim=-1)
    lp_other = torch.log1p(-lp_ref.exp().clamp(max=1 - 1e-6))
    return lp_ref - lp_other


def next_token_kl(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """KL(base || other) per prompt from two ``(N, V)`` log-probability tensors, ``(N,)``."""
    return (base.exp() * (base - other)).sum(dim=-1)


def cross_entropy(model: Any, tokenizer: Any, texts: Sequence[str], *,
                  prefixes: Sequence[str] | None = None, batch_size: int = 16,
                  intervention: AbstractContextManager[Any] | None = None) -> list[float]:
    """Mean next-token cross-entropy (nats) of each text; with ``prefixes``, of the tokens after them.

    Texts are tokenized as generation tokenizes a rendered prompt (`refute.models.encode_texts`:
    a base model's BOS token first); a text's first token is not predicted.
    """
    import torch

    if prefixes is not None and len(prefixes) != len(texts):
        raise ValueError("cross_entropy: prefixes and texts differ in length")
    device = str(next(model.parameters()).device)
    with torch.inference_mode(), (intervention or nullcontext()):  # a context manager enters once
        return _cross_entropy(model, tokenizer, texts, prefixes, batch_size, device)


def _cross_entropy(model: Any, tokenizer: Any, texts: Sequence[str], prefixes: Sequence[str] | None,
                   batch_size: int, device: str) -> list[float]:
    import torch

    result = [float("nan")] * len(texts)
    for batch in by_length(tokenizer, texts, batch_size):
        enc = encode_batch(tokenizer, [texts[i] for i in batch], device)
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
        # a target counts when it and the token predicting it are both real: with left padding,
        # a row's first token would otherwise be "predicted" from a pad position
        scored = (mask[:, 1:] & mask[:, :-1]).bool()  # (B, T-1)
        if prefixes is not None:
            T = ids.shape[1]
            lengths = mask.sum(dim=1)
            for row, i in enumerate(batch):
                n_prefix = len(encode_text(tokenizer, prefixes[i]))  # counts the BOS token, as the text's ids do
                first = int(T - lengths[row]) + n_prefix  # padded column of the first scored token
                scored[row, : max(0, first - 1)] = False
        # Rows are left-padded, so every scored target lies in the last `keep` columns: the
        # vocabulary projection (most of the cost for a large vocabulary) skips the prefixes.
        cols = scored.any(dim=0).nonzero()
        keep = int(scored.shape[1] - cols[0]) if len(cols) else 1
        logits = _forward(model, enc, logits_to_keep=keep + 1).logits[:, -keep - 1 : -1, :].float()  # (B, keep, V)
        targets, scored = ids[:, -keep:], scored[:, -keep:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        for row, i in enumerate(batch):
            sel = scored[row]
            if bool(sel.any()):
                result[i] = float(nll[row][sel].mean())
    return result
