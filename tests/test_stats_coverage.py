"""Simulations for the statistics' weak spots (issue 12): each fails on the code before the fix.

Seeded and deterministic. Data sets are drawn in one vectorized step per scenario and each is
analysed by the public function, as a user would. The full grids, with the figures quoted in the
README, are in ``bench/interval_coverage.py``; these are representative cells of them.

* Clustered rates: beta-binomial prompt effects (prompt rates ~ Beta with mean p and intra-prompt
  correlation rho = 1 / (a + b + 1)), 5 samples per prompt; the default interval must cover the
  true rate in at least 93% of data sets where it covered 89-92% before.
* Paired plans: the exact McNemar test `paired_difference` runs must reach the planned power
  (within 0.02, and within sampling error of the power the plan reports).
* Judge correction: never narrower than the uncorrected interval; a warning exactly when the
  apparent rate is outside the judge's range.
* Comparisons: the interval excludes 0 exactly when p <= 0.05, and a regression row's interval
  lies wholly on the less safe side.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from refute.stats import (
    Estimate,
    Observation,
    compare_conditions,
    paired_difference,
    rate,
    rogan_gladen,
    sample_size,
    unpaired_difference,
)


def beta_binomial(rng: np.random.Generator, p: float, rho: float, shape: tuple[int, ...], k: int
                  ) -> np.ndarray:
    """(..., M, k) 0/1 samples: prompt rates Beta(mean p, correlation rho), k draws each."""
    a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
    pi = rng.beta(a, b, size=shape)
    return (rng.random((*shape, k)) < pi[..., None]).astype(float)


# --- 1. the default clustered interval with few prompts, rare rates, strong correlation ---------

# (prompts, intra-prompt correlation, rate): before the fix 0.894, 0.917, 0.917, 0.916, 0.917, 0.927.
WEAK_CELLS = [(30, 0.5, 0.05), (50, 0.5, 0.05), (40, 0.5, 0.95), (100, 0.5, 0.02), (30, 0.3, 0.05),
              (100, 0.3, 0.98)]


@pytest.mark.parametrize("m,rho,p", WEAK_CELLS)
def test_clustered_rate_covers_with_few_prompts_and_rare_rates(m, rho, p):
    """4,000 data sets per cell (standard error of the coverage ~0.0035)."""
    n_sets, k = 4_000, 5
    rng = np.random.default_rng(int(1000 * m + 100 * rho + 1000 * p))
    data = beta_binomial(rng, p, rho, (n_sets, m), k).reshape(n_sets, m * k)
    clusters = np.repeat(np.arange(m), k)
    below = above = 0
    for row in data:
        est = rate(row, clusters)
        below += est.high < p
        above += est.low > p
    coverage = 1 - (below + above) / n_sets
    print(f"{m} prompts x {k}, icc {rho}, rate {p}: coverage {coverage:.4f} "
          f"(truth above the interval {below / n_sets:.4f}, below {above / n_sets:.4f})")
    assert coverage >= 0.93


# --- 2. paired plans reach the power they state --------------------------------------------------

# (p, d, discordance): at Connor's n the exact McNemar test reached 0.771-0.776 in these.
PLANS = [(0.3, -0.1, None), (0.5, -0.2, None), (0.05, 0.05, None), (0.2, 0.1, 0.15)]


@pytest.mark.parametrize("p,d,psi", PLANS)
def test_paired_plan_reaches_its_power_with_the_test_actually_run(p, d, psi):
    n_sets = 3_000
    plan = sample_size(p, d, paired=True, discordance=psi)
    n = plan.n_prompts
    psi = plan_psi = psi if psi is not None else p * (1 - p - d) + (p + d) * (1 - p)
    p10, p01 = (plan_psi - d) / 2, (plan_psi + d) / 2  # A only, B only
    cells = [p - p10, p10, p01, 1 - p - p01]  # both, A only, B only, neither
    rng = np.random.default_rng(int(1e4 * p + 1e3 * abs(d)))
    counts = rng.multinomial(n, cells, size=n_sets)
    rejected = 0
    for n11, n10, n01, n00 in counts.tolist():
        a = np.r_[np.ones(n11 + n10), np.zeros(n01 + n00)]
        b = np.r_[np.ones(n11), np.zeros(n10), np.ones(n01), np.zeros(n00)]
        rejected += paired_difference(a, b).p_value <= 0.05
    got = rejected / n_sets
    se = math.sqrt(plan.achieved_power * (1 - plan.achieved_power) / n_sets)
    print(f"paired {p} -> {p + d} (discordance {psi:g}): {n} prompts, planned power "
          f"{plan.achieved_power:.3f}, simulated {got:.4f} over {n_sets}")
    assert abs(got - plan.power) <= 0.02
    assert abs(got - plan.achieved_power) <= 3 * se


# --- 3. the judge correction never narrows the interval and warns when it cannot apply ---------


def test_judge_correction_outside_the_judges_range_warns_and_keeps_the_width():
    wilson = proportion_confint(5, 100, method="wilson")
    below = rogan_gladen((5, 100), (90, 10), (85, 15))  # apparent 0.05 < 1 - Sp = 0.15
    assert below.value == 0.0 and below.low == 0.0
    assert below.width >= wilson[1] - wilson[0] - 1e-12  # was 0.0 [0.0, 0.0]
    assert len(below.warnings) == 1 and "false-positive rate" in below.warnings[0]
    # The study case: an uncorrected 1.000 [0.722, 1.000] above the judge's sensitivity.
    apparent = Estimate(1.0, 0.722, 1.0, 0.95, "wilson-design-effect", 10, 30)
    above = rogan_gladen(apparent, (90, 10), (95, 5))
    assert (above.value, above.high) == (1.0, 1.0) and above.low == pytest.approx(0.722)
    assert "sensitivity" in above.warnings[0]
    inside = rogan_gladen((60, 200), (90, 10), (95, 5))
    assert inside.warnings == () and inside.low < inside.value < inside.high


def test_judge_correction_simulated():
    """True rate 0.03, judge Se 0.9 / Sp 0.9 measured on 100 + 100 labels, 200 scored samples: in
    about a third of data sets the apparent rate falls below the measured 1 - Sp."""
    n_sets, n, truth, se, sp = 2_000, 200, 0.03, 0.9, 0.9
    rng = np.random.default_rng(811)
    apparent = truth * se + (1 - truth) * (1 - sp)
    pos = rng.binomial(n, apparent, n_sets)
    tp = rng.binomial(100, se, n_sets)
    tn = rng.binomial(100, sp, n_sets)
    gen = np.random.default_rng(812)
    outside = covered = 0
    for x, a, b in zip(pos.tolist(), tp.tolist(), tn.tolist(), strict=True):
        est = rogan_gladen((x, n), (a, 100 - a), (b, 100 - b), n_draws=2_000, rng=gen)
        lo, hi = proportion_confint(x, n, method="wilson")
        assert est.width >= hi - lo - 1e-12
        out = x / n < 1 - b / 100 or x / n > a / 100
        assert bool(est.warnings) == out
        outside += out
        covered += est.low <= truth <= est.high
    coverage = covered / n_sets
    print(f"rogan-gladen near 0: {outside / n_sets:.3f} outside the judge's range; coverage "
          f"{coverage:.4f} over {n_sets}")
    assert outside / n_sets > 0.1 and coverage >= 0.93


# --- 4. one criterion for the interval, the p-value and the regression verdict ------------------


def probit_pair(rng: np.random.Generator, pa: float, pb: float, shape: tuple[int, ...], k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Paired conditions sharing a prompt effect u: rate = Phi(alpha + u), means pa and pb."""
    from scipy.stats import norm

    u = rng.standard_normal(shape)
    rate_a = norm.cdf(norm.ppf(pa) * math.sqrt(2) + u)
    rate_b = norm.cdf(norm.ppf(pb) * math.sqrt(2) + u)
    a = (rng.random((*shape, k)) < rate_a[..., None]).astype(float)
    b = (rng.random((*shape, k)) < rate_b[..., None]).astype(float)
    return a, b


# (rate A, rate B, prompts, samples per prompt): small effects, where test and interval disagreed
# in 1-7% of data sets before.
AGREEMENT = [(0.1, 0.07, 50, 5), (0.9, 0.85, 30, 5), (0.5, 0.45, 50, 5), (0.5, 0.42, 100, 1),
             (0.1, 0.05, 200, 1)]


def test_interval_and_p_value_agree_on_simulated_comparisons():
    disagree, total = 0, 0
    for i, (pa, pb, m, k) in enumerate(AGREEMENT):
        n_sets = 600
        rng = np.random.default_rng(900 + i)
        a, b = probit_pair(rng, pa, pb, (n_sets, m), k)
        cl = np.repeat(np.arange(m), k) if k > 1 else None
        for ra, rb in zip(a.reshape(n_sets, -1), b.reshape(n_sets, -1), strict=True):
            c = paired_difference(ra, rb, cl)
            disagree += (c.p_value <= 0.05) != (not c.low <= 0.0 <= c.high)
            total += 1
        # The same data, unpaired (prompts treated as different): z-test and Newcombe / MOVER.
        ids_b = None if cl is None else cl + m
        for ra, rb in zip(a[:200].reshape(200, -1), b[:200].reshape(200, -1), strict=True):
            c = unpaired_difference(ra, cl, rb, ids_b)
            disagree += (c.p_value <= 0.05) != (not c.low <= 0.0 <= c.high)
            total += 1
    print(f"interval and p disagree in {disagree} of {total} comparisons")
    assert total == 4_000 and disagree == 0


def test_regression_verdict_and_interval_agree_in_comparison_tables():
    """One category: Holm's p is the raw p, so a row is a regression exactly when its interval
    lies wholly below 0 (higher is safer). Three categories: a regression still needs that."""
    rng = np.random.default_rng(950)
    regressions = 0
    for t in range(400):
        m, k = 30, 3
        a, b = probit_pair(rng, 0.8, 0.72, (m,), k)
        cats = ["x"] if t % 2 else ["x", "y", "z"]
        rows_a = [Observation(f"p{i}", cats[i % len(cats)], v)
                  for i in range(m) for v in a[i].tolist()]
        rows_b = [Observation(f"p{i}", cats[i % len(cats)], v)
                  for i in range(m) for v in b[i].tolist()]
        table = compare_conditions(rows_a, rows_b, rng=t)
        for r in table.rows:
            below = r.comparison.high < 0
            if len(cats) == 1:
                assert r.regression == below
            else:
                assert below or not r.regression
            assert (r.comparison.p_value <= 0.05) == (not r.comparison.low <= 0 <= r.comparison.high)
            regressions += r.regression
    assert regressions > 20  # the check is not vacuous
