"""Linear probes on captured activations, with intervals, splits and a layer sweep.

* ``logistic``: L2-regularized logistic regression on standardized features
  (`refute.stats.logistic_regression`: penalty ``l2 / 2 * |w|^2`` on the summed log loss, i.e.
  scikit-learn's ``C = 1 / l2``); the strength is chosen on the validation split.
* ``diff_means``: project onto the difference of class means; threshold at the midpoint
  (the probe that needs no fitting, and the one a difference-in-means direction implies).

Metrics are AUROC (Mann-Whitney) and accuracy, each a `refute.stats.Estimate` with a percentile
bootstrap interval over examples, on the test split and on any out-of-distribution sets. A probe that separates
classes is a correlational finding; `refute.interp.run_causal` is how a direction earns a causal claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from refute.interp._errors import InterpError
from refute.interp._svg import line_plot, write_svg
from refute.stats import Estimate, logistic_regression
from refute.stats._bootstrap import bootstrap_statistic, percentile_interval

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "Probe",
    "ProbeFile",
    "ProbeKind",
    "ProbeMetrics",
    "auroc",
    "evaluate_probe",
    "fit_probe",
    "layer_sweep",
    "split_indices",
]

ProbeKind = Literal["logistic", "diff_means"]


def split_indices(n: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                  seed: int = 0) -> dict[str, Any]:
    """A seeded permutation of ``range(n)`` cut into train / val / test index arrays."""
    import numpy as np

    if abs(sum(fractions) - 1.0) > 1e-9:
        raise InterpError(f"split fractions {fractions} must sum to 1")
    perm = np.random.default_rng(seed).permutation(n)
    a = round(fractions[0] * n)
    b = a + round(fractions[1] * n)
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}


def auroc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve (ties count one half)."""
    import numpy as np
    from scipy.stats import rankdata

    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


_METHOD = "bootstrap-percentile"


@dataclass(frozen=True)
class ProbeMetrics:
    """AUROC and accuracy on one split, each an `Estimate` with its 95% bootstrap interval."""

    split: str
    n: int
    auroc: Estimate
    accuracy: Estimate


def _estimate(d: Mapping[str, Any], n: int) -> Estimate:
    """An `Estimate` from a saved metric (files written before it was one lack the counts)."""
    return Estimate(**{"confidence": 0.95, "method": _METHOD, "n_prompts": n, "n_samples": n, **d})


@dataclass
class Probe:
    """A fitted linear probe: ``score(x) = (x - mean) / std . w + b``; class 1 when ``score > threshold``.

    ``site``, ``position`` and ``model`` say where its activations come from, so a saved probe can
    be run as a scorer (`refute.scorers` ``probe``) on new transcripts.
    """

    kind: ProbeKind
    weight: torch.Tensor  # (D,)
    bias: float
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    l2: float = 0.0
    metrics: dict[str, ProbeMetrics] = field(default_factory=dict)
    site: str | None = None
    position: int = -1
    model: str | None = None
    threshold: float = 0.0

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std) @ self.weight + self.bias

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(score)``: a calibrated probability for ``logistic``, a monotone squash otherwise."""
        return self.score(x).sigmoid()

    def save(self, path: str | Path) -> Path:
        """One ``.safetensors`` file: the tensors, and `ProbeFile` as JSON in its metadata header."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise InterpError(f"{path}: save a probe as a .safetensors file")
        meta = ProbeFile(kind=self.kind, bias=self.bias, l2=self.l2, threshold=self.threshold, site=self.site,
                         position=self.position, model=self.model,
                         metrics={k: asdict(m) for k, m in self.metrics.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.weight, "mean": self.mean, "std": self.std}
        save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, str(path),
                  metadata={"refute_probe": meta.model_dump_json()})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Probe:
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise InterpError(f"no probe at {path}; fit one with `refute interp probe`")
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get("refute_probe")
            if header is None:
                raise InterpError(f"{path} is a safetensors file but not a refute probe (no 'refute_probe' metadata)")
            tensors = {k: f.get_tensor(k) for k in ("weight", "mean", "std")}
        meta = ProbeFile.model_validate_json(header)
        metrics = {k: ProbeMetrics(m["split"], m["n"], _estimate(m["auroc"], m["n"]),
                                   _estimate(m["accuracy"], m["n"]))
                   for k, m in meta.metrics.items()}
        return cls(meta.kind, tensors["weight"], meta.bias, tensors["mean"], tensors["std"], meta.l2, metrics,
                   meta.site, meta.position, meta.model, meta.threshold)


class ProbeFile(BaseModel):
    """What a saved probe records beside its tensors (the safetensors metadata header)."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = 1
    """Format version; a file of another version is refused."""
    kind: ProbeKind
    """How it was fitted: logistic or diff_means."""
    bias: float
    """Added to the projection of standardized activations."""
    l2: float = 0.0
    """L2 strength chosen on validation (logistic only), in `refute.stats.logistic_regression`'s
    convention (``C = 1 / l2``); informational, the score does not use it."""
    threshold: float = 0.0
    """A score above it is class 1 (positive)."""
    site: str | None = None
    """Activation site it reads, e.g. resid_pre.12."""
    position: int = -1
    """Token position within the rendered prompt (-1: the last prompt token)."""
    model: str | None = None
    """Model spec whose activations it was fitted on (hf:..., default, ...)."""
    metrics: dict[str, dict[str, Any]] = {}
    """Per split: n, AUROC and accuracy with their bootstrap intervals."""


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, float]:
    import torch

    fit = logistic_regression(x.double().numpy(), y.long().numpy(), l2=l2, n_classes=2)
    return torch.from_numpy(fit.coef[0]).float(), float(fit.intercept[0])


def fit_probe(x_train: torch.Tensor, y_train: Sequence[int] | torch.Tensor, *, kind: ProbeKind = "logistic",
              x_val: torch.Tensor | None = None, y_val: Sequence[int] | torch.Tensor | None = None,
              l2_grid: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0)) -> Probe:
    """Fit a probe on ``(N, D)`` activations.

    ``l2`` (`refute.stats.logistic_regression`'s convention) is chosen from ``l2_grid`` by
    validation AUROC when val is given, else the grid's middle value is used.
    """
    import torch

    x = x_train.float()
    y = torch.as_tensor(y_train, dtype=torch.float32)
    if set(y.unique().tolist()) != {0.0, 1.0}:
        raise InterpError("a probe needs training examples of both classes (labels 0 and 1)")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    if kind == "diff_means":
        w = z[y == 1].mean(0) - z[y == 0].mean(0)
        w = w / w.norm().clamp_min(1e-12)
        mid = 0.5 * (z[y == 1].mean(0) + z[y == 0].mean(0)) @ w
        return Probe(kind, w, float(-mid), mean, std)
    if kind != "logistic":
        raise InterpError(f"unknown probe kind '{kind}': use logistic or diff_means")
    best: Probe | None = None
    best_auc = -1.0
    grid = l2_grid if x_val is not None and y_val is not None else l2_grid[len(l2_grid) // 2:][:1]
    for l2 in grid:
        w, b = _fit_logistic(z, y, l2)
        probe = Probe(kind, w, b, mean, std, l2)
        if x_val is None or y_val is None:
            return probe
        auc = auroc(probe.score(x_val).numpy(), torch.as_tensor(y_val).numpy())
        if auc > best_auc:
            best, best_auc = probe, auc
    if best is None:
        raise InterpError("no L2 strength to try: l2_grid is empty")
    return best


def _boot(stat: Any, scores: np.ndarray, labels: np.ndarray, seed: int, n_boot: int) -> Estimate:
    import numpy as np

    boot = bootstrap_statistic(stat, scores, labels, n_boot=n_boot, rng=np.random.default_rng(seed))
    boot = boot[~np.isnan(boot)]  # resamples with one class only have no AUROC
    n = len(labels)
    low, high = percentile_interval(boot, 0.95) if boot.size else (float("nan"), float("nan"))
    return Estimate(stat(scores, labels), float(low), float(high), 0.95, _METHOD, n, n)


def evaluate_probe(probe: Probe, x: torch.Tensor, y: Sequence[int] | torch.Tensor, split: str = "test",
                   *, seed: int = 0, n_boot: int = 1000) -> ProbeMetrics:
    """AUROC and accuracy with bootstrap intervals; stored in ``probe.metrics[split]``."""
    import torch

    s = probe.score(x).detach().numpy()
    labels = torch.as_tensor(y).numpy().astype(int)

    def acc(sc: np.ndarray, lb: np.ndarray) -> float:
        return float(((sc > 0).astype(int) == lb).mean())

    m = ProbeMetrics(split, len(labels), _boot(auroc, s, labels, seed, n_boot),
                     _boot(acc, s, labels, seed + 1, n_boot))
    probe.metrics[split] = m
    return m


@dataclass(frozen=True)
class SweepRow:
    site: str
    kind: str
    metrics: dict[str, ProbeMetrics]
    probe: Probe | None = field(default=None, repr=False, compare=False)


@dataclass
class LayerSweep:
    """A probe per site; `to_markdown` for a table, `plot` for test AUROC by layer."""

    rows: list[SweepRow]

    def to_markdown(self) -> str:
        splits = list(self.rows[0].metrics) if self.rows else []
        lines = ["| site | " + " | ".join(f"{s} AUROC | {s} accuracy" for s in splits) + " |",
                 "|---" * (1 + 2 * len(splits)) + "|"]
        for r in self.rows:
            cells = " | ".join(f"{r.metrics[s].auroc} | {r.metrics[s].accuracy}" for s in splits)
            lines.append(f"| {r.site} | {cells} |")
        return "\n".join(lines)

    def to_svg(self, split: str = "test") -> str:
        """AUROC by site on ``split`` with its 95% interval, as a self-contained SVG."""
        if not self.rows or split not in self.rows[0].metrics:
            raise InterpError(f"no '{split}' metrics to plot; splits: "
                              f"{', '.join(self.rows[0].metrics) if self.rows else 'none'}")
        m = [r.metrics[split].auroc for r in self.rows]
        return line_plot([r.site for r in self.rows], [v.value for v in m], [v.low for v in m],
                         [v.high for v in m], title=f"{self.rows[0].kind} probe by site",
                         y_label=f"{split} AUROC (95% CI)")

    def plot(self, path: str | Path, split: str = "test") -> Path:
        """Write `to_svg` to ``path`` (``.svg``)."""
        return write_svg(self.to_svg(split), path)


def layer_sweep(acts: Mapping[str, torch.Tensor], labels: Sequence[int], *, kind: ProbeKind = "logistic",
                splits: Mapping[str, Any] | None = None,
                ood: Mapping[str, tuple[Mapping[str, torch.Tensor], Sequence[int]]] | None = None,
                seed: int = 0, n_boot: int = 1000) -> LayerSweep:
    """Fit a probe per site on ``acts[site]`` (``(N, D)`` or ``(N, 1, D)``); evaluate on test and OOD.

    ``splits`` maps train/val/test to index arrays (default: `split_indices` 60/20/20);
    ``ood[name] = (acts_by_site, labels)`` are extra evaluation sets from another distribution.
    """
    import torch

    y = torch.as_tensor(list(labels))
    idx = splits or split_indices(len(y), seed=seed)
    rows = []
    for site, x in acts.items():
        x2 = x.reshape(x.shape[0], -1).float() if x.dim() == 3 and x.shape[1] == 1 else x.float()
        if x2.dim() != 2:
            raise InterpError(f"site {site}: probes take one position per prompt, got shape {tuple(x.shape)}")
        probe = fit_probe(x2[idx["train"]], y[idx["train"]], kind=kind, x_val=x2[idx["val"]], y_val=y[idx["val"]])
        evaluate_probe(probe, x2[idx["test"]], y[idx["test"]], "test", seed=seed, n_boot=n_boot)
        for name, (ood_acts, ood_y) in (ood or {}).items():
            xo = ood_acts[site]
            xo = xo.reshape(xo.shape[0], -1) if xo.dim() == 3 else xo
            evaluate_probe(probe, xo, list(ood_y), name, seed=seed, n_boot=n_boot)
        rows.append(SweepRow(site, kind, dict(probe.metrics), probe))
    return LayerSweep(rows)
