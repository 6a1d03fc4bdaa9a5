"""Simulations: interval coverage and type-I error of refute.stats, through the public functions.

Seeds are fixed, so every figure is deterministic. Data sets are drawn in one vectorized step per
scenario; each is then analysed by the public function, as a user would. Clustered data are
beta-binomial: prompt rates p_i ~ Beta with mean p and intra-prompt correlation rho =
1 / (a + b + 1), then k Bernoulli(p_i) samples per prompt. Paired data share the prompt effect
(probit random intercept) between conditions.

Acceptance: nominal 95% intervals cover the truth in [94%, 96%] of data sets; tests at alpha 0.05
reject a true null at most alpha + 3 standard errors of the simulated rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from refute.stats import paired_difference, rate, rogan_gladen, unpaired_difference

ALPHA = 0.05
LOW, HIGH = 0.94, 0.96


def type_one_limit(n_sets: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_sets)


def covers(est, truth: float) -> bool:
    return est.low <= truth <= est.high


def beta_binomial(rng: np.random.Generator, p: float, rho: float, shape: tuple[int, ...], k: int
                  ) -> np.ndarray:
    """(..., M, k) samples: prompt rates Beta(mean p, correlation rho), k Bernoulli draws each."""
    a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
    pi = rng.beta(a, b, size=shape)
    return (rng.random((*shape, k)) < pi[..., None]).astype(float)


def probit_pair(rng: np.random.Generator, pa: float, pb: float, sigma: float,
                shape: tuple[int, ...], ka: int, kb: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired conditions sharing a prompt effect u: p_i = Phi(alpha + sigma u_i), mean pa / pb."""
    scale = math.sqrt(1 + sigma**2)
    u = rng.standard_normal(shape)
    rate_a = sps.norm.cdf(sps.norm.ppf(pa) * scale + sigma * u)
    rate_b = sps.norm.cdf(sps.norm.ppf(pb) * scale + sigma * u)
    a = (rng.random((*shape, ka)) < rate_a[..., None]).astype(float)
    b = (rng.random((*shape, kb)) < rate_b[..., None]).astype(float)
    return a, b


# --- rates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("p,seed", [(0.02, 101), (0.5, 102), (0.97, 103)])
def test_wilson_coverage_one_sample_per_prompt(p, seed):
    """n drawn from 200..400 per data set: Wilson's coverage oscillates with n, averaging ~95%."""
    n_sets = 20_000
    rng = np.random.default_rng(seed)
    sizes = rng.integers(200, 401, n_sets)
    hits = rng.binomial(sizes, p)
    hit = 0
    for n, x in zip(sizes.tolist(), hits.tolist(), strict=True):
        v = np.zeros(n)
        v[:x] = 1.0
        est = rate(v)
        hit += covers(est, p)
    assert est.method == "wilson"
    coverage = hit / n_sets
    print(f"wilson p={p}: coverage {coverage:.4f} over {n_sets} data sets")
    assert LOW <= coverage <= HIGH


@pytest.mark.parametrize("p,seed", [(0.05, 201), (0.5, 202), (0.95, 203)])
def test_clustered_coverage_icc_03(p, seed):
    """100 prompts x 5 samples, intra-prompt correlation 0.3 (design effect 2.2).

    40,000 data sets (standard error of the coverage 0.0011): near 0 and 1 the design-effect
    Wilson interval sits at about 94.4%, inside the band but not by much.
    """
    n_sets, chunk, m, k = 40_000, 10_000, 100, 5
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(m), k)
    hit = 0
    for _ in range(n_sets // chunk):
        data = beta_binomial(rng, p, 0.3, (chunk, m), k).reshape(chunk, m * k)
        for row in data:
            est = rate(row, clusters)
            hit += covers(est, p)
    assert est.method.startswith("wilson-design-effect")
    coverage = hit / n_sets
    print(f"clustered p={p}: coverage {coverage:.4f} over {n_sets} data sets")
    assert LOW <= coverage <= HIGH


def test_cluster_bootstrap_bca_coverage():
    """The BCa cluster bootstrap (on request) in the same clustered design at p = 0.5.

    It runs slightly below nominal with 100 prompts (about 94.5%; worse with fewer prompts), which
    is why ``rate(method="auto")`` uses the design-effect Wilson interval instead.
    """
    n_sets, m, k, p = 4_000, 100, 5, 0.5
    rng = np.random.default_rng(301)
    data = beta_binomial(rng, p, 0.3, (n_sets, m), k).reshape(n_sets, m * k)
    clusters = np.repeat(np.arange(m), k)
    gen = np.random.default_rng(302)
    hit = sum(covers(rate(row, clusters, method="bootstrap-bca", n_boot=1000, rng=gen), p)
              for row in data)
    coverage = hit / n_sets
    print(f"cluster bootstrap BCa p={p}: coverage {coverage:.4f} over {n_sets} data sets")
    assert 0.93 <= coverage <= HIGH


# --- paired comparisons ----------------------------------------------------------------------


def test_mcnemar_type_one_error():
    """One sample per prompt, 200 prompts, prompt effects shared by both conditions, rate 0.3."""
    n_sets, m = 4_000, 200
    rng = np.random.default_rng(401)
    a, b = probit_pair(rng, 0.3, 0.3, 1.0, (n_sets, m), 1, 1)
    rejections = covered = 0
    for ra, rb in zip(a[..., 0], b[..., 0], strict=True):
        c = paired_difference(ra, rb)
        rejections += c.p_value <= ALPHA
        covered += c.low <= 0.0 <= c.high
    assert c.test == "mcnemar-exact"
    size, coverage = rejections / n_sets, covered / n_sets
    print(f"mcnemar: type-I {size:.4f}; newcombe coverage {coverage:.4f} over {n_sets}")
    assert size <= type_one_limit(n_sets)
    assert size >= 0.02  # exact McNemar is conservative, but not a test that never rejects
    # The interval covers 0 exactly when the test does not reject (one criterion), so under the
    # null its coverage is 1 - size: above 95% as the exact test is conservative (changed on
    # purpose; it was checked against the [94%, 96%] band before the two were made to agree).
    assert coverage == pytest.approx(1 - size) and coverage >= LOW


@pytest.mark.parametrize("p,ka,kb,seed", [(0.05, 5, 5, 501), (0.5, 5, 5, 502),
                                          (0.3, 3, 5, 503)])
def test_paired_clustered_type_one_error(p, ka, kb, seed):
    """100 prompts, several samples per prompt (possibly unequal across conditions), no effect."""
    n_sets, m = 6_000, 100
    rng = np.random.default_rng(seed)
    a, b = probit_pair(rng, p, p, 1.0, (n_sets, m), ka, kb)
    ca, cb = np.repeat(np.arange(m), ka), np.repeat(np.arange(m), kb)
    rejections = covered = 0
    for ra, rb in zip(a.reshape(n_sets, -1), b.reshape(n_sets, -1), strict=True):
        c = paired_difference(ra, rb, ca, clusters_b=cb)
        rejections += c.p_value <= ALPHA
        covered += c.low <= 0.0 <= c.high
    assert c.test.startswith("sign-flip-exact")
    assert c.method.startswith("mover-wilson-design-effect")
    size, coverage = rejections / n_sets, covered / n_sets
    print(f"paired clustered p={p} k={ka}/{kb}: type-I {size:.4f}; interval coverage "
          f"{coverage:.4f} over {n_sets}")
    assert size <= type_one_limit(n_sets)
    # As for McNemar: coverage of 0 under the null is 1 - size (changed on purpose; at p = 0.05
    # the conservative sign-flip test rejects ~3%, so the interval now covers ~97%).
    assert coverage == pytest.approx(1 - size) and coverage >= LOW


@pytest.mark.parametrize("pa,pb,seed", [(0.5, 0.4, 601), (0.1, 0.05, 602)])
def test_paired_clustered_interval_coverage_under_an_effect(pa, pb, seed):
    n_sets, m, k = 6_000, 100, 5
    rng = np.random.default_rng(seed)
    a, b = probit_pair(rng, pa, pb, 1.0, (n_sets, m), k, k)
    cl = np.repeat(np.arange(m), k)
    truth = pb - pa
    covered = sum(covers(paired_difference(ra, rb, cl), truth)
                  for ra, rb in zip(a.reshape(n_sets, -1), b.reshape(n_sets, -1), strict=True))
    coverage = covered / n_sets
    print(f"paired clustered {pa}->{pb}: interval coverage {coverage:.4f} over {n_sets}")
    assert LOW <= coverage <= HIGH


def test_unpaired_clustered_type_one_error():
    n_sets, m, k, p = 6_000, 100, 5, 0.3
    rng = np.random.default_rng(701)
    a = beta_binomial(rng, p, 0.3, (n_sets, m), k).reshape(n_sets, m * k)
    b = beta_binomial(rng, p, 0.3, (n_sets, m), k).reshape(n_sets, m * k)
    ca = np.repeat(np.arange(m), k)
    cb = ca + m
    rejections = covered = 0
    for ra, rb in zip(a, b, strict=True):
        c = unpaired_difference(ra, ca, rb, cb)
        rejections += c.p_value <= ALPHA
        covered += c.low <= 0.0 <= c.high
    size, coverage = rejections / n_sets, covered / n_sets
    print(f"unpaired clustered: type-I {size:.4f}; interval coverage {coverage:.4f}")
    assert size <= type_one_limit(n_sets)
    assert LOW <= coverage <= HIGH


# --- judge error -----------------------------------------------------------------------------


def test_rogan_gladen_coverage():
    """True rate 0.2, judge Se 0.85 / Sp 0.9 known from 100 + 100 labels, 300 scored samples."""
    n_sets, n, truth, se, sp = 1_000, 300, 0.2, 0.85, 0.9
    rng = np.random.default_rng(801)
    apparent = truth * se + (1 - truth) * (1 - sp)
    pos = rng.binomial(n, apparent, n_sets)
    tp = rng.binomial(100, se, n_sets)
    tn = rng.binomial(100, sp, n_sets)
    gen = np.random.default_rng(802)
    hit = sum(covers(rogan_gladen((int(x), n), (int(a), 100 - int(a)), (int(b), 100 - int(b)),
                                  n_draws=4_000, rng=gen), truth)
              for x, a, b in zip(pos, tp, tn, strict=True))
    coverage = hit / n_sets
    print(f"rogan-gladen: coverage {coverage:.4f} over {n_sets}")
    assert 0.93 <= coverage <= 0.98  # percentile bootstrap; 1,000 sets: standard error 0.007
