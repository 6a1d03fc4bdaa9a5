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

__all__ = ["cross_entropy", "last_logprobs", "next_token_kl", "refusal_score", "refusal_token_ids"]

REFUSAL_STARTS = ("I'm sorry", "I cannot", "I can't", "I apologize", "Sorry", "As an AI", "Unfortunately")


def refusal_token_ids(tokenizer: Any, starts: Sequence[str] = REFUSAL_STARTS) -> list[int]:
    """The first token of each refusal opening, deduplicated."""
    ids = []
    for phrase in starts:
        tok = tokenizer.encode(phrase, add_special_tokens=False)
        if tok and tok[0] not in ids:
            ids.append(tok[0])
    return ids


def last_logprobs(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32,
                  intervention: AbstractContextManager[Any] | None = None) -> torch.Tensor:
    """Log-probabilities of the next token after each text: ``(N, V)`` float32."""
    import torch

    out = []
    with torch.inference_mode(), (intervention or nullcontext()):  # a context manager enters once
        for start in range(0, len(texts), batch_size):
            enc = encode_batch(tokenizer, texts[start : start + batch_size], str(next(model.parameters()).device))
            logits = _forward(model, enc).logits[:, -1, :].float()  # (B, V)
            out.append(torch.log_softmax(logits, dim=-1).cpu())
    return torch.cat(out)


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

    result: list[float] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = encode_batch(tokenizer, chunk, device)
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
        # a target counts when it and the token predicting it are both real: with left padding,
        # a row's first token would otherwise be "predicted" from a pad position
        scored = (mask[:, 1:] & mask[:, :-1]).bool()  # (B, T-1)
        if prefixes is not None:
            T = ids.shape[1]
            lengths = mask.sum(dim=1)
            for row, prefix in enumerate(prefixes[start : start + batch_size]):
                n_prefix = len(encode_text(tokenizer, prefix))  # counts the BOS token, as the text's ids do
                first = int(T - lengths[row]) + n_prefix  # padded column of the first scored token
                scored[row, : max(0, first - 1)] = False
        out = model(**enc, use_cache=False)
        logits = out.logits[:, :-1, :].float()  # (B, T-1, V)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        for row in range(ids.shape[0]):
            sel = scored[row]
            result.append(float(nll[row][sel].mean()) if bool(sel.any()) else float("nan"))
    return result
