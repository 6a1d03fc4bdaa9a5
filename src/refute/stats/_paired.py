"""Comparisons of two conditions: paired over the same prompts, or unpaired when prompts differ.

Paired (baseline vs transform, model A vs B, before vs after), the difference is B - A of the
prompt-weighted rates, i.e. the mean over prompts of (B's rate - A's rate) on that prompt.

* Interval, one sample per prompt: Newcombe's hybrid score interval for paired proportions
  (Newcombe 1998, "Improved confidence intervals for the difference between binomial proportions
  based on paired data", Stat. Med. 17:2635-2650, method 10, with his corrected phi).
* Interval, several samples per prompt: the same square-and-add construction (MOVER: Zou & Donner
  2008, Stat. Med. 27:1693-1702) on the design-effect Wilson limits of each condition (see
  `_rates`) with the correlation of the per-prompt rates across conditions. Measured coverage,
  100 prompts x 3-5 samples, shared prompt effects, 6,000 data sets: 94.9-95.2% for rates
  0.05-0.5 with and without an effect.
* Interval on request: a paired cluster bootstrap over prompts of the per-prompt differences
  (percentile or BCa; the percentile interval covered ~94% in the same simulations).
* p-value: the paired sign-flip randomization test on per-prompt differences (Fisher 1935): under
  "the conditions do not differ", swapping A and B within a prompt changes nothing (exactly so with
  equal samples per prompt in both conditions; approximately when the counts differ, measured
  type-I 0.046-0.049 with 3 vs 5 samples per prompt). With one sample
  per prompt it is exactly McNemar's exact test (binomial test on the discordant pairs, as
  statsmodels ``mcnemar(exact=True)``); with several it is computed exactly by convolution when the
  per-prompt sample counts allow it, else by Monte Carlo with ``n_perm`` sign flips. Being exact
  and discrete it is conservative: measured type-I error at alpha 0.05 was 0.034-0.046 (McNemar,
  200 prompts: 0.042).

Unpaired (different prompts): Newcombe's hybrid score interval for independent proportions
(Newcombe 1998, Stat. Med. 17:873-890, method 10) on design-effect Wilson limits, and the pooled
two-proportion z-test on effective sample sizes (Rao & Scott 1992, Biometrics 48:577-585),
referred to Student's t on (prompts - 2) degrees of freedom when a design effect was estimated;
with one sample per prompt these equal statsmodels' ``confint_proportions_2indep(method="newcomb")``
and ``proportions_ztest``.

One criterion for the interval and the p-value. A score interval and a separate test can disagree
(in 1-7% of simulated comparisons the interval excluded 0 while p > 0.05), and a table that shows
both beside a verdict must not. At the level shown (alpha = 1 - confidence) a difference counts as
shown only when both the test rejects and the interval excludes 0, and both numbers say so: when
the test does not reject, an interval that excludes 0 is extended to reach 0; when the interval
covers 0, a test that rejects has its p-value raised to the interval's own (the smallest 1 -
confidence at which the interval excludes 0, found by root-finding on the level). Otherwise both
are left as computed. So ``p_value <= 1 - confidence`` exactly when the interval excludes 0. Each
part is a valid test, so the pair is too (type-I error at most the smaller of the two); with one
sample per prompt the interval almost never overrules the exact McNemar test, so a paired plan's
power (`sample_size(paired=True)`, exact McNemar) is the power of this criterion. The ``method``
and ``test`` names say when either adjustment was made.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from refute.errors import ConfigError
from refute.stats._bootstrap import bootstrap_limits, bootstrap_means
from refute.stats._common import (
    Grouped,
    PromptIds,
    RngLike,
    Values,
    as_rng,
    as_values,
    binom_cdf,
    check_confidence,
    check_count,
    group,
    lcm_of,
    norm_cdf,
    t_sf,
)
from refute.stats._rates import effective_size, wilson_interval

PairedMethod = Literal["auto", "score", "bootstrap-percentile", "bootstrap-bca"]
_PAIRED_METHODS = ("auto", "score", "bootstrap-percentile", "bootstrap-bca")
_EXACT_WORK = 50_000_000  # largest (prompts x grid) for the exact sign-flip distribution


@dataclass(frozen=True, slots=True)
class Comparison:
    """B - A with its interval and a p-value for "no difference"; says how it was computed."""

    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    method: str  # how the interval was computed
    test: str  # how the p-value was computed
    paired: bool
    rate_a: float
    rate_b: float
    n_prompts_a: int
    n_prompts_b: int
    n_samples_a: int
    n_samples_b: int
    n_unmatched: int = 0
    """Prompts present in only one condition, left out of a paired comparison."""
    n_missing: int = 0
    """Samples excluded because their value was missing."""

    @property
    def n_prompts(self) -> int:
        """Prompts compared: pairs when paired, both sides together when not."""
        return self.n_prompts_a if self.paired else self.n_prompts_a + self.n_prompts_b

    def __str__(self) -> str:
        kind = "paired" if self.paired else "unpaired"
        return (f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}], "
                f"p={self.p_value:.3g} ({kind})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact_pvalue(n_ab: int, n_ba: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (statsmodels' form)."""
    n = int(n_ab) + int(n_ba)
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom_cdf(min(n_ab, n_ba), n, 0.5)))


def signflip_pvalue(
    sa: Grouped, sb: Grouped, *, n_perm: int, rng: np.random.Generator
) -> tuple[float, str]:
    """Two-sided sign-flip test of mean(d) = 0, d = per-prompt rate of B minus A (aligned)."""
    d = sb.means - sa.means
    nz = np.abs(d) > 1e-12
    if not nz.any():
        return 1.0, "mcnemar-exact" if sa.singleton and sb.singleton else "sign-flip-exact"
    counts = np.concatenate([sa.counts[nz], sb.counts[nz]]).astype(np.int64)
    lcm = lcm_of(np.unique(counts).tolist(), cap=100_000)
    if lcm is not None:
        # Integer weights: d_i * lcm = sB_i * lcm / nB_i - sA_i * lcm / nA_i, exactly.
        w_signed = (sb.sums[nz].astype(np.int64) * (lcm // sb.counts[nz].astype(np.int64))
                    - sa.sums[nz].astype(np.int64) * (lcm // sa.counts[nz].astype(np.int64)))
        w = np.abs(w_signed)
        t = abs(int(w_signed.sum()))
        if np.all(w == w[0]):
            # Equal weights: the statistic counts positive signs, a Binomial(n, 1/2): exact McNemar.
            n_pos = int(np.sum(w_signed > 0))
            name = "mcnemar-exact" if lcm == 1 else "sign-flip-exact"
            return mcnemar_exact_pvalue(n_pos, w.size - n_pos), name
        total = int(w.sum())
        if w.size * (2 * total + 1) <= _EXACT_WORK:
            dist = np.zeros(2 * total + 1)  # distribution of sum(sign_i * w_i), offset total
            dist[total] = 1.0
            cur = 0  # current support is [total - cur, total + cur]
            for wi in w.tolist():
                tmp = dist[total - cur:total + cur + 1].copy()
                dist[total - cur:total + cur + 1] = 0.0
                dist[total - cur - wi:total + cur + 1 - wi] += 0.5 * tmp
                dist[total - cur + wi:total + cur + 1 + wi] += 0.5 * tmp
                cur += wi
            grid = np.abs(np.arange(-total, total + 1))
            return float(min(1.0, dist[grid >= t].sum())), "sign-flip-exact"
    # Monte Carlo sign flips (Phipson & Smyth 2010: p = (1 + hits) / (1 + draws)).
    dz = d[nz]
    t_obs = abs(float(dz.sum())) - 1e-9
    hits, done = 0, 0
    rows = max(1, 2_000_000 // dz.size)
    while done < n_perm:
        m = min(rows, n_perm - done)
        signs = rng.integers(0, 2, size=(m, dz.size)) * 2.0 - 1.0  # (m, prompts)
        hits += int(np.sum(np.abs(signs @ dz) >= t_obs))
        done += m
    return (1.0 + hits) / (1.0 + n_perm), "sign-flip-monte-carlo"


def _square_and_add(
    theta: float,
    b: tuple[float, float, float],
    a: tuple[float, float, float],
    r: float,
) -> tuple[float, float]:
    """MOVER limits for B - A from (estimate, low, high) of each and their correlation r."""
    pb, lb, ub = b
    pa, la, ua = a
    down_b, up_a = pb - lb, ua - pa
    up_b, down_a = ub - pb, pa - la
    low = theta - np.sqrt(max(down_b**2 + up_a**2 - 2 * r * down_b * up_a, 0.0))
    high = theta + np.sqrt(max(up_b**2 + down_a**2 - 2 * r * up_b * down_a, 0.0))
    return float(max(low, -1.0)), float(min(high, 1.0))


def _wilson_limits(g: Grouped, confidence: float) -> tuple[float, float, float]:
    eff = effective_size(g, confidence)
    p = float(g.means.mean())
    low, high = wilson_interval(p, eff.n, eff.z)
    return p, float(low), float(high)


Limits = Callable[[float], tuple[float, float]]
"""The interval of a comparison at a given confidence (the same data, another level)."""


def _score_limits(sa: Grouped, sb: Grouped, theta: float, r: float) -> Limits:
    """MOVER limits of B - A at any confidence (the effective sizes do not depend on it)."""
    ea, eb = effective_size(sa, 0.95), effective_size(sb, 0.95)
    pa, pb = float(sa.means.mean()), float(sb.means.mean())

    def at(confidence: float) -> tuple[float, float]:
        la, ha = wilson_interval(pa, ea.n, ea.quantile(confidence))
        lb, hb = wilson_interval(pb, eb.n, eb.quantile(confidence))
        return _square_and_add(theta, (pb, float(lb), float(hb)), (pa, float(la), float(ha)), r)

    return at


def _bootstrap_limits(d: np.ndarray, boot: np.ndarray, bca: bool) -> Limits:
    """Bootstrap limits of mean(d) at any confidence, from one set of replicates."""

    def at(confidence: float) -> tuple[float, float]:
        low, high, _ = bootstrap_limits(d, boot, confidence=confidence, bca=bca)
        return low, high

    return at


def interval_pvalue(theta: float, limits: Limits) -> float:
    """The interval's own p-value for "no difference": the smallest 1 - confidence at which the
    interval excludes 0 (0.0 when it excludes 0 even at 1 - 1e-12; 1.0 when theta is 0)."""
    if theta == 0.0:
        return 1.0

    def margin(log_alpha: float) -> float:  # > 0 when the interval at this level excludes 0
        low, high = limits(1.0 - 10.0**log_alpha)
        return low if theta > 0 else -high

    floor, top = -12.0, math.log10(1.0 - 1e-9)
    if margin(floor) > 0:
        return 0.0
    if margin(top) <= 0:
        return 1.0
    from scipy.optimize import brentq

    return float(10.0 ** brentq(margin, floor, top, xtol=1e-6))


def agree(theta: float, low: float, high: float, p_test: float, confidence: float,
          limits: Limits, method: str, test: str) -> tuple[float, float, float, str, str]:
    """Make the interval and the p-value one criterion at alpha = 1 - confidence: ``p <= alpha``
    exactly when the interval excludes 0 (see the module doc). Returns (low, high, p, method,
    test), changed only where the two disagreed."""
    alpha = 1.0 - confidence
    excludes = low > 0.0 or high < 0.0
    if excludes and p_test > alpha:  # the test does not reject: the interval must reach 0
        low, high = min(low, 0.0), max(high, 0.0)
        method = f"{method} (extended to 0: the test does not reject)"
    elif not excludes and p_test <= alpha:  # the interval covers 0: the test may not reject
        # The root is found to a tolerance; at the level shown the interval itself decides.
        p_test = max(interval_pvalue(theta, limits), float(np.nextafter(alpha, 1.0)))
        test = f"{test} (p raised to the interval's: it covers 0)"
    return low, high, p_test, method, test


def _newcombe_phi(sa: Grouped, sb: Grouped) -> float:
    """Newcombe's corrected phi of the paired 2x2 table (one sample per prompt)."""
    a, b = sa.sums, sb.sums
    n = a.size
    n11 = float(np.sum(a * b))
    n00 = float(np.sum((1 - a) * (1 - b)))
    n10 = float(np.sum(a * (1 - b)))
    n01 = float(np.sum((1 - a) * b))
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    if margins == 0:
        return 0.0
    det = n11 * n00 - n10 * n01
    if det > n / 2:
        return float((det - n / 2) / np.sqrt(margins))
    if det >= 0:
        return 0.0
    return float(det / np.sqrt(margins))


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))


def _ids(values: np.ndarray, clusters: PromptIds) -> PromptIds:
    return list(range(values.size)) if clusters is None else clusters


def paired_difference(
    a: Values,
    b: Values,
    clusters: PromptIds = None,
    *,
    clusters_b: PromptIds = None,
    confidence: float = 0.95,
    method: PairedMethod = "auto",
    n_boot: int = 2000,
    n_perm: int = 10_000,
    rng: RngLike = None,
) -> Comparison:
    """Paired comparison of conditions A and B over the same prompts: B - A, interval, p-value.

    Args:
        a, b: 0/1 outcomes of each condition (NaN/None = missing sample, excluded and counted).
        clusters: prompt ids of ``a``'s samples, and of ``b``'s too unless ``clusters_b`` is given.
            None: ``a`` and ``b`` are aligned one sample per prompt (``a[i]`` and ``b[i]`` are the
            same prompt). Samples are aligned by prompt id; the conditions may have different
            numbers of samples per prompt. Prompts seen in one condition only are left out and
            counted in ``n_unmatched``.
        method: "auto"/"score" (Newcombe / MOVER score interval), "bootstrap-percentile",
            "bootstrap-bca" (paired cluster bootstrap over prompts).
        n_boot, n_perm: bootstrap resamples; Monte Carlo sign flips when the exact test is too big.
        rng: Generator, seed, or None for the fixed default seed.
    """
    confidence = check_confidence(confidence)
    if method not in _PAIRED_METHODS:
        raise ConfigError(f"unknown paired method {method!r}; choose one of "
                          f"{', '.join(_PAIRED_METHODS)}")
    n_perm = check_count("n_perm", n_perm, 100)
    va, vb = as_values(a, "a"), as_values(b, "b")
    if clusters is None:
        if clusters_b is not None:
            raise ConfigError("clusters_b was given without clusters; pass the prompt ids of a too")
        if va.size != vb.size:
            raise ConfigError(
                f"without prompt ids, a and b must be aligned one sample per prompt, but a has "
                f"{va.size} samples and b {vb.size}; pass clusters (and clusters_b) to align by id"
            )
    ga = group(va, _ids(va, clusters), name="a")
    gb = group(vb, _ids(vb, clusters if clusters_b is None else clusters_b), name="b")
    in_b = set(gb.keys)
    common = [k for k in ga.keys if k in in_b]
    if not common:
        raise ConfigError(
            "no prompt appears in both conditions, so nothing can be paired; check the prompt "
            "ids, or use unpaired_difference for conditions run on different prompts"
        )
    sa, sb = ga.subset(common), gb.subset(common)
    gen = as_rng(rng)
    theta = float(sb.means.mean() - sa.means.mean())
    one_each = sa.singleton and sb.singleton
    p_value, test = signflip_pvalue(sa, sb, n_perm=n_perm, rng=gen)
    if one_each:
        r, score_name = _newcombe_phi(sa, sb), "newcombe-paired"
    else:
        r, score_name = _correlation(sa.means, sb.means), "mover-wilson-design-effect"
    label = score_name
    limits = _score_limits(sa, sb, theta, r)
    if method.startswith("bootstrap"):
        n_boot = check_count("n_boot", n_boot, 100)
        d = sb.means - sa.means
        if d.size < 2 or np.ptp(d) == 0.0:
            label = f"{score_name} (bootstrap degenerate)"
        else:
            boot = bootstrap_means(d, n_boot, gen)
            bca = method == "bootstrap-bca"
            kind = bootstrap_limits(d, boot, confidence=confidence, bca=bca)[2]
            label, limits = f"paired-cluster-bootstrap-{kind}", _bootstrap_limits(d, boot, bca)
    low, high = limits(confidence)
    low, high, p_value, label, test = agree(theta, low, high, p_value, confidence, limits, label,
                                            test)
    return Comparison(
        theta, low, high, confidence, p_value, label, test, True,
        float(sa.means.mean()), float(sb.means.mean()), sa.n_prompts, sb.n_prompts,
        sa.n_samples, sb.n_samples, len(ga.keys) + len(gb.keys) - 2 * len(common),
        ga.n_missing + gb.n_missing,
    )


def unpaired_difference(
    a: Values,
    clusters_a: PromptIds,
    b: Values,
    clusters_b: PromptIds,
    *,
    confidence: float = 0.95,
) -> Comparison:
    """B - A for conditions run on *different* prompts; labelled ``paired=False``.

    Prefer `paired_difference` whenever the prompts are the same: it is more precise and its test
    is exact. ``clusters_a``/``clusters_b`` may be None (one sample per prompt).
    """
    confidence = check_confidence(confidence)
    ga = group(a, clusters_a, name="a")
    gb = group(b, clusters_b, name="b")
    lims_a, lims_b = _wilson_limits(ga, confidence), _wilson_limits(gb, confidence)
    pa, pb = lims_a[0], lims_b[0]
    theta = pb - pa
    low, high = _square_and_add(theta, lims_b, lims_a, 0.0)
    # Pooled z-test on effective sizes (Rao-Scott). When a design effect was estimated, the
    # statistic is referred to Student's t on the prompts' degrees of freedom, as the intervals.
    na = effective_size(ga, confidence).n
    nb = effective_size(gb, confidence).n
    pooled = (pa * na + pb * nb) / (na + nb)
    clustered = not (ga.singleton and gb.singleton)
    if 0.0 < pooled < 1.0:
        z = abs(theta) / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
        df = ga.n_prompts + gb.n_prompts - 2
        tail = t_sf(z, df) if clustered and df > 0 else float(norm_cdf(-z))
        p_value = min(1.0, 2.0 * tail)
    else:
        p_value = 1.0
    method = "mover-wilson-design-effect" if clustered else "newcombe-unpaired"
    test = "z-test-rao-scott" if clustered else "z-test-pooled"

    def limits(c: float) -> tuple[float, float]:
        return _square_and_add(theta, _wilson_limits(gb, c), _wilson_limits(ga, c), 0.0)

    low, high, p_value, method, test = agree(theta, low, high, p_value, confidence, limits,
                                             method, test)
    return Comparison(theta, low, high, confidence, p_value, method, test, False, pa, pb,
                      ga.n_prompts, gb.n_prompts, ga.n_samples, gb.n_samples, 0,
                      ga.n_missing + gb.n_missing)
