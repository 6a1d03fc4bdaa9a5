"""refute.stats: known values, agreement with scipy/statsmodels to 1e-6, edge cases and errors.

The coverage and type-I simulations live in test_stats_sim.py.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

import refute.stats as rs
from refute.errors import ConfigError
from refute.stats import (
    Observation,
    adjust_pvalues,
    compare_conditions,
    design_effect,
    icc,
    paired_difference,
    plan_from_pilot,
    power,
    rate,
    rates_by_category,
    rogan_gladen,
    sample_size,
    unpaired_difference,
)

TOL = 1e-6


def binary(x: int, n: int) -> np.ndarray:
    return np.r_[np.ones(x), np.zeros(n - x)]


def test_public_api_is_pinned():
    assert sorted(rs.__all__) == sorted([
        "DEFAULT_SEED", "Better", "CategoryRate", "Comparison", "ComparisonRow", "ComparisonTable",
        "Correction", "Direction", "Estimate", "LogisticFit", "Observation", "PairCorrelation", "PairedMethod",
        "Plan", "PowerMethod", "RateMethod", "StackStats", "adjust_pvalues", "bootstrap_interval", "compare_conditions",
        "conservative_end", "design_effect", "icc", "logistic_regression", "paired_difference", "pareto_front",
        "plan_from_pilot", "power", "rate", "rates_by_category", "rogan_gladen", "sample_size",
        "stack_statistics", "unpaired_difference",
    ])


def test_import_is_light():
    code = "import sys, refute.stats; print(sorted(m for m in ('scipy', 'torch', 'rich', " \
           "'statsmodels') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- rates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("x,n", [(0, 10), (1, 10), (7, 30), (50, 100), (199, 200), (200, 200),
                                 (3, 400)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_and_clopper_pearson_match_statsmodels(x, n, confidence):
    v = binary(x, n)
    w = rate(v, confidence=confidence)
    lo, hi = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    assert w.method == "wilson" and w.value == pytest.approx(x / n)
    assert abs(w.low - lo) < TOL and abs(w.high - hi) < TOL
    cp = rate(v, confidence=confidence, method="clopper-pearson")
    lo, hi = proportion_confint(x, n, alpha=1 - confidence, method="beta")
    assert cp.method == "clopper-pearson"
    assert abs(cp.low - lo) < TOL and abs(cp.high - hi) < TOL


def test_estimate_reports_counts_and_formats():
    e = rate([1, 0, None, 1, float("nan"), True, False], confidence=0.95)
    assert (e.n_prompts, e.n_samples, e.n_missing) == (5, 5, 2)
    assert e.value == pytest.approx(3 / 5)
    assert str(e) == f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"
    assert e.to_dict()["method"] == "wilson"


def test_rate_is_mean_of_prompt_rates_and_prompts_with_no_valid_sample_drop_out():
    values = [1, 1, 1, 0, 0, np.nan]
    clusters = ["a", "a", "a", "b", "b", "c"]  # a: 3/3, b: 0/2, c: missing only
    e = rate(values, clusters)
    assert e.value == pytest.approx(0.5)  # (1 + 0) / 2, not 3/5
    assert (e.n_prompts, e.n_samples, e.n_missing) == (2, 5, 1)


def test_clustered_wilson_uses_effective_sample_size():
    rng = np.random.default_rng(1)
    m, k = 60, 4
    cl = np.repeat(np.arange(m), k)
    y = (rng.random(m * k) < rng.beta(1, 2, m)[cl]).astype(float)
    e = rate(y, cl)
    means = y.reshape(m, k).mean(1)
    p = means.mean()
    n_hat = np.clip(p * (1 - p) / (means.var(ddof=1) / m), m, m * k)
    # Small-sample correction: n_hat shrunk toward m (each prompt counts once) by one event's
    # weight, 1 / n_eff = (S / n_hat + 1 / m) / (S + 1) with S events on the rarer side.
    events = min(y.sum(), y.size - y.sum())
    n_eff = (events + 1) / (events / n_hat + 1 / m)
    assert m < n_eff < n_hat
    # Wilson with t in place of z is Wilson with z on n_eff * (z / t)^2.
    z, t = sps.norm.ppf(0.975), sps.t.ppf(0.975, m - 1)
    lo, hi = proportion_confint(p * n_eff * (z / t) ** 2, n_eff * (z / t) ** 2, method="wilson")
    assert e.method == "wilson-design-effect"
    assert abs(e.low - lo) < TOL and abs(e.high - hi) < TOL
    # Clustering widens the interval relative to treating samples as independent.
    assert e.width > rate(y).width


def test_all_zero_clustered_counts_each_prompt_once():
    cl = np.repeat(np.arange(50), 5)
    e = rate(np.zeros(250), cl)
    assert e.method == "wilson-design-effect-max"
    assert e.low == 0.0
    z, t = sps.norm.ppf(0.975), sps.t.ppf(0.975, 49)
    assert abs(e.high - proportion_confint(0, 50 * (z / t) ** 2, method="wilson")[1]) < TOL
    assert e.high > rate(np.zeros(250)).high


def test_single_prompt_interval_is_for_that_prompt():
    e = rate([1, 0, 1, 1], ["p"] * 4)
    assert e.method == "wilson-single-prompt" and e.n_prompts == 1


def test_bootstrap_methods_are_seeded_and_labelled():
    rng = np.random.default_rng(2)
    cl = np.repeat(np.arange(40), 5)
    y = (rng.random(200) < rng.beta(1, 1, 40)[cl]).astype(float)
    a = rate(y, cl, method="bootstrap-bca", rng=7)
    b = rate(y, cl, method="bootstrap-bca", rng=np.random.default_rng(7))
    c = rate(y, cl, method="bootstrap-bca")  # default: fixed seed
    d = rate(y, cl, method="bootstrap-bca")
    assert a == b and c == d
    assert a.method == "cluster-bootstrap-bca"
    assert rate(y, cl, method="bootstrap-percentile").method == "cluster-bootstrap-percentile"
    assert a.low < a.value < a.high
    degenerate = rate(np.ones(200), cl, method="bootstrap-bca")
    assert degenerate.method == "wilson-design-effect-max (bootstrap degenerate)"
    assert degenerate.high == 1.0 and degenerate.low < 1.0


def test_rates_by_category_has_overall_row():
    values = [1, 0, 1, 1, 0, 0, 1, 1]
    prompts = ["a", "a", "b", "b", "c", "c", "d", "d"]
    cats = ["x", "x", "x", "x", "y", "y", "y", "y"]
    rows = rates_by_category(values, prompts, cats)
    assert [r.category for r in rows] == ["x", "y", "overall"]
    assert rows[-1].overall and not rows[0].overall
    assert rows[0].estimate.value == pytest.approx(0.75)
    assert rows[1].estimate.value == pytest.approx(0.5)
    assert rows[2].estimate.n_prompts == 4 and rows[2].estimate.n_samples == 8
    with pytest.raises(ConfigError, match="two categories"):
        rates_by_category([1, 0], ["a", "a"], ["x", "y"])


@pytest.mark.parametrize("bad,match", [
    (dict(values=[0, 1, 0.5]), "binary"),
    (dict(values=[0, 1, 2]), "binary"),
    (dict(values=[[0, 1]]), "one-dimensional"),
    (dict(values=[0, 1], clusters=["a"]), "prompt ids"),
    (dict(values=[np.nan, None]), "no valid samples"),
    (dict(values=[0, 1], method="wald"), "unknown rate method"),
    (dict(values=[0, 1], confidence=95), "confidence"),
    (dict(values=["yes", "no"]), "binary|0/1"),
])
def test_rate_errors_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        rate(**bad)


# --- paired and unpaired comparisons ---------------------------------------------------------


def paired_arrays(n11: int, n10: int, n01: int, n00: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) for a paired 2x2 table: n10 = a succeeds and b fails."""
    a = np.r_[np.ones(n11), np.ones(n10), np.zeros(n01), np.zeros(n00)]
    b = np.r_[np.ones(n11), np.zeros(n10), np.ones(n01), np.zeros(n00)]
    return a, b


@pytest.mark.parametrize("cells", [(10, 3, 12, 75), (5, 0, 0, 5), (1, 1, 7, 12), (30, 9, 9, 2),
                                   (0, 0, 1, 0), (59, 6, 16, 80), (100, 40, 11, 49)])
def test_mcnemar_matches_statsmodels(cells):
    a, b = paired_arrays(*cells)
    c = paired_difference(a, b)
    table = np.array([[cells[0], cells[1]], [cells[2], cells[3]]])
    assert abs(c.p_value - mcnemar(table, exact=True).pvalue) < TOL
    # (1, 1, 7, 12) and (59, 6, 16, 80): Newcombe's interval excludes 0 but McNemar's p > 0.05, so
    # the interval is extended to 0 (one criterion for the interval and the p-value).
    assert c.test == "mcnemar-exact" and c.paired and c.method.startswith("newcombe-paired")
    assert (c.p_value <= 0.05) == (not c.low <= 0.0 <= c.high)
    assert c.difference == pytest.approx((cells[2] - cells[1]) / sum(cells))


def test_newcombe_paired_without_correlation_equals_independent_newcombe():
    # Bentur et al. (2009), used by Fagerland, Lydersen & Laake: 1 1 / 7 12. Newcombe's corrected
    # phi is 0 here (AD - BC = 5 <= N/2), so method 10 reduces to the independent square-and-add.
    # Rows (before): 2 successes of 21; columns (after): 8 of 21.
    before = np.r_[1, 1, np.zeros(7), np.zeros(12)]
    after = np.r_[1, 0, np.ones(7), np.zeros(12)]
    c = paired_difference(after, before)  # before - after
    lo, hi = confint_proportions_2indep(2, 21, 8, 21, method="newcomb")
    assert c.difference == pytest.approx(2 / 21 - 8 / 21)
    # Newcombe's interval ends below 0 but McNemar's exact p is 0.070: the interval is extended to
    # 0 so that it agrees with the test (changed on purpose; the other end is Newcombe's).
    assert hi < 0 and c.p_value > 0.05
    assert abs(c.low - lo) < TOL and c.high == 0.0
    assert c.method == "newcombe-paired (extended to 0: the test does not reject)"


def test_newcombe_paired_with_correlation_follows_method_10():
    # Cavo et al. (2012): 59 6 / 16 80, strongly correlated pairs.
    n11, n12, n21, n22 = 59, 6, 16, 80
    n = n11 + n12 + n21 + n22
    first = np.r_[np.ones(n11 + n12), np.zeros(n21 + n22)]
    second = np.r_[np.ones(n11), np.zeros(n12), np.ones(n21), np.zeros(n22)]
    c = paired_difference(second, first)  # first - second
    p1, p2 = (n11 + n12) / n, (n11 + n21) / n
    l1, u1 = proportion_confint(n11 + n12, n, method="wilson")
    l2, u2 = proportion_confint(n11 + n21, n, method="wilson")
    det = n11 * n22 - n12 * n21
    phi = (det - n / 2) / math.sqrt((n11 + n12) * (n21 + n22) * (n11 + n21) * (n12 + n22))
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    hi = p1 - p2 + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    # As above, McNemar's exact p (0.052) does not reject, so the end below 0 is extended to 0.
    assert hi < 0 and c.p_value > 0.05
    assert abs(c.low - lo) < TOL and c.high == 0.0
    # The correlation narrows the interval relative to ignoring the pairing.
    u = unpaired_difference(second, None, first, None)
    assert c.high - c.low < u.high - u.low


def brute_force_signflip(d: np.ndarray) -> float:
    t = abs(d.sum())
    hits = [abs(np.dot(s, d)) >= t - 1e-12 for s in itertools.product([-1, 1], repeat=d.size)]
    return float(np.mean(hits))


def test_signflip_exact_matches_enumeration_with_unequal_counts():
    rng = np.random.default_rng(3)
    prompts, a, b, ca, cb = [], [], [], [], []
    for i in range(11):
        ka, kb = int(rng.integers(1, 4)), int(rng.integers(2, 5))
        pa, pb = rng.random(), rng.random()
        a += list((rng.random(ka) < pa).astype(float))
        b += list((rng.random(kb) < pb).astype(float))
        ca += [i] * ka
        cb += [i] * kb
        prompts.append(i)
    c = paired_difference(a, b, ca, clusters_b=cb)
    ma = np.array([np.mean([v for v, p in zip(a, ca, strict=True) if p == i]) for i in prompts])
    mb = np.array([np.mean([v for v, p in zip(b, cb, strict=True) if p == i]) for i in prompts])
    assert c.test == "sign-flip-exact"
    assert c.difference == pytest.approx((mb - ma).mean())
    assert c.p_value == pytest.approx(brute_force_signflip(mb - ma), abs=1e-12)


def test_signflip_monte_carlo_when_counts_have_no_small_common_multiple():
    counts = [7, 11, 13, 17, 19, 23, 7, 11, 13, 17]  # lcm > 100,000: Monte Carlo
    rng = np.random.default_rng(4)
    a, b, cl = [], [], []
    for i, k in enumerate(counts):
        a += list((rng.random(k) < 0.3).astype(float))
        b += list((rng.random(k) < 0.6).astype(float))
        cl += [i] * k
    c = paired_difference(a, b, cl, n_perm=20_000, rng=5)
    ma = np.array([np.mean([v for v, p in zip(a, cl, strict=True) if p == i]) for i in range(10)])
    mb = np.array([np.mean([v for v, p in zip(b, cl, strict=True) if p == i]) for i in range(10)])
    exact = brute_force_signflip(mb - ma)
    assert c.test == "sign-flip-monte-carlo"
    assert abs(c.p_value - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4


def test_paired_alignment_by_prompt_id_and_unmatched_prompts():
    a = [1, 1, 0, 0, 1]
    ca = ["p1", "p1", "p2", "p2", "p3"]
    b = [0, 1, 1, 0]
    cb = ["p2", "p2", "p1", "p4"]  # p3 only in a, p4 only in b
    c = paired_difference(a, b, ca, clusters_b=cb)
    # p1: a 1.0, b 1.0; p2: a 0.0, b 0.5 -> mean difference 0.25
    assert c.difference == pytest.approx(0.25)
    assert c.n_prompts_a == c.n_prompts_b == 2 and c.n_unmatched == 2
    with pytest.raises(ConfigError, match="no prompt appears in both"):
        paired_difference([1, 0], [1, 0], ["a", "b"], clusters_b=["c", "d"])
    with pytest.raises(ConfigError, match="aligned one sample per prompt"):
        paired_difference([1, 0, 1], [1, 0])


def test_paired_bootstrap_methods_and_identical_conditions():
    rng = np.random.default_rng(6)
    cl = np.repeat(np.arange(60), 4)
    base = rng.beta(1, 1, 60)[cl]
    a = (rng.random(240) < base).astype(float)
    b = (rng.random(240) < np.clip(base - 0.15, 0, 1)).astype(float)
    auto = paired_difference(a, b, cl)
    perc = paired_difference(a, b, cl, method="bootstrap-percentile")
    bca = paired_difference(a, b, cl, method="bootstrap-bca")
    assert auto.method == "mover-wilson-design-effect" and auto.test == "sign-flip-exact"
    assert perc.method == "paired-cluster-bootstrap-percentile"
    assert bca.method == "paired-cluster-bootstrap-bca"
    assert auto.p_value == perc.p_value == bca.p_value  # the test does not depend on the interval
    for c in (auto, perc, bca):
        assert c.low < c.difference < c.high < 0.05
    same = paired_difference(a, a, cl, method="bootstrap-bca")
    assert same.difference == 0 and same.p_value == 1.0
    assert same.method == "mover-wilson-design-effect (bootstrap degenerate)"
    assert same.low < 0 < same.high


@pytest.mark.parametrize("xa,na,xb,nb", [(10, 50, 20, 60), (0, 40, 5, 40), (97, 100, 80, 90),
                                         (3, 200, 3, 150)])
def test_unpaired_matches_statsmodels(xa, na, xb, nb):
    c = unpaired_difference(binary(xa, na), None, binary(xb, nb), None)
    lo, hi = confint_proportions_2indep(xb, nb, xa, na, method="newcomb")
    _, p = proportions_ztest([xb, xa], [nb, na])
    assert not c.paired and c.method == "newcombe-unpaired" and c.test == "z-test-pooled"
    assert abs(c.low - lo) < TOL and abs(c.high - hi) < TOL
    assert abs(c.p_value - p) < TOL


def test_unpaired_clustered_is_labelled():
    cl = np.repeat(np.arange(30), 3)
    rng = np.random.default_rng(8)
    c = unpaired_difference(rng.random(90) < 0.3, cl, rng.random(90) < 0.5, cl + 100)
    assert c.method == "mover-wilson-design-effect" and c.test == "z-test-rao-scott"
    assert "unpaired" in str(c)


# --- multiple comparisons --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method,sm", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_pvalues_matches_statsmodels(seed, method, sm):
    rng = np.random.default_rng(seed)
    p = np.r_[rng.random(12) ** 3, 0.01, 0.01, 1.0]  # includes ties and a 1
    assert np.max(np.abs(adjust_pvalues(p, method) - multipletests(p, method=sm)[1])) < TOL


def test_adjust_pvalues_known_values_and_nan():
    assert adjust_pvalues([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_pvalues([0.01, 0.04, 0.03], "bh") == pytest.approx([0.03, 0.04, 0.04])
    out = adjust_pvalues([0.01, np.nan, 0.04], "holm")
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.04)
    with pytest.raises(ConfigError, match="holm"):
        adjust_pvalues([0.1], "bonferroni")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        adjust_pvalues([1.5])


# --- power and sample size -------------------------------------------------------------------


def test_sample_size_normal_known_value():
    plan = sample_size(0.5, 0.1)
    assert plan.n_prompts == 388  # (1.96 sqrt(2 .55 .45) + 0.8416 sqrt(.25 + .24))^2 / .01
    assert plan.n_independent == pytest.approx(387.3, abs=0.1)
    assert plan.achieved_power >= 0.8
    assert power(0.5, 0.1, plan.n_independent) == pytest.approx(0.8, abs=1e-9)


@pytest.mark.parametrize("p,d,alpha,target,two_sided", [
    (0.5, 0.1, 0.05, 0.8, True), (0.1, 0.05, 0.05, 0.8, True), (0.9, -0.1, 0.01, 0.9, True),
    (0.02, 0.03, 0.05, 0.8, False), (0.3, -0.2, 0.1, 0.95, True),
])
def test_cohen_h_matches_statsmodels(p, d, alpha, target, two_sided):
    h = abs(proportion_effectsize(p + d, p))
    alt = "two-sided" if two_sided else "larger"
    plan = sample_size(p, d, alpha=alpha, power=target, two_sided=two_sided, method="cohen-h")
    ref = NormalIndPower().solve_power(h, alpha=alpha, power=target, alternative=alt)
    assert plan.n_independent == pytest.approx(ref, rel=TOL)
    # Our root is exact: statsmodels' own power function gives the target at it.
    got = NormalIndPower().power(h, plan.n_independent, alpha, alternative=alt)
    assert abs(got - target) < 1e-9
    for n in (20, 137, 1000):
        ours = power(p, d, n, alpha=alpha, two_sided=two_sided, method="cohen-h")
        assert abs(ours - NormalIndPower().power(h, n, alpha, alternative=alt)) < TOL


def test_design_effect_inflates_prompts():
    assert design_effect(5, 0.3) == pytest.approx(2.2)
    flat = sample_size(0.1, 0.05)
    clustered = sample_size(0.1, 0.05, samples_per_prompt=5, icc=0.3)
    assert clustered.design_effect == pytest.approx(2.2)
    assert clustered.n_prompts == math.ceil(flat.n_independent * 2.2 / 5)
    assert clustered.n_samples == 5 * clustered.n_prompts
    # icc = 0: k samples per prompt are worth k independent samples
    assert sample_size(0.1, 0.05, samples_per_prompt=5).n_prompts == math.ceil(
        flat.n_independent / 5)
    assert power(0.1, 0.05, clustered.n_prompts, samples_per_prompt=5, icc=0.3) >= 0.8


def exact_mcnemar_power(n: int, p1: float, p2: float, psi: float, alpha: float = 0.05) -> float:
    """Brute force: sum over discordant counts D and B's share x of the statsmodels-form p."""
    q = (psi + p2 - p1) / 2 / psi
    total = 0.0
    for d in range(n + 1):
        w = sps.binom.pmf(d, n, psi)
        if w < 1e-15:
            continue
        x = np.arange(d + 1)
        p = np.minimum(1.0, 2 * sps.binom.cdf(np.minimum(x, d - x), d, 0.5))
        total += w * float(np.sum(sps.binom.pmf(x, d, q) * (p <= alpha)))
    return total


def test_paired_sample_size_is_exact_mcnemar():
    # Changed on purpose: the plan was Connor's normal approximation (689 prompts), at which the
    # exact McNemar test that paired_difference runs has power 0.78, not the 0.80 asked.
    plan = sample_size(0.1, 0.05, paired=True)
    psi = 0.1 * 0.85 + 0.15 * 0.9
    z_a, z_b = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    connor = (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - 0.0025)) ** 2 / 0.0025
    assert math.ceil(connor) == 689 and exact_mcnemar_power(689, 0.1, 0.15, psi) < 0.785
    assert plan.n_prompts == 722 and plan.n_independent == 722 and plan.method == "mcnemar-exact"
    assert exact_mcnemar_power(722, 0.1, 0.15, psi) == pytest.approx(plan.achieved_power, abs=1e-9)
    assert plan.achieved_power >= 0.8 > exact_mcnemar_power(721, 0.1, 0.15, psi)
    assert power(0.1, 0.05, 722, paired=True) == pytest.approx(plan.achieved_power)
    # Less discordance (positively correlated conditions) needs fewer prompts.
    assert sample_size(0.1, 0.05, paired=True, discordance=0.1).n_prompts < 689
    with pytest.raises(ConfigError, match="one sample per prompt"):
        sample_size(0.1, 0.05, paired=True, samples_per_prompt=3)
    with pytest.raises(ConfigError, match="discordance"):
        sample_size(0.1, 0.05, paired=True, discordance=0.01)


@pytest.mark.parametrize("kwargs,match", [
    (dict(p=0.0, d=0.1), "p"), (dict(p=0.5, d=0.0), "d must be"), (dict(p=0.95, d=0.1), "d must"),
    (dict(p=0.5, d=0.1, power=1.2), "power"), (dict(p=0.5, d=0.1, icc=1.5), "icc"),
    (dict(p=0.5, d=0.1, method="exact"), "unknown power method"),
])
def test_sample_size_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sample_size(**kwargs)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_prompts=NAN), "n_prompts"), (dict(n_prompts=INF), "n_prompts"),
    (dict(n_prompts=-3), "n_prompts"), (dict(n_prompts=True), "n_prompts"),
    (dict(n_prompts="100"), "n_prompts"), (dict(n_prompts=100.5, paired=True), "whole number"),
    (dict(samples_per_prompt=NAN), "samples_per_prompt"),
    (dict(samples_per_prompt=INF), "samples_per_prompt"),
    (dict(samples_per_prompt=2.5), "whole number"), (dict(p=NAN), "p "), (dict(d=NAN), "d "),
    (dict(d=INF), "d "), (dict(alpha=NAN), "alpha"), (dict(icc=NAN), "icc"),
    (dict(icc=-0.1), "icc"), (dict(paired=True, discordance=NAN), "discordance"),
])
def test_power_rejects_nan_and_out_of_range_arguments(kwargs, match):
    # These passed silently before (NaN or a meaningless power), or raised a bare ValueError.
    args = {"p": 0.5, "d": 0.1, "n_prompts": 100, **kwargs}
    with pytest.raises(ConfigError, match=match):
        power(**args)


@pytest.mark.parametrize("k,rho,match", [
    (NAN, 0.2, "samples_per_prompt"), (INF, 0.2, "samples_per_prompt"), (0.5, 0.2, ">= 1"),
    ("5", 0.2, "samples_per_prompt"), (5, NAN, "icc"), (5, -0.1, "icc"), (5, 1.5, "icc"),
    (5, INF, "icc"),
])
def test_design_effect_rejects_nan_and_out_of_range_arguments(k, rho, match):
    with pytest.raises(ConfigError, match=match):
        design_effect(k, rho)
    with pytest.raises(ConfigError):
        sample_size(0.5, 0.1, power=NAN)


@pytest.mark.parametrize("apparent,sens,spec,match", [
    ((5, INF), (90, 10), (85, 15), "apparent"), ((5, NAN), (90, 10), (85, 15), "apparent"),
    ((5, 100), (INF, 10), (85, 15), "sensitivity"), ((5, 100), (90, NAN), (85, 15), "sensitivity"),
    ((5, 100), (90, 10), (85, -1), "specificity"), ((5, 100), (90, 10), (85.5, 15), "specificity"),
    ((500, 100), (90, 10), (85, 15), "exceed"),
    (rs.Estimate(NAN, 0.1, 0.3, 0.95, "wilson", 10, 10), (90, 10), (85, 15), "apparent estimate"),
    (rs.Estimate(0.2, NAN, 0.3, 0.95, "wilson", 10, 10), (90, 10), (85, 15), "apparent estimate"),
    (rs.Estimate(1.5, 0.1, 1.0, 0.95, "wilson", 10, 10), (90, 10), (85, 15), "apparent estimate"),
    (rs.Estimate(0.2, 0.3, 0.1, 0.95, "wilson", 10, 10), (90, 10), (85, 15), "apparent estimate"),
    (rs.Estimate(0.2, 0.1, 0.3, NAN, "wilson", 10, 10), (90, 10), (85, 15), "confidence"),
])
def test_rogan_gladen_rejects_nan_and_out_of_range_arguments(apparent, sens, spec, match):
    # Before: NaN estimates came back as nan [nan, nan], a rate of 1.5 as 1.000 [0.000, 1.000],
    # infinite counts raised OverflowError.
    with pytest.raises(ConfigError, match=match):
        rogan_gladen(apparent, sens, spec)


def test_icc_matches_one_way_anova():
    rng = np.random.default_rng(9)
    sizes = rng.integers(2, 8, 40)
    cl = np.repeat(np.arange(40), sizes)
    y = (rng.random(cl.size) < rng.beta(0.6, 1.4, 40)[cl]).astype(float)
    groups = [y[cl == i] for i in range(40)]
    f = sps.f_oneway(*groups).statistic
    n = cl.size
    n0 = (n - np.sum(sizes**2) / n) / 39
    assert icc(y, cl) == pytest.approx((f - 1) / (f + n0 - 1), abs=1e-12)
    with pytest.raises(ConfigError, match="same value"):
        icc(np.zeros(20), np.repeat(np.arange(5), 4))
    with pytest.raises(ConfigError, match="several samples"):
        icc([0, 1, 1], [1, 2, 3])


def test_plan_from_pilot_uses_pilot_rate_and_icc():
    rng = np.random.default_rng(10)
    cl = np.repeat(np.arange(80), 5)
    y = (rng.random(400) < rng.beta(0.9, 2.1, 80)[cl]).astype(float)
    plan = plan_from_pilot(y, cl, -0.1)
    assert plan.samples_per_prompt == 5
    assert plan.icc == pytest.approx(icc(y, cl))
    assert plan.p == pytest.approx(rate(y, cl).value)
    assert plan.n_prompts == sample_size(plan.p, -0.1, samples_per_prompt=5,
                                         icc=plan.icc).n_prompts


# --- judge error -----------------------------------------------------------------------------


def test_rogan_gladen_point_and_interval():
    e = rogan_gladen((60, 200), (90, 10), (95, 5))
    assert e.value == pytest.approx((0.3 + 0.95 - 1) / (0.9 + 0.95 - 1))
    assert e.method == "rogan-gladen-bootstrap" and e.low < e.value < e.high
    # Judge uncertainty widens the interval beyond the apparent rate's own.
    apparent = rate(binary(60, 200))
    assert e.width > apparent.width
    # A near-perfect, well-measured judge leaves the apparent interval nearly unchanged.
    perfect = rogan_gladen(apparent, (100_000, 0), (100_000, 0), rng=1)
    assert perfect.value == pytest.approx(0.3)
    assert abs(perfect.low - apparent.low) < 0.01 and abs(perfect.high - apparent.high) < 0.01
    # More labelled data -> narrower interval; reproducible with the default seed.
    more = rogan_gladen((60, 200), (900, 100), (950, 50))
    assert more.width < e.width
    assert rogan_gladen((60, 200), (90, 10), (95, 5)) == e


def test_rogan_gladen_clips_and_rejects_useless_judges():
    low = rogan_gladen((2, 200), (90, 10), (90, 10))  # apparent below the false-positive rate
    assert low.value == 0.0 and low.low == 0.0
    with pytest.raises(ConfigError, match="no better than chance"):
        rogan_gladen((50, 100), (50, 50), (40, 60))
    with pytest.raises(ConfigError, match="non-negative counts"):
        rogan_gladen((50, 100), (-1, 5), (40, 60))


# --- the regression gate ---------------------------------------------------------------------


def gate_data(drop: dict[str, float], n: int = 150, seed: int = 11):
    rng = np.random.default_rng(seed)
    a, b = [], []
    for cat in ("cyber", "bio", "fraud"):
        for i in range(n):
            p = rng.beta(8, 2)
            a.append(Observation(f"{cat}{i}", cat, float(rng.random() < p)))
            b.append(Observation(f"{cat}{i}", cat, float(rng.random() < max(p - drop[cat], 0))))
    return a, b


def test_compare_conditions_flags_only_significant_worsening():
    a, b = gate_data({"cyber": 0.3, "bio": 0.0, "fraud": -0.15})
    table = compare_conditions(a, b, direction="higher_is_safer")
    cats = [r.category for r in table.rows]
    assert cats == ["bio", "cyber", "fraud", "overall"] and table.rows[-1].overall
    # fraud improved and bio did not move; cyber's drop also drags the overall rate down.
    assert table.regressions == ("cyber", "overall")
    assert table.regressed and table.n_tests == 4
    pvals = [r.comparison.p_value for r in table.rows]
    assert [r.p_holm for r in table.rows] == pytest.approx(list(adjust_pvalues(pvals, "holm")))
    assert [r.p_bh for r in table.rows] == pytest.approx(list(adjust_pvalues(pvals, "bh")))
    for r in table.rows:
        assert r.comparison.paired and r.comparison.test == "mcnemar-exact"
        assert r.comparison.difference == pytest.approx(r.rate_b.value - r.rate_a.value)
    # For attack success (lower is safer) the same data flag the rise instead.
    flipped = compare_conditions(a, b, direction="lower_is_safer")
    assert flipped.regressions in (("fraud",), ("fraud", "overall"))
    assert "cyber" not in flipped.regressions


def test_compare_conditions_correction_matters():
    a, b = gate_data({"cyber": 0.12, "bio": 0.0, "fraud": 0.0}, n=120, seed=12)
    holm = compare_conditions(a, b, correction="holm")
    cyber = next(r for r in holm.rows if r.category == "cyber")
    assert cyber.p_holm >= cyber.comparison.p_value and cyber.p_bh <= cyber.p_holm
    assert cyber.regression == (cyber.p_holm <= 0.05)
    bh = compare_conditions(a, b, correction="bh")
    assert next(r for r in bh.rows if r.category == "cyber").regression == (cyber.p_bh <= 0.05)


def test_compare_conditions_unpaired_when_prompts_differ_and_single_category():
    rng = np.random.default_rng(13)
    a = [Observation(f"a{i}", "x", float(rng.random() < 0.9)) for i in range(100)]
    b = [Observation(f"b{i}", "x", float(rng.random() < 0.5)) for i in range(100)]
    table = compare_conditions(a, b)
    assert [r.category for r in table.rows] == ["x", "overall"] and table.n_tests == 1
    assert not table.rows[0].comparison.paired
    assert table.rows[0].regression and table.rows[1].regression
    with pytest.raises(ConfigError, match="no observations under"):
        compare_conditions(a, [Observation("zz", "y", 1.0)])
    with pytest.raises(ConfigError, match="keeps its category"):
        compare_conditions(a, [Observation("a1", "z", 1.0), *b])
    with pytest.raises(ConfigError, match="direction"):
        compare_conditions(a, b, direction="up")


def test_compare_conditions_mixed_design_overall_is_unpaired():
    rng = np.random.default_rng(14)
    a = [Observation(f"a{i}", "x", float(rng.random() < 0.8)) for i in range(40)]
    a += [Observation(f"p{i}", "y", float(rng.random() < 0.8)) for i in range(40)]
    b = [Observation(f"b{i}", "x", float(rng.random() < 0.6)) for i in range(40)]
    b += [Observation(f"p{i}", "y", float(rng.random() < 0.6)) for i in range(40)]
    x, y, overall = compare_conditions(a, b).rows
    assert not x.comparison.paired and y.comparison.paired
    assert not overall.comparison.paired  # covers both categories rather than y's pairs only
    assert overall.comparison.n_prompts == 160
    forced = compare_conditions(a, b, paired=False).rows
    assert not any(r.comparison.paired for r in forced)


def test_compare_conditions_counts_missing_and_unmatched():
    a = [Observation("p1", "x", 1), Observation("p1", "x", None), Observation("p2", "x", 0),
         Observation("p3", "x", 1)]
    b = [Observation("p1", "x", 0), Observation("p2", "x", 0), Observation("p2", "x", 1),
         Observation("p4", "x", 1)]
    row = compare_conditions(a, b).rows[0]
    assert row.comparison.paired and row.comparison.n_unmatched == 2
    assert row.comparison.n_missing == 1 and row.rate_a.n_missing == 1
    assert (row.rate_a.n_prompts, row.rate_b.n_prompts) == (2, 2)
    assert row.rate_a.value == pytest.approx(0.5) and row.rate_b.value == pytest.approx(0.25)
    assert row.comparison.difference == pytest.approx(-0.25)


# --- tables ----------------------------------------------------------------------------------


def render(table) -> str:
    import io

    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_rate_table_names_counts_and_methods():
    from refute.report.tables import rate_table

    rows = rates_by_category([1, 0, 1, 1, 0, None, 1, 1], list("aabbccdd"), list("xxxxyyyy"))
    text = render(rate_table(rows, title="Refusal"))
    for word in ("category", "prompts", "samples", "missing", "rate", "95% interval", "method",
                 "overall", "wilson-design-effect", "Wilson interval on the effective sample"):
        assert word in text
    assert "Refusal" in text and "0.667" in render(rate_table(rate([1, 0, 1])))


def test_comparison_table_shows_raw_and_corrected_p():
    from refute.report.tables import comparison_table, plan_table

    a, b = gate_data({"cyber": 0.3, "bio": 0.0, "fraud": 0.0})
    text = render(comparison_table(compare_conditions(a, b, labels=("baseline", "base64"))))
    for word in ("baseline", "base64", "base64 - baseline", "p (Holm)", "p (BH)", "REGRESSION",
                 "mcnemar-exact", "newcombe-paired", "over the 4 comparisons"):
        assert word in text
    text = render(plan_table(sample_size(0.1, 0.05, samples_per_prompt=5, icc=0.3)))
    assert "design effect" in text and "302" in text


def test_tables_show_warnings_and_rows_significant_only_before_correction():
    from dataclasses import replace

    from refute.report.tables import comparison_table, rate_table

    corrected = rogan_gladen((5, 100), (90, 10), (85, 15))
    text = render(rate_table(corrected))
    assert "WARNING (overall)" in text and "false-positive" in text
    assert "(warning: apparent rate 0.050" in str(corrected)
    # A row whose interval is wholly on the less safe side but whose Holm p is above alpha.
    table = compare_conditions(*gate_data({"cyber": 0.3, "bio": 0.0, "fraud": 0.0}))
    row = next(r for r in table.rows if r.category == "cyber")
    assert row.regression and row.comparison.high < 0
    survived = replace(table, rows=(replace(row, regression=False, p_holm=0.2, p_adjusted=0.2),))
    text = render(comparison_table(survived))
    cyber_line = next(line for line in text.splitlines() if "cyber" in line)
    assert "not after correction" in cyber_line and "REGRESSION" not in cyber_line
    assert "excludes 0 exactly when its p <= 0.05" in " ".join(text.split())


# --- the one logistic regression, conservative-end reader and bootstrap ---------------------------


def _logistic_data(seed: int, n: int = 300, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    if k == 2:
        z = x @ np.array([1.5, -2.0, 0.5, 0.0, 1.0]) + 0.3
        return x, (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(int)
    return x, np.argmax(x[:, :k] * 1.5 + rng.gumbel(size=(n, k)), axis=1)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("l2", [0.5, 3.0, 40.0])
def test_logistic_regression_matches_sklearn_with_c_one_over_l2(k, l2):
    from sklearn.linear_model import LogisticRegression

    x, y = _logistic_data(k, k=k)
    fit = rs.logistic_regression(x, y, l2=l2)
    ref = LogisticRegression(C=1.0 / l2, tol=1e-12, max_iter=100_000).fit(x, y)
    assert fit.converged and fit.coef.shape == ref.coef_.shape == ((1, 5) if k == 2 else (k, 5))
    np.testing.assert_allclose(fit.coef, ref.coef_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(fit.intercept, ref.intercept_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(fit.predict_proba(x), ref.predict_proba(x), atol=1e-5, rtol=0)


def test_a_penalty_per_feature_is_a_uniform_penalty_on_rescaled_features():
    from sklearn.linear_model import LogisticRegression

    x, y = _logistic_data(4, k=3)
    scale = np.array([1.0, 2.0, 0.5, 3.0, 1.0])
    fit = rs.logistic_regression(x, y, l2=2.0 * scale**2)  # penalty 2 s_j^2 on w_j ...
    ref = LogisticRegression(C=0.5, tol=1e-12, max_iter=100_000).fit(x / scale, y)  # ... is 2 on w_j s_j
    np.testing.assert_allclose(fit.coef, ref.coef_ / scale, atol=1e-4, rtol=0)


def test_unpenalised_logistic_regression_is_the_statsmodels_mle():
    import statsmodels.api as sm

    x, y = _logistic_data(5)
    fit = rs.logistic_regression(x, y, l2=0.0)
    mle = sm.Logit(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-12)
    np.testing.assert_allclose(fit.coef[0], mle.params[1:], atol=1e-4, rtol=0)
    assert fit.intercept[0] == pytest.approx(mle.params[0], abs=1e-4)


@pytest.mark.parametrize("args, words", [
    (dict(x=np.zeros((4, 2)), y=[0, 1, 2.5, 0]), "class codes"),
    (dict(x=np.zeros((4, 2)), y=[0, 0, 0, 0]), "two classes"),
    (dict(x=np.zeros((4, 2)), y=[0, 1, 0]), "one class per row"),
    (dict(x=np.zeros((4, 2)), y=[0, 1, 0, 1], l2=-1.0), ">= 0"),
    (dict(x=np.zeros((4, 2)), y=[0, 1, 0, 1], l2=[1.0, 2.0, 3.0]), "one per feature"),
    (dict(x=np.full((4, 2), np.nan), y=[0, 1, 0, 1]), "NaN"),
])
def test_logistic_regression_rejects_bad_input(args, words):
    with pytest.raises(ConfigError, match=words):
        rs.logistic_regression(**args)


def test_the_conservative_end_is_the_end_worse_for_safety():
    e = rate(binary(30, 100))
    assert e.conservative("higher") == e.low < e.value < e.high == e.conservative("lower")
    assert rs.conservative_end(e, "higher") == ("lower", e.low)
    assert rs.conservative_end(e, "lower") == ("upper", e.high)
    with pytest.raises(ConfigError, match="'higher' or 'lower'"):
        e.conservative("up")  # type: ignore[arg-type]


def test_every_bootstrap_draws_from_one_resampling_stream():
    from refute.stats._bootstrap import (
        bootstrap_means,
        bootstrap_statistic,
        percentile_interval,
        resample_indices,
    )

    x = np.random.default_rng(0).normal(size=(41, 3))  # an odd count: numpy's draws must not depend on blocks
    # the resamples the cluster bootstrap has always drawn (and interp's causal effects did inline)
    idx = np.random.default_rng(7).integers(0, 41, size=(500, 41))
    np.testing.assert_array_equal(np.concatenate(list(resample_indices(41, 500, np.random.default_rng(7),
                                                                       width=300_000))), idx)
    np.testing.assert_array_equal(bootstrap_means(x[:, 0], 500, np.random.default_rng(7)), x[idx, 0].mean(axis=1))
    both = bootstrap_means(x, 500, np.random.default_rng(7))  # (B, 3): the same prompts for each column
    np.testing.assert_allclose(both[:, 2], x[idx, 2].mean(axis=1), rtol=1e-12)  # summed in another order
    # a statistic that is not a mean resamples the same rows, as a loop of one draw per replicate did
    rng = np.random.default_rng(7)
    loop = [np.median(x[rng.integers(0, 41, 41), 1]) for _ in range(500)]
    np.testing.assert_array_equal(bootstrap_statistic(np.median, x[:, 1], n_boot=500,
                                                      rng=np.random.default_rng(7)), loop)
    low, high = percentile_interval(both, 0.9)
    np.testing.assert_allclose(low, np.quantile(both, 0.05, axis=0), rtol=1e-12)
    np.testing.assert_allclose(high, np.quantile(both, 0.95, axis=0), rtol=1e-12)
