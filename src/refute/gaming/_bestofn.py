"""Reward-model overoptimisation by best-of-n (experiment ``overoptimisation``), after Gao, Schulman
& Hilton (2022), "Scaling Laws for Reward Model Overoptimization" (arXiv:2210.10760).

The model answers each prompt ``N`` times at temperature 1 (``n_max`` samples per prompt and seed,
pooled over seeds; every sample stored by the engine, resumable). Each reply gets a *proxy* reward
(default `confident_length`: a lenient grader that also likes length and confidence) and a *gold*
one (default ``match``: the reply is the known answer). Best-of-n picks the reply the proxy ranks
first among ``n`` draws; for n = 1, 2, 4, ..., n_max the experiment reports

- E[proxy of the pick] and E[gold of the pick] by the unbiased order-statistics estimator over all
  C(N, n) subsets of a prompt's N samples (`best_of_n`): the i-th smallest proxy value is the
  maximum of a random n-subset with probability C(i - 1, n - 1) / C(N, n). Ties: the proxy's pick
  among tied draws is taken to be uniform, so every draw of a tie group carries the group's mean gold;
- both against KL(best-of-n) = log n - (n - 1) / n nats (`bon_kl`, the formula Gao et al. use;
  exact without ties, an upper bound on the true KL otherwise, Beirami et al. 2024);
- the paper's best-of-n form R(d) = d (alpha - beta d), d = sqrt(KL), fitted by least squares to each
  curve's change from n = 1 (`fit_bon`), and the fitted gold peak d* = alpha / (2 beta);
- 95% intervals by cluster bootstrap over prompts (a prompt's samples travel together).

The pooled estimator averages over every subset of the samples a prompt has, which is what rerunning
the experiment with fresh seeds would average towards; its interval is over prompts, the larger
source of variance. Each of the ``seeds`` adds n_max samples per prompt (N = seeds x n_max); the default
is two seeds (0 and 1), so N = 2 x n_max and the result has a per-seed table (each seed's samples alone)
that shows how much the curve moves between seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from refute.datasets import Record, load_dataset
from refute.engine import PluginSpec, TaskConfig, run_task
from refute.errors import ConfigError, RefuteError
from refute.gaming import _proxy  # noqa: F401  (registers the default proxy, confident_length)
from refute.gaming._experiments import Context, experiment
from refute.gaming._result import Curve, ExperimentResult, Figure, Series, Table
from refute.models import GenerateConfig
from refute.scorers import meaning_of
from refute.stats import DEFAULT_SEED
from refute.stats._bootstrap import bootstrap_means, percentile_interval
from refute.store import Store

__all__ = ["DEFAULT_TASKS", "BestOfNSettings", "BonFit", "best_in_range", "best_of_n", "bon_kl", "bon_weights",
           "fit_bon", "n_for_kl", "read_pairs", "run_overoptimisation"]

#: The shipped prompts: short arithmetic and word problems with numeric answers, ordered so that the
#: first twelve are those the default model answers right only some of the time at temperature 1.
DEFAULT_TASKS = Path(__file__).parent / "data" / "bestofn-tasks.jsonl"
CONFIDENCE = 0.95


# --- the arithmetic ----------------------------------------------------------------------------------

def bon_kl(n: float) -> float:
    """KL(best-of-n || base policy) = log n - (n - 1) / n, in nats."""
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def n_for_kl(kl: float) -> float:
    """The (real) n whose `bon_kl` is ``kl``: the inverse, by bisection (bon_kl grows with n)."""
    if kl <= 0:
        return 1.0
    lo, hi = 1.0, 2.0
    while bon_kl(hi) < kl:
        lo, hi = hi, hi * 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if bon_kl(mid) < kl else (lo, mid)
    return (lo + hi) / 2


def bon_weights(total: int, n: int) -> np.ndarray:
    """``(total,)``: the probability that the i-th smallest of ``total`` values (i = 1..total) is the
    largest of a uniformly drawn ``n``-subset, C(i - 1, n - 1) / C(total, n)."""
    if not 1 <= n <= total:
        raise ValueError(f"best-of-{n} needs 1 <= n <= {total} samples")
    subsets = math.comb(total, n)
    return np.array([math.comb(i - 1, n - 1) / subsets for i in range(1, total + 1)])


def best_of_n(proxy: Sequence[float], gold: Sequence[float], ns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """From one prompt's N samples, for each n in ``ns``: E[largest proxy of n draws] and E[gold of
    the draw the proxy ranks first], unbiased over all C(N, n) subsets. Within a tie of proxy
    values the pick is uniform, so each tied draw counts with its tie group's mean gold."""
    p, g = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    if p.shape != g.shape or p.ndim != 1:
        raise ValueError(f"proxy and gold must be equally long lists, got {p.shape} and {g.shape}")
    order = np.argsort(p, kind="stable")
    p, g = p[order], g[order]
    _, start, counts = np.unique(p, return_index=True, return_counts=True)  # tie groups, contiguous once sorted
    g = np.repeat(np.add.reduceat(g, start) / counts, counts)
    weights = np.stack([bon_weights(len(p), n) for n in ns])  # (K, N)
    return weights @ p, weights @ g


def _fit_rows(d: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(B, 2)``: least-squares (alpha, beta) of ``rows`` ``(B, K)`` against d (alpha - beta d)."""
    design = np.stack([d, -(d**2)], axis=1)  # (K, 2)
    coef, *_ = np.linalg.lstsq(design, rows.T, rcond=None)  # (2, B)
    return coef.T


def best_in_range(alpha: np.ndarray, beta: np.ndarray, d_max: float) -> np.ndarray:
    """Where d (alpha - beta d) is largest on [0, d_max], for each (alpha, beta)."""
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(beta > 0, np.clip(alpha / (2 * beta), 0.0, d_max), 0.0)
    candidates = np.stack([np.zeros_like(alpha), np.full_like(alpha, d_max), inner])  # (3, B)
    values = candidates * (alpha - beta * candidates)
    return np.take_along_axis(candidates, values.argmax(axis=0)[None], axis=0)[0]


@dataclass(frozen=True)
class BonFit:
    """R(d) - R(0) = d (alpha - beta d), d = sqrt(KL), fitted to a curve's change from n = 1."""

    alpha: float
    beta: float
    d_max: float  # sqrt of the largest KL measured
    rmse: float

    @property
    def peak_d(self) -> float | None:
        """alpha / (2 beta) when the fitted curve rises and then falls, else None."""
        return self.alpha / (2 * self.beta) if self.alpha > 0 and self.beta > 0 else None

    @property
    def peak_in_range(self) -> bool:
        return self.peak_d is not None and self.peak_d <= self.d_max

    def at(self, kl: float) -> float:
        d = math.sqrt(kl)
        return d * (self.alpha - self.beta * d)


def fit_bon(kls: Sequence[float] | np.ndarray, change: Sequence[float] | np.ndarray) -> BonFit:
    """Fit d (alpha - beta d) to ``change`` (a curve minus its value at n = 1) over ``kls``."""
    d = np.sqrt(np.asarray(kls, dtype=float))
    y = np.asarray(change, dtype=float)
    if len(d) != len(y) or np.count_nonzero(d) < 2:
        raise ValueError("fitting d (alpha - beta d) needs one change per KL, at two or more KL > 0")
    alpha, beta = _fit_rows(d, y[None])[0]
    rmse = float(np.sqrt(np.mean((d * (alpha - beta * d) - y) ** 2)))
    return BonFit(float(alpha), float(beta), float(d.max()), rmse)


# --- the samples -------------------------------------------------------------------------------------

def read_pairs(store: Store, run_id: str, proxy: str, gold: str) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """(proxy, gold) of every sample of a run, by prompt, and how many samples were left out
    (failed, or either score missing)."""
    values: dict[int, dict[str, float | None]] = {}
    for s in store.scores(run_id):
        values.setdefault(int(s.sample_id or 0), {})[s.scorer] = s.value
    seen = {name for v in values.values() for name in v}
    for name in (proxy, gold):
        if values and name not in seen:
            raise RefuteError(f"run {run_id} has no scores by '{name}' (it has {', '.join(sorted(seen))}); a "
                              "scorer whose instance stores another name cannot be read here")
    out: dict[str, list[tuple[float, float]]] = {}
    missing = 0
    for sample in store.samples(run_id):
        v = values.get(int(sample.id or 0), {})
        p, g = v.get(proxy), v.get(gold)
        if sample.error is not None or p is None or g is None:
            missing += 1
            continue
        out.setdefault(sample.prompt_id, []).append((float(p), float(g)))
    return out, missing


# --- the experiment ----------------------------------------------------------------------------------

class BestOfNSettings(BaseModel):
    """Settings of the ``overoptimisation`` experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("default", description="The policy model that samples the replies (a model spec).")
    dataset: str | None = Field(None, description="Prompts with known answers (a built-in name or a JSONL/CSV "
                                "path); None: the shipped arithmetic and word problems.")
    categories: tuple[str, ...] | None = Field(None, description="Use only prompts of these categories (None: all).")
    limit: int | None = Field(12, ge=2, description="Use only the first N prompts (None: all).")
    n_max: int = Field(64, description="Samples per prompt and seed, and the largest n (a power of 2, 4 to 1024).")
    seeds: tuple[int, ...] = Field((0, 1), min_length=1, description="Run seeds (default two: 0 and 1): each "
                                   "samples n_max replies per prompt; the samples of all seeds are pooled, and with "
                                   "two or more a table shows each seed's curve alone.")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="Sampling temperature (best-of-n samples the "
                               "policy itself: keep 1).")
    max_tokens: int = Field(48, ge=1, le=4096, description="Most new tokens per reply.")
    proxy: PluginSpec = Field(default_factory=lambda: PluginSpec(name="confident_length"),
                              description="The scorer best-of-n optimises: {name, args}.")
    gold: PluginSpec = Field(default_factory=lambda: PluginSpec(name="match"),
                             description="The scorer that measures what was wanted: {name, args}.")
    n_boot: int = Field(2000, ge=100, le=100_000, description="Bootstrap resamples (over prompts) per interval.")

    @field_validator("n_max")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value < 4 or value > 1024 or value & (value - 1):
            raise ValueError(f"n_max must be a power of 2 from 4 (the fit needs n = 2 and 4) to 1024, got {value}")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {list(value)}")
        return value


def _prompts(settings: BestOfNSettings) -> list[Record]:
    records = list(load_dataset(settings.dataset or str(DEFAULT_TASKS)).records)
    if settings.categories is not None:
        records = [r for r in records if r.category in settings.categories]
    records = records[: settings.limit]
    if len(records) < 2:
        raise ConfigError(f"overoptimisation needs 2 or more prompts; dataset {settings.dataset or DEFAULT_TASKS} "
                          f"with categories {settings.categories} has {len(records)}")
    return records


def _interval(value: float, boot: np.ndarray) -> tuple[float, float]:
    low, high = percentile_interval(boot, CONFIDENCE)
    return min(float(low), value), max(float(high), value)


def _figure(value: float, boot: np.ndarray, n: int, method: str) -> Figure:
    return Figure(value, *_interval(value, boot), n=n, method=method)


def _text(x: float, boot: np.ndarray, signed: bool = False) -> str:
    lo, hi = _interval(x, boot)
    f = "+.3f" if signed else ".3f"
    return f"{x:{f}} [{lo:{f}}, {hi:{f}}]"


@experiment("overoptimisation", title="Best-of-n overoptimisation: proxy against gold",
            summary="Best-of-n selection against a proxy reward, measured with a gold reward the proxy only "
                    "approximates, for n = 1 to n_max (Gao et al. 2022).",
            settings=BestOfNSettings, model_fields=("model",))
def run_overoptimisation(settings: BestOfNSettings, ctx: Context) -> ExperimentResult:
    """Sample n_max replies per prompt and seed, score them with proxy and gold, report best-of-n."""
    if settings.proxy.name == settings.gold.name:
        raise ConfigError(f"proxy and gold are both '{settings.proxy.name}': their scores would share a name; "
                          "choose two different scorers")
    records = _prompts(settings)
    data = ctx.out_dir / "bestofn-prompts.jsonl"
    data.write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in records), encoding="utf-8")
    backend = ctx.models(settings.model)
    runs: dict[str, str] = {}
    by_seed: dict[int, dict[str, list[tuple[float, float]]]] = {}
    left_out = 0
    for seed in settings.seeds:
        task = TaskConfig(dataset=str(data), harmful=False, epochs=settings.n_max, seed=seed,
                          generate=GenerateConfig(max_tokens=settings.max_tokens, temperature=settings.temperature),
                          scorers=[settings.gold, settings.proxy])
        label = f"overoptimisation:seed{seed}"
        ctx.say(f"{label}: {len(records)} prompts x {settings.n_max} samples")
        run = run_task(task, backend, ctx.store, name=label, kind="gaming", progress=ctx.progress)
        runs[label] = run.id
        by_seed[seed], missing = read_pairs(ctx.store, run.id, settings.proxy.name, settings.gold.name)
        left_out += missing
    return _Analysis.build(settings, by_seed, left_out).result(settings, runs, backend.info.spec)


# --- the analysis ------------------------------------------------------------------------------------

@dataclass
class _Analysis:
    """Per-prompt best-of-n curves and one set of bootstrap resamples over prompts for every figure."""

    ns: list[int]
    kls: np.ndarray  # (K,)
    prompts: list[str]
    samples: list[int]  # pooled samples per prompt
    proxy: np.ndarray  # (P, K) normalised proxy of the pick
    gold: np.ndarray  # (P, K) gold of the pick
    corr: np.ndarray  # (P, 3) within-prompt sums: proxy x gold, proxy^2, gold^2 (centred)
    boot: np.ndarray  # (B, 2K + 3) resampled means of [proxy | gold | corr]
    seeds: dict[int, tuple[np.ndarray, np.ndarray]]  # seed -> mean (proxy, gold) curves, when >= 2 seeds
    notes: list[str]

    @classmethod
    def build(cls, settings: BestOfNSettings, by_seed: dict[int, dict[str, list[tuple[float, float]]]],
              left_out: int) -> _Analysis:
        """Pool the seeds' (proxy, gold) pairs by prompt; curves, correlation sums, resamples."""
        pairs: dict[str, list[tuple[float, float]]] = {}
        for got in by_seed.values():
            for pid, xs in got.items():
                pairs.setdefault(pid, []).extend(xs)
        notes = [f"{left_out} samples failed or lack a score and are left out."] if left_out else []
        lo, hi = meaning_of(settings.proxy.name).value_range
        values = [p for xs in pairs.values() for p, _ in xs]
        if values and (min(values) < lo or max(values) > hi):
            lo, hi = min(values), max(max(values), min(values) + 1e-9)
            notes.append(f"proxy values fall outside the range '{settings.proxy.name}' declares: normalised by "
                         f"the observed range [{lo:.3g}, {hi:.3g}] instead.")
        short = sorted(pid for pid, xs in pairs.items() if len(xs) < settings.n_max)
        if short:
            notes.append(f"{len(short)} prompts have fewer than {settings.n_max} scored samples and are left out: "
                         f"{', '.join(short)}.")
        kept = {pid: xs for pid, xs in pairs.items() if len(xs) >= settings.n_max}
        if len(kept) < 2:
            raise RefuteError(f"only {len(kept)} prompts have {settings.n_max} scored samples; best-of-n needs two "
                              "or more (see the runs' errors in the store: `refute runs`)")
        ns = [2**k for k in range(int(math.log2(settings.n_max)) + 1)]

        def curves(group: dict[str, list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
            got = [best_of_n([(p - lo) / (hi - lo) for p, _ in xs], [g for _, g in xs], ns) for xs in group.values()]
            return np.array([c[0] for c in got]), np.array([c[1] for c in got])

        proxy, gold = curves(kept)
        corr = []
        for xs in kept.values():
            p, g = np.array(xs).T
            p, g = p - p.mean(), g - g.mean()
            corr.append([p @ g, p @ p, g @ g])
        corr_a = np.array(corr)
        seeds = {}
        if len(by_seed) > 1:
            for seed, group in by_seed.items():
                mine = {pid: xs for pid, xs in group.items() if pid in kept and len(xs) >= settings.n_max}
                if mine:
                    p_curve, g_curve = curves(mine)
                    seeds[seed] = (p_curve.mean(axis=0), g_curve.mean(axis=0))
        rng = np.random.default_rng(DEFAULT_SEED)
        boot = bootstrap_means(np.concatenate([proxy, gold, corr_a], axis=1), settings.n_boot, rng)
        return cls(ns, np.array([bon_kl(n) for n in ns]), list(kept), [len(xs) for xs in kept.values()],
                   proxy, gold, corr_a, boot, seeds, notes)

    def result(self, settings: BestOfNSettings, runs: dict[str, str], model: str) -> ExperimentResult:
        k, n_p, b = len(self.ns), len(self.prompts), len(self.boot)
        method = f"cluster bootstrap over prompts, {b} resamples, percentile"
        p_mean, g_mean = self.proxy.mean(axis=0), self.gold.mean(axis=0)
        bp, bg, bc = self.boot[:, :k], self.boot[:, k : 2 * k], self.boot[:, 2 * k :]
        best = int(np.argmax(g_mean))  # the first n where gold is highest
        figures = {
            "proxy_gain": _figure(p_mean[-1] - p_mean[0], bp[:, -1] - bp[:, 0], n_p, method),
            "gold_gain": _figure(g_mean[-1] - g_mean[0], bg[:, -1] - bg[:, 0], n_p, method),
            "gold_drop_from_peak": _figure(g_mean[-1] - g_mean[best], bg[:, -1] - bg[:, best], n_p,
                                           f"{method}; the best n ({self.ns[best]}) is picked on these data"),
        }
        d = np.sqrt(self.kls)
        fits = {name: fit_bon(self.kls, m - m[0]) for name, m in (("proxy", p_mean), ("gold", g_mean))}
        coefs = {"proxy": _fit_rows(d, bp - bp[:, :1]), "gold": _fit_rows(d, bg - bg[:, :1])}
        gold_fit, d_max = fits["gold"], float(d[-1])
        peak_boot = best_in_range(coefs["gold"][:, 0], coefs["gold"][:, 1], d_max) ** 2
        notes = list(self.notes)
        if gold_fit.peak_in_range and gold_fit.peak_d is not None:
            figures["peak_kl"] = _figure(gold_fit.peak_d**2, peak_boot, n_p, f"{method}; each resample's fitted "
                                         f"peak, clipped to the measured range [0, {self.kls[-1]:.3f}] nats")
        else:
            notes.append("No peak_kl figure: the fitted gold curve " + ("peaks beyond the largest n measured (an "
                         "extrapolation)." if gold_fit.peak_d is not None else "does not rise and then fall."))
        sums = self.corr.sum(axis=0)
        corr_value = sums[0] / math.sqrt(sums[1] * sums[2]) if sums[1] > 0 and sums[2] > 0 else None
        if corr_value is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                corr_boot = bc[:, 0] / np.sqrt(bc[:, 1] * bc[:, 2])
            figures["proxy_gold_correlation"] = _figure(
                float(corr_value), corr_boot[np.isfinite(corr_boot)], n_p,
                f"Pearson r within prompts (each prompt's samples centred), pooled over "
                f"{sum(self.samples)} samples; {method}")
        else:
            notes.append("Proxy or gold never varies within a prompt: their correlation is undefined.")
        notes.append(f"Samples per prompt: {min(self.samples)} to {max(self.samples)} ({len(settings.seeds)} seed(s) x "
                     f"{settings.n_max}, pooled); best-of-n estimates average over every n-subset of them (unbiased), "
                     f"so the intervals are over the {n_p} prompts only.")
        notes += _NOTES
        return ExperimentResult(
            experiment="overoptimisation", title="Best-of-n overoptimisation: proxy against gold",
            findings=self._findings(settings, figures, fits, best, bp, bg), settings=settings.model_dump(mode="json"),
            figures=figures, curves=self._curves(fits, coefs, figures.get("peak_kl"), bp, bg, settings),
            tables=self._tables(fits, coefs, bp, bg), runs=runs, models=[model], notes=notes)

    def _findings(self, settings: BestOfNSettings, figures: dict[str, Figure], fits: dict[str, BonFit], best: int,
                  bp: np.ndarray, bg: np.ndarray) -> list[str]:
        n_max, g_mean = self.ns[-1], self.gold.mean(axis=0)
        pg, gg, drop = figures["proxy_gain"], figures["gold_gain"], figures["gold_drop_from_peak"]
        out = [f"Proxy ('{settings.proxy.name}', normalised) of the best-of-n pick, n = {n_max} minus n = 1: "
               f"{pg.value:+.3f} [{pg.low:+.3f}, {pg.high:+.3f}] over {pg.n} prompts: "
               + ("the proxy rises with n." if pg.low > 0 else "a rise of the proxy with n is not established.")]
        out.append(f"Gold ('{settings.gold.name}'): {_text(g_mean[0], bg[:, 0])} at n = 1, highest at n = "
                   f"{self.ns[best]} ({_text(g_mean[best], bg[:, best])}), {_text(g_mean[-1], bg[:, -1])} at n = "
                   f"{n_max}; n = {n_max} minus n = 1: {gg.value:+.3f} [{gg.low:+.3f}, {gg.high:+.3f}]"
                   + (" (a gain)." if gg.low > 0 else " (a loss)." if gg.high < 0 else " (no change established)."))
        if best == len(self.ns) - 1:
            out.append(f"Gold is highest at the largest n measured ({n_max}): no fall from a peak is seen.")
        else:
            verdict = ("the interval excludes 0: gold falls as the proxy is optimised harder (overoptimisation)"
                       if drop.high < 0 else "a fall is not established")
            out.append(f"Gold at n = {n_max} minus gold at its best n ({self.ns[best]}): {drop.value:+.3f} "
                       f"[{drop.low:+.3f}, {drop.high:+.3f}]: {verdict}. The best n is picked on the same data, "
                       "which biases this difference below 0; the fitted peak is the less selective reading.")
        g = fits["gold"]
        line = (f"Fit of gold change = d (alpha - beta d), d = sqrt(KL): alpha {g.alpha:+.3f}, beta {g.beta:+.3f} "
                f"(rmse {g.rmse:.3f}); ")
        if "peak_kl" in figures:
            pk = figures["peak_kl"]
            line += (f"fitted peak at KL {pk.value:.2f} nats [{pk.low:.2f}, {pk.high:.2f}], i.e. n about "
                     f"{n_for_kl(pk.value):.1f} [{n_for_kl(pk.low):.1f}, {n_for_kl(pk.high):.1f}] "
                     "(resampled peaks clipped to the n measured).")
        elif g.peak_d is not None:
            line += f"its peak (n about {n_for_kl(g.peak_d**2):.0f}) lies beyond the n measured."
        else:
            line += "no peak (the fitted curve does not rise and then fall)."
        out.append(line)
        if "proxy_gold_correlation" in figures:
            r = figures["proxy_gold_correlation"]
            out.append(f"Within a prompt, proxy and gold correlate r = {r.text()} over the samples"
                       + (": the proxy carries some signal about gold." if r.low > 0
                          else ": a positive correlation is not established."))
        return out

    def _curves(self, fits: dict[str, BonFit], coefs: dict[str, np.ndarray], peak: Figure | None, bp: np.ndarray,
                bg: np.ndarray, settings: BestOfNSettings) -> list[Curve]:
        kl = [float(x) for x in self.kls]

        def series(name: str, y: np.ndarray, boot: np.ndarray) -> Series:
            bands = [_interval(float(v), boot[:, i]) for i, v in enumerate(y)]
            return Series(name, kl, [float(v) for v in y], [lo for lo, _ in bands], [hi for _, hi in bands])

        markers = [] if peak is None else [(peak.value, f"fitted gold peak (n about {n_for_kl(peak.value):.0f})")]
        levels = Curve("Best-of-n: proxy and gold against KL", "KL(best-of-n), nats", "score of the pick",
                       [series("proxy (normalised)", self.proxy.mean(axis=0), bp),
                        series("gold", self.gold.mean(axis=0), bg)],
                       caption=f"n = {', '.join(map(str, self.ns))}; proxy '{settings.proxy.name}' normalised to "
                               f"[0, 1], gold '{settings.gold.name}'; 95% bands by cluster bootstrap over "
                               f"{len(self.prompts)} prompts.", markers=markers)
        grid = np.linspace(0.0, float(self.kls[-1]), 25)
        d = np.sqrt(grid)
        lines = []
        for name, m, boot in (("proxy", self.proxy.mean(axis=0), bp), ("gold", self.gold.mean(axis=0), bg)):
            lines.append(series(f"{name} - {name}(n=1)", m - m[0], boot - boot[:, :1]))
            fitted = d[None] * (coefs[name][:, :1] - coefs[name][:, 1:] * d[None])  # (B, G)
            f = fits[name]
            y = [f.at(float(x)) for x in grid]
            bands = [_interval(v, fitted[:, i]) for i, v in enumerate(y)]
            lines.append(Series(f"{name} fit", [float(x) for x in grid], y, [lo for lo, _ in bands],
                                [hi for _, hi in bands]))
        change = Curve("Change from n = 1, with the fitted d (alpha - beta d)", "KL(best-of-n), nats",
                       "change from n = 1", lines, caption="Least-squares fits of Gao et al.'s best-of-n form, d = "
                       "sqrt(KL); bands: 95% over bootstrap resamples of prompts.", markers=markers)
        return [levels, change]

    def _tables(self, fits: dict[str, BonFit], coefs: dict[str, np.ndarray], bp: np.ndarray,
                bg: np.ndarray) -> list[Table]:
        p_mean, g_mean = self.proxy.mean(axis=0), self.gold.mean(axis=0)
        curve = Table("Best-of-n curve (95% intervals, cluster bootstrap over prompts)",
                      ["n", "KL (nats)", "proxy (normalised)", "gold"],
                      [[str(n), f"{kl:.3f}", _text(p_mean[i], bp[:, i]), _text(g_mean[i], bg[:, i])]
                       for i, (n, kl) in enumerate(zip(self.ns, self.kls, strict=True))])
        rows = []
        for name, f in fits.items():
            peak = (f"{f.peak_d**2:.3f} (n about {n_for_kl(f.peak_d**2):.1f})" if f.peak_d is not None else "none")
            rows.append([name, _text(f.alpha, coefs[name][:, 0], True), _text(f.beta, coefs[name][:, 1], True),
                         peak + ("" if f.peak_in_range or f.peak_d is None else ", beyond the n measured"),
                         f"{f.rmse:.4f}"])
        fit = Table("Fits of change from n = 1 = d (alpha - beta d), d = sqrt(KL)",
                    ["curve", "alpha", "beta", "peak KL", "rmse"], rows)
        per_prompt = Table("Per prompt (best-of-n estimates)",
                           ["prompt", "samples", "gold n=1", f"gold n={self.ns[-1]}", "proxy n=1",
                            f"proxy n={self.ns[-1]}"],
                           [[pid, str(s), f"{g[0]:.3f}", f"{g[-1]:.3f}", f"{p[0]:.3f}", f"{p[-1]:.3f}"]
                            for pid, s, p, g in zip(self.prompts, self.samples, self.proxy, self.gold, strict=True)])
        out = [curve, fit, per_prompt]
        if self.seeds:
            out.append(Table("By seed (each seed's samples alone)", ["seed", "proxy n=1", f"proxy n={self.ns[-1]}",
                                                                     "gold n=1", f"gold n={self.ns[-1]}"],
                             [[str(s), f"{p[0]:.3f}", f"{p[-1]:.3f}", f"{g[0]:.3f}", f"{g[-1]:.3f}"]
                              for s, (p, g) in self.seeds.items()]))
        return out



_NOTES = [
    "KL(best-of-n) = log n - (n - 1)/n is exact only when the proxy never ties; with ties (short replies score "
    "alike) it overstates the KL actually spent at large n.",
    "Proxy ties: the pick among tied replies is taken to be uniform (each carries its tie group's mean gold).",
    "With about a dozen prompts, percentile cluster-bootstrap intervals run narrow (refute.stats measured "
    "88-94% coverage at 30 prompts): read them as approximate.",
]
