"""TopK sparse autoencoders on stored activations (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders"), with the usual health metrics and feature interventions as causal tests.

``z = TopK(W_enc (x - b_dec) + b_enc)``, ``x_hat = W_dec z + b_dec``; decoder columns kept at unit
norm. Training streams shards from an `ActivationStore` (or batches of an in-memory tensor) with
a seeded ``torch.Generator``; nothing touches global random state.

Metrics: FVU (fraction of variance unexplained), L0 (active features per token; k for TopK),
dead fraction (features that never fired on the evaluation set), and CE loss recovered:
``(CE_zero - CE_sae) / (CE_zero - CE_clean)`` with the SAE's reconstruction spliced into the site.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from refute.interp._capture import ActivationStore, _forward, encode_batch
from refute.interp._errors import InterpError
from refute.interp._scores import cross_entropy
from refute.interp._sites import HookFn, Site, hooks, parse_site

if TYPE_CHECKING:
    import torch

__all__ = [
    "SAEConfig",
    "SAEMetrics",
    "TopKSAE",
    "ce_loss_recovered",
    "feature_hooks",
    "sae_metrics",
    "top_contexts",
    "train_sae",
]


@dataclass(frozen=True)
class SAEConfig:
    n_features: int = 4096
    k: int = 32
    lr: float = 4e-4
    epochs: int = 1
    batch_size: int = 1024
    seed: int = 0


def _module() -> Any:
    import torch

    class _TopKSAE(torch.nn.Module):
        def __init__(self, d_model: int, n_features: int, k: int, generator: torch.Generator) -> None:
            super().__init__()
            w = torch.randn(d_model, n_features, generator=generator)
            w = w / w.norm(dim=0, keepdim=True)
            self.W_dec = torch.nn.Parameter(w.T.clone())  # (F, D)
            self.W_enc = torch.nn.Parameter(w.clone())  # (D, F)
            self.b_enc = torch.nn.Parameter(torch.zeros(n_features))
            self.b_dec = torch.nn.Parameter(torch.zeros(d_model))
            self.k = k

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            pre = (x - self.b_dec) @ self.W_enc + self.b_enc  # (N, F)
            top = pre.topk(self.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return z @ self.W_dec + self.b_dec  # (N, D)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = self.encode(x)
            return self.decode(z), z

    return _TopKSAE


def TopKSAE(d_model: int, n_features: int, k: int, seed: int = 0) -> Any:
    """A fresh TopK SAE (an ``nn.Module``) seeded by ``seed``."""
    import torch

    return _module()(d_model, n_features, k, torch.Generator().manual_seed(seed))


def _batches(source: ActivationStore | torch.Tensor, site: str | Site | None, batch_size: int,
             generator: Any) -> Iterator[torch.Tensor]:
    import torch

    chunks: Iterable[torch.Tensor]
    if isinstance(source, ActivationStore):
        if site is None:
            raise InterpError("training from an ActivationStore needs the site to read")
        chunks = source.iter_batches(site)
    else:
        chunks = [source]
    for chunk in chunks:
        flat = chunk.reshape(-1, chunk.shape[-1]).float()  # (N*P, D)
        perm = torch.randperm(flat.shape[0], generator=generator)
        for start in range(0, flat.shape[0], batch_size):
            yield flat[perm[start : start + batch_size]]


def train_sae(source: ActivationStore | torch.Tensor, config: SAEConfig | None = None, *,
              site: str | Site | None = None) -> Any:
    """Train a TopK SAE on ``source`` (a store, streamed shard by shard, or an ``(N, [P,] D)`` tensor)."""
    import torch

    cfg = config or SAEConfig()
    g = torch.Generator().manual_seed(cfg.seed)
    first = next(_batches(source, site, cfg.batch_size, torch.Generator().manual_seed(cfg.seed)))
    sae = _module()(first.shape[-1], cfg.n_features, cfg.k, g)
    with torch.no_grad():
        sae.b_dec.copy_(first.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    with torch.enable_grad():
        for _ in range(cfg.epochs):
            for x in _batches(source, site, cfg.batch_size, g):
                x_hat, _ = sae(x)
                loss = ((x_hat - x) ** 2).sum(-1).mean() / ((x - x.mean(0)) ** 2).sum(-1).mean().clamp_min(1e-8)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    sae.W_dec.data /= sae.W_dec.data.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return sae.eval()


@dataclass(frozen=True)
class SAEMetrics:
    fvu: float
    l0: float
    dead_fraction: float
    n_tokens: int


def sae_metrics(sae: Any, x: torch.Tensor) -> SAEMetrics:
    """FVU, mean L0 and the fraction of features never active on ``x`` (``(N, [P,] D)``)."""
    import torch

    flat = x.reshape(-1, x.shape[-1]).float()
    with torch.no_grad():
        x_hat, z = sae(flat)
    fvu = float(((flat - x_hat) ** 2).sum() / ((flat - flat.mean(0)) ** 2).sum().clamp_min(1e-12))
    active = (z > 0)
    return SAEMetrics(fvu, float(active.sum(-1).float().mean()), float((~active.any(0)).float().mean()),
                      int(flat.shape[0]))


def _replace_with(fn: Any) -> HookFn:
    def hook(x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return fn(x.reshape(-1, shape[-1]).float()).reshape(shape).to(x.dtype)

    return hook


def ce_loss_recovered(model: Any, tokenizer: Any, sae: Any, site: str | Site, texts: Sequence[str]) -> dict[str, float]:
    """CE with the site clean, replaced by the SAE's reconstruction, and zeroed; and the share recovered."""
    import torch

    s = parse_site(site)

    def mean(v: list[float]) -> float:
        return float(sum(v) / len(v))

    clean = mean(cross_entropy(model, tokenizer, texts))
    with torch.no_grad():
        recon = mean(cross_entropy(model, tokenizer, texts,
                                   intervention=hooks(model, {s: _replace_with(lambda x: sae(x)[0])})))
        zero = mean(cross_entropy(model, tokenizer, texts,
                                  intervention=hooks(model, {s: lambda x: torch.zeros_like(x)})))
    span = zero - clean
    return {"ce_clean": clean, "ce_sae": recon, "ce_zero": zero,
            "recovered": (zero - recon) / span if abs(span) > 1e-9 else float("nan")}


def top_contexts(model: Any, tokenizer: Any, sae: Any, site: str | Site, texts: Sequence[str], feature: int,
                 *, n: int = 10, window: int = 8) -> list[tuple[float, str]]:
    """The ``n`` token contexts (up to ``window`` tokens before) where ``feature`` fires hardest."""
    import torch

    found: list[tuple[float, str]] = []
    s = parse_site(site)
    for text in texts:
        enc = encode_batch(tokenizer, [text])
        got: dict[str, torch.Tensor] = {}

        def grab(x: torch.Tensor, got: dict[str, torch.Tensor] = got) -> None:
            got["x"] = x[0].float()  # (T, D)

        with torch.no_grad(), hooks(model, {s: grab}):
            _forward(model, enc)
        with torch.no_grad():
            acts = sae.encode(got["x"])[:, feature]  # (T,)
        ids = enc["input_ids"][0].tolist()
        for pos in range(len(ids)):
            if acts[pos] > 0:
                ctx = tokenizer.decode(ids[max(0, pos - window) : pos]) + "[[" + tokenizer.decode([ids[pos]]) + "]]"
                found.append((float(acts[pos]), ctx))
    return sorted(found, key=lambda t: -t[0])[:n]


def feature_hooks(sae: Any, site: str | Site, features: Sequence[int],
                  value: float | Sequence[float | None] | None = 0.0) -> dict[Site, HookFn]:
    """Ablate (``value=0``) or clamp (``value=c``) SAE features at a site, keeping the SAE's error term.

    ``x <- x + W_dec[f] * (value - z_f)`` for each feature, so everything the SAE does not explain
    stays as it was. ``value`` is one value for every feature or one per feature (None: ablate).
    Use with `hooks` or wrap in a `Variant` to measure the behavioural effect.
    """
    import torch

    idx = torch.as_tensor(list(features), dtype=torch.long)
    values = list(value) if isinstance(value, Sequence) else [value] * len(idx)
    if len(values) != len(idx):
        raise InterpError(f"feature_hooks: {len(values)} values for {len(idx)} features")
    targets = torch.tensor([0.0 if v is None else float(v) for v in values])  # (k,)

    def edit(x: torch.Tensor) -> torch.Tensor:
        z = sae.encode(x)[:, idx]  # (N, k)
        target = targets.to(device=z.device, dtype=z.dtype).expand_as(z)
        return x + (target - z) @ sae.W_dec[idx]

    return {parse_site(site): _replace_with(lambda x: edit(x).detach())}
