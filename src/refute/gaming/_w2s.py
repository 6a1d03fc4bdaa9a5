"""Weak-to-strong generalisation, after Burns et al. (2023), "Weak-to-Strong Generalization:
Eliciting Strong Capabilities With Weak Supervision" (arXiv:2312.09390), with cheap local pieces.

The strong student is a logistic probe on the local model's residual stream (``resid_pre`` of a
middle layer, last prompt token); the weak supervisor is a logistic probe on a deliberately weak
view: a ``weak_dims``-dimensional Gaussian random projection of an earlier layer. Per seed the
texts of a task are split, stratified by label, into

- A: the weak supervisor's training set (ground truth);
- B: the student's training set, labelled by the weak supervisor (and, with ground truth, the
  strong ceiling's);
- C: the test set for all three.

The seed draws the split and the projection. Per seed and task: weak accuracy, strong ceiling
accuracy and weak-to-strong accuracy on C, and PGR = (w2s - weak) / (ceiling - weak), the
performance gap recovered. Activations are captured once per task (forward passes only) and cached
in the output folder as ``w2s-<task>-<digest>.npz``; seeds only refit probes. Accuracies get t
intervals over seeds; PGR is the ratio of the mean accuracies, with a percentile bootstrap over
seeds that resamples all three together. When the ceiling does not beat the supervisor by
``min_gap`` the task does not separate weak and strong and PGR is left out, never divided by
almost zero. Intervals are over seeds: re-splits of the same texts, not new texts.

The layers come from a quick check on the default model (Qwen2.5-Coder-0.5B-Instruct, 24 layers):
a probe on all of ``resid_pre.12`` reaches about 0.99 on sentiment, 0.87 on cities and 0.93 on
harmful-vs-benign; 8-dimensional views of layers up to 8 are at chance on sentiment and cities, and
of layer 10 reach 0.65-0.8. So the strong features are the middle layer, the weak view two below it.

Shipped tasks: ``harmful-vs-benign`` (the built-in ``harmful`` requests against
``benign-lookalike``, requests only), ``sentiment`` (400 made-up one-line reviews, a third with
negation and a third with a change of mind, so word lists do not solve it) and ``cities`` (200
statements "The city of X is in Y.", half true, each city once with its own country and once with
another). Both JSONL files (``text``, ``label``, ``id``) were written from seeded templates.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from refute.datasets import load_dataset
from refute.datasets._loaders import jsonl_objects
from refute.engine import progress_bar
from refute.errors import ConfigError, DatasetError
from refute.gaming._experiments import Context, experiment
from refute.gaming._result import ExperimentResult, Figure, Table
from refute.interp import capture, find_layers, render_prompts
from refute.stats import logistic_regression
from refute.stats._bootstrap import bootstrap_means
from refute.stats._common import t_half_width

__all__ = ["TASKS", "BinaryTask", "PGRSummary", "SeedResult", "W2SSettings", "load_task", "mean_figure", "pgr",
           "pgr_summary", "run_seed", "run_weak_to_strong", "split_abc"]

TASKS: dict[str, str] = {
    "harmful-vs-benign": "Harmful requests (label 1) against benign look-alikes (0); built-in datasets.",
    "sentiment": "Made-up one-line reviews, positive (1) or negative (0), with negations and changes of mind.",
    "cities": "'The city of X is in Y.': true (1) or false (0).",
}
_FILES = {"sentiment": "w2s_sentiment.jsonl", "cities": "w2s_cities.jsonl"}


class W2SSettings(BaseModel):
    """Settings of the ``weak-to-strong`` experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("default", description="Local hf model spec whose activations are the features.")
    tasks: tuple[str, ...] = Field(("harmful-vs-benign", "sentiment", "cities"), min_length=1,
                                   description=f"Shipped tasks ({', '.join(TASKS)}) or JSONL files with text, label.")
    seeds: int = Field(10, ge=2, le=1000, description="Seeds (a split and a weak projection each); intervals "
                       "are over them.")
    seed: int = Field(0, ge=0, description="First seed; seeds run seed, seed + 1, ...")
    strong_layer: int | None = Field(None, ge=0, description="Strong features: resid_pre of this layer "
                                     "(None: the middle layer, 12 of the default model's 24).")
    weak_layer: int | None = Field(None, ge=0, description="Weak view: resid_pre of this layer (None: "
                                   "n_layers // 12 layers, at least one, below the strong layer: 10 of 24).")
    weak_dims: int = Field(8, ge=1, description="Dimensions of the weak view's random projection.")
    fractions: tuple[float, float, float] = Field((0.3, 0.4, 0.3), description="Shares of split A (weak's "
                                                  "training), B (student's training) and C (test).")
    l2: float = Field(100.0, gt=0, description="L2 strength of every probe (refute.stats.logistic_regression).")
    aux_loss: float = Field(0.0, ge=0, le=1, description="Weight of Burns et al.'s auxiliary confidence loss "
                            "(0: the student imitates the weak labels).")
    limit: int | None = Field(300, ge=4, description="Texts per task at most, half per label (None: all).")
    chat: bool = Field(True, description="Render each text as a user turn with the chat template.")
    batch_size: int = Field(16, ge=1, description="Texts per forward pass when capturing activations.")
    min_gap: float = Field(0.05, ge=0, lt=1, description="Report PGR only where ceiling - weak is at least this.")
    n_boot: int = Field(2000, ge=100, description="Bootstrap resamples of seeds for the PGR interval.")

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) < len(v):
            raise ValueError(f"each task once, got {list(v)}")
        return v

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) <= 0 or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"the three split shares must be positive and sum to 1, got {v}")
        return v


# --- tasks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryTask:
    name: str
    texts: list[str]
    labels: np.ndarray  # (N,) 0/1
    ids: list[str]


def _read_jsonl(text: str, source: str) -> BinaryTask:
    texts, labels, ids = [], [], []
    for i, row in jsonl_objects(text, source):
        t, y = row.get("text"), row.get("label")
        if not isinstance(t, str) or not t.strip():
            raise DatasetError("must be a non-empty string", path=source, line=i, field="text")
        if y not in (0, 1) or isinstance(y, float):
            raise DatasetError(f"must be 0 or 1 (or true/false), got {y!r}", path=source, line=i, field="label")
        texts.append(t)
        labels.append(int(y))
        ids.append(str(row.get("id", i)))
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source).stem)  # figures are named "<task>.weak", ...
    return BinaryTask(name, texts, np.asarray(labels, dtype=np.int64), ids)


def load_task(name: str, limit: int | None = None) -> BinaryTask:
    """A shipped task by name, or a JSONL file (``text``, ``label`` 0/1, optional ``id``); ``limit``
    keeps the first ``limit // 2`` texts of each label in file order (the rest goes to label 0)."""
    if name == "harmful-vs-benign":
        pos, neg = load_dataset("harmful"), load_dataset("benign-lookalike")
        task = BinaryTask(name, [r.prompt for r in (*pos, *neg)],
                          np.asarray([1] * len(pos) + [0] * len(neg), dtype=np.int64), [r.id for r in (*pos, *neg)])
    elif name in _FILES:
        text = resources.files("refute.gaming").joinpath("data", _FILES[name]).read_text(encoding="utf-8")
        task = _read_jsonl(text, _FILES[name])
        task = BinaryTask(name, task.texts, task.labels, task.ids)
    elif Path(name).suffix == ".jsonl":
        if not Path(name).is_file():
            raise ConfigError(f"weak-to-strong task file {name} does not exist")
        task = _read_jsonl(Path(name).read_text(encoding="utf-8"), name)
    else:
        raise ConfigError(f"unknown weak-to-strong task '{name}': use one of {', '.join(TASKS)} "
                          "or the path of a .jsonl file with text and label")
    if limit is not None:
        keep: list[int] = []
        for y, quota in ((1, limit // 2), (0, limit - limit // 2)):
            keep += [int(i) for i in np.flatnonzero(task.labels == y)[:quota]]
        keep.sort()
        task = BinaryTask(task.name, [task.texts[i] for i in keep], task.labels[keep], [task.ids[i] for i in keep])
    return task


# --- the arithmetic -----------------------------------------------------------------------------


def pgr(weak: float, ceiling: float, w2s: float, *, min_gap: float = 1e-9) -> float:
    """Performance gap recovered, ``(w2s - weak) / (ceiling - weak)``; NaN when the ceiling does
    not beat the weak supervisor by ``min_gap`` (the ratio would divide by about zero)."""
    gap = ceiling - weak
    return float("nan") if gap < min_gap else (w2s - weak) / gap


def mean_figure(values: Sequence[float], confidence: float = 0.95, *, bounds: tuple[float, float] = (0.0, 1.0),
                what: str = "t interval") -> Figure:
    """Mean over seeds with a t interval, clipped to ``bounds`` (accuracies by default)."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        raise ConfigError(f"an interval over seeds needs at least 2 seeds, got {n}")
    half = t_half_width(x, confidence)
    m = float(x.mean())
    return Figure(m, max(bounds[0], m - half), min(bounds[1], m + half), n, f"{what} over {n} seeds", confidence)


@dataclass(frozen=True)
class PGRSummary:
    """PGR over seeds (``None`` when undefined: then ``problem`` says why) and the gap it divides by."""

    figure: Figure | None
    gap: Figure
    problem: str = ""


def pgr_summary(weak: Sequence[float], ceiling: Sequence[float], w2s: Sequence[float], *, min_gap: float = 0.05,
                n_boot: int = 2000, rng: np.random.Generator | int = 0, confidence: float = 0.95) -> PGRSummary:
    """PGR of the mean accuracies, with a percentile bootstrap over seeds (each resample takes a
    seed's three accuracies together and recomputes the ratio of means).

    Undefined when the mean gap ``ceiling - weak`` is below ``min_gap``; unbounded (also reported
    as undefined) when more than ``(1 - confidence) / 2`` of the resamples have such a gap.
    """
    acc = np.stack([np.asarray(v, dtype=float) for v in (weak, ceiling, w2s)], axis=1)  # (S, 3)
    n = acc.shape[0]
    gap = mean_figure(acc[:, 1] - acc[:, 0], confidence, bounds=(-1.0, 1.0), what="paired t interval")
    w, c, s = acc.mean(axis=0)
    value = pgr(w, c, s, min_gap=min_gap)
    if math.isnan(value):
        return PGRSummary(None, gap, f"the ceiling beats the weak supervisor by {c - w:.3f} on average, "
                                     f"less than min_gap {min_gap}")
    boot = bootstrap_means(acc, n_boot, np.random.default_rng(rng))  # (B, 3)
    num, den = boot[:, 2] - boot[:, 0], boot[:, 1] - boot[:, 0]
    safe = den >= min_gap
    ratios = np.where(safe, num / np.where(safe, den, 1.0), np.where(num >= 0, np.inf, -np.inf))
    alpha = 1.0 - confidence
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    if not (np.isfinite(low) and np.isfinite(high)):
        return PGRSummary(None, gap, f"{int((~safe).sum())} of {n_boot} resamples of seeds have a gap below "
                                     f"min_gap {min_gap}: PGR's interval is unbounded")
    method = f"ratio of mean accuracies; percentile bootstrap over {n} seeds, {n_boot} resamples"
    return PGRSummary(Figure(value, min(float(low), value), max(float(high), value), n, method, confidence), gap)


# --- one seed -------------------------------------------------------------------------------------


def split_abc(labels: np.ndarray, fractions: tuple[float, float, float], seed: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of splits A, B, C: a seeded permutation of each label's rows cut by ``fractions``."""
    rng = np.random.default_rng([seed, 0])
    parts: list[list[np.ndarray]] = [[], [], []]
    for y in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == y))
        a = round(fractions[0] * rows.size)
        b = a + round(fractions[1] * rows.size)
        for part, chunk in zip(parts, (rows[:a], rows[a:b], rows[b:]), strict=True):
            part.append(chunk)
    out = tuple(np.sort(np.concatenate(p)) for p in parts)
    for name, idx in zip("ABC", out, strict=True):
        if len(set(labels[idx].tolist())) < 2:
            raise ConfigError(f"split {name} has texts of one label only ({labels.size} texts, shares "
                              f"{fractions}); give the task more texts of each label")
    return out[0], out[1], out[2]


@dataclass(frozen=True)
class SeedResult:
    """One seed's accuracies on split C (and how often the weak labels on B were right)."""

    seed: int
    weak: float
    ceiling: float
    w2s: float
    weak_label_accuracy: float
    n_a: int
    n_b: int
    n_c: int


class _Probe:
    """A logistic probe on features standardised by its training set's mean and spread."""

    def __init__(self, x: np.ndarray, y: np.ndarray, l2: float, soft: np.ndarray | None = None) -> None:
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mean) / self.std
        if soft is None:
            fit = logistic_regression(z, y, l2=l2, n_classes=2)
            self.w, self.b = fit.coef[0], float(fit.intercept[0])
        else:
            self.w, self.b = _fit_soft(z, soft, l2)

    def score(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((x - self.mean) / self.std) @ self.w + self.b
        return out


def _fit_soft(z: np.ndarray, t: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Logistic regression on soft targets ``t`` in [0, 1], same penalty as `logistic_regression`."""
    from scipy.optimize import minimize
    from scipy.special import expit

    n, d = z.shape

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ theta[:d] + theta[d]  # (N,)
        g = expit(s) - t
        value = float(np.sum(np.logaddexp(0.0, s) - t * s) + 0.5 * l2 * theta[:d] @ theta[:d]) / n
        return value, np.concatenate([(z.T @ g + l2 * theta[:d]) / n, [g.sum() / n]])

    res = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return res.x[:d], float(res.x[d])


def run_seed(strong: np.ndarray, weak: np.ndarray, labels: np.ndarray, seed: int, *, weak_dims: int = 8,
             fractions: tuple[float, float, float] = (0.3, 0.4, 0.3), l2: float = 100.0,
             aux_loss: float = 0.0, aux_rounds: int = 5) -> SeedResult:
    """Weak, ceiling and weak-to-strong accuracy on split C for one seed.

    ``strong`` ``(N, D)`` and ``weak`` ``(N, D_w)`` are activations of the same texts; the weak view
    is ``weak`` standardised on A and projected to ``weak_dims`` dimensions by a seeded Gaussian.
    With ``aux_loss = a > 0`` the student is refitted ``aux_rounds`` times on the targets
    ``(1 - a) * weak label + a * its own hardened prediction``, hardened at the threshold that
    gives the weak labels' share of positives (Burns et al.'s auxiliary confidence loss).
    """
    a, b, c = split_abc(labels, fractions, seed)
    rng = np.random.default_rng([seed, 1])
    mu, sd = weak[a].mean(0), weak[a].std(0) + 1e-6
    view = ((weak - mu) / sd) @ rng.standard_normal((weak.shape[1], weak_dims))  # (N, k)
    supervisor = _Probe(view[a], labels[a], l2)
    weak_labels = (supervisor.score(view[b]) > 0).astype(np.int64)

    def accuracy(p: _Probe, x: np.ndarray) -> float:
        return float(((p.score(x[c]) > 0).astype(np.int64) == labels[c]).mean())

    ceiling = _Probe(strong[b], labels[b], l2)
    student = _Probe(strong[b], weak_labels, l2)
    for _ in range(aux_rounds if aux_loss > 0 else 0):
        s = student.score(strong[b])
        hard = (s > np.quantile(s, 1.0 - weak_labels.mean())).astype(float)
        student = _Probe(strong[b], weak_labels, l2, soft=(1 - aux_loss) * weak_labels + aux_loss * hard)
    return SeedResult(seed, accuracy(supervisor, view), accuracy(ceiling, strong), accuracy(student, strong),
                      float((weak_labels == labels[b]).mean()), a.size, b.size, c.size)


# --- activations, cached ----------------------------------------------------------------------------


def _features(backend: Any, task: BinaryTask, sites: tuple[str, str], s: W2SSettings, out_dir: Path,
              say: Callable[[str], None], progress: bool) -> tuple[np.ndarray, np.ndarray, Path, bool]:
    """``(strong, weak)`` activations of the task's texts: read from the cache, or captured once."""
    key = json.dumps({"model": backend.info.spec, "revision": backend.info.revision, "sites": sites,
                      "chat": s.chat, "texts": task.texts}, sort_keys=True)
    path = out_dir / f"w2s-{task.name[:40]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["strong"], f["weak"], path, True
    texts = render_prompts(backend.tokenizer, task.texts, chat=s.chat)
    with progress_bar(f"w2s {task.name}: activations", len(texts), enabled=progress, unit="texts") as bar:
        acts = capture(backend.model, backend.tokenizer, texts, list(sites), positions=(-1,),
                       batch_size=s.batch_size, progress=bar.advance)
    strong, weak = (acts[site][:, 0].numpy().astype(np.float64) for site in sites)  # (N, D) each
    np.savez(path, strong=strong, weak=weak, labels=task.labels)
    say(f"w2s {task.name}: {len(texts)} texts captured at {sites[0]} and {sites[1]} -> {path.name}")
    return strong, weak, path, False


# --- the experiment ---------------------------------------------------------------------------------


def _verdict(p: Figure) -> str:
    if p.low > 0 and p.high < 1:
        return "the student recovers part of the gap between its supervisor and its ceiling"
    if p.low > 0:
        return "the student recovers most of the gap; full recovery is within the interval"
    if p.high < 0:
        return "the student is worse than its weak supervisor"
    if p.high >= 1:
        return "the interval is too wide to tell imitation of the supervisor from full recovery"
    return "no evidence that the student beats its weak supervisor"


@experiment("weak-to-strong", title="Weak-to-strong generalisation",
            summary="A strong probe trained on a weak probe's labels: weak, ceiling and weak-to-strong accuracy "
                    "and the performance gap recovered, over seeds.",
            settings=W2SSettings, model_fields=("model",))
def run_weak_to_strong(settings: W2SSettings, ctx: Context) -> ExperimentResult:
    backend = ctx.models(settings.model)
    if not hasattr(backend, "model") or not hasattr(backend, "tokenizer"):
        raise ConfigError(f"weak-to-strong reads activations: model '{settings.model}' must be a local hf "
                          "model (default, hf:..., gguf:...), not a served endpoint")
    n_layers = len(find_layers(backend.model))
    strong_layer = n_layers // 2 if settings.strong_layer is None else settings.strong_layer
    below = max(1, n_layers // 12)
    weak_layer = max(0, strong_layer - below) if settings.weak_layer is None else settings.weak_layer
    for field, layer in (("strong_layer", strong_layer), ("weak_layer", weak_layer)):
        if layer >= n_layers:
            raise ConfigError(f"weak-to-strong: {field} {layer} does not exist; '{settings.model}' has layers "
                              f"0-{n_layers - 1}")
    sites = (f"resid_pre.{strong_layer}", f"resid_pre.{weak_layer}")
    say = ctx.say if ctx.progress else (lambda _: None)
    figures: dict[str, Figure] = {}
    rows, seed_rows, findings, notes = [], [], [], []
    saved: dict[str, dict[str, Any]] = {}
    for name in settings.tasks:
        task = load_task(name, settings.limit)
        if task.name in saved:
            raise ConfigError(f"weak-to-strong: two tasks are named '{task.name}'; rename one of the files")
        strong, weak, path, cached = _features(backend, task, sites, settings, ctx.out_dir, say, ctx.progress)
        if cached:
            notes.append(f"{task.name}: activations read from the cache {path.name}")
        seeds = [run_seed(strong, weak, task.labels, settings.seed + i, weak_dims=settings.weak_dims,
                          fractions=settings.fractions, l2=settings.l2, aux_loss=settings.aux_loss)
                 for i in range(settings.seeds)]
        w, c, s = ([getattr(r, k) for r in seeds] for k in ("weak", "ceiling", "w2s"))
        summ = pgr_summary(w, c, s, min_gap=settings.min_gap, n_boot=settings.n_boot, rng=settings.seed)
        fw, fc, fs = mean_figure(w), mean_figure(c), mean_figure(s)
        figures |= {f"{task.name}.weak": fw, f"{task.name}.ceiling": fc, f"{task.name}.weak_to_strong": fs}
        head = (f"{task.name}: weak {fw.text(2)}, weak-to-strong {fs.text(2)}, ceiling {fc.text(2)} "
                f"(accuracy on C, {settings.seeds} seeds)")
        if summ.figure is not None:
            figures[f"{task.name}.pgr"] = summ.figure
            findings.append(f"{head}; PGR {summ.figure.text(2)}: {_verdict(summ.figure)}.")
        else:
            findings.append(f"{head}; PGR not reported: {summ.problem}, so this task does not separate the weak "
                            "supervisor from the strong student here.")
            notes.append(f"{task.name}: PGR undefined ({summ.problem}).")
        rows.append([task.name, str(len(task.texts)), fw.text(3), fs.text(3), fc.text(3), summ.gap.text(3),
                     summ.figure.text(3) if summ.figure is not None else "undefined"])
        per_seed = [{**asdict(r), "pgr": None if math.isnan(p := pgr(r.weak, r.ceiling, r.w2s,
                                                                    min_gap=settings.min_gap)) else p}
                    for r in seeds]
        saved[task.name] = {"n_texts": len(task.texts), "activations": path.name, "seeds": per_seed}
        seed_rows += [[task.name, str(r["seed"]), f"{r['weak']:.3f}", f"{r['w2s']:.3f}", f"{r['ceiling']:.3f}",
                       "-" if r["pgr"] is None else f"{r['pgr']:.2f}", f"{r['weak_label_accuracy']:.3f}"]
                      for r in per_seed]
    (ctx.out_dir / "w2s-seeds.json").write_text(json.dumps({"sites": sites, "tasks": saved}, indent=1),
                                               encoding="utf-8")
    r0 = next(iter(saved.values()))["seeds"][0]
    notes += [f"Strong features: {sites[0]}, last prompt token; weak view: {sites[1]} at the same token, randomly "
              f"projected to {settings.weak_dims} dimensions. Splits per seed (A weak training / B student training / "
              f"C test): {r0['n_a']} / {r0['n_b']} / {r0['n_c']} texts for {next(iter(saved))}.",
              "Intervals are over seeds (re-splits and new weak projections of the same texts); they do not "
              "cover a new draw of texts. Per-seed accuracies: w2s-seeds.json."]
    tables = [Table("Weak-to-strong accuracy on the test split (95% intervals over seeds)",
                    ["task", "texts", "weak", "weak-to-strong", "ceiling", "ceiling - weak", "PGR"], rows),
              Table("Per seed", ["task", "seed", "weak", "weak-to-strong", "ceiling", "PGR",
                                 "weak labels correct (B)"], seed_rows)]
    return ExperimentResult("weak-to-strong", "Weak-to-strong generalisation", findings, settings.model_dump(),
                            figures, tables=tables, models=[backend.info.spec], notes=notes)
