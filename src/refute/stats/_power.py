"""Power and sample size for detecting a change d from a rate p, with clustering by prompt.

Independent samples needed per condition, then inflated by the design effect
``deff = 1 + (k - 1) * icc`` for k samples per prompt (Kish 1965, *Survey Sampling*; Donner &
Klar 2000, *Design and Analysis of Cluster Randomization Trials*): prompts = n * deff / k.

Formulas (``method``):

* "normal": two-proportion normal approximation without continuity correction (Fleiss, Levin &
  Paik 2003, *Statistical Methods for Rates and Proportions*, eq. 4.14):
  n = (z_a sqrt(2 pbar qbar) + z_b sqrt(p1 q1 + p2 q2))^2 / d^2.
* "cohen-h": normal test on Cohen's h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)) (Cohen 1988,
  *Statistical Power Analysis*, ch. 6); power counts both rejection tails. Equals statsmodels
  ``NormalIndPower().solve_power(proportion_effectsize(p2, p1), ...)``.
* paired, one sample per prompt: the power of the test `paired_difference` actually runs, the
  exact McNemar test (binomial test on the discordant prompts), computed exactly: the number of
  discordant prompts D is Binomial(n, psi) with psi the discordance (the chance the two conditions
  disagree on a prompt), and given D the prompts that favour B are Binomial(D, p01 / psi); power
  sums P(D) P(reject | D) over D (`mcnemar_exact_power`). Connor's normal approximation
  (1987, Biometrics 43:207-211) is only the starting guess: the exact test is conservative, and at
  Connor's n it reaches 0.77-0.78 where 0.80 was asked. The plan is the smallest n whose exact
  power reaches the target (power in n is smooth here, because D is itself random).

The intra-prompt correlation (ICC) comes from a pilot run: `icc` is the ANOVA estimator for binary
data (Fleiss 1981; Ridout, Demetrio & Firth 1999, Biometrics 55:137-148).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from refute.errors import ConfigError
from refute.stats._common import PromptIds, Values, check_real, group, norm_cdf, norm_ppf

PowerMethod = Literal["normal", "cohen-h"]

_FORMULAS = {
    "normal": "two-proportion normal approximation (Fleiss, Levin & Paik 2003, eq. 4.14)",
    "cohen-h": "normal test on Cohen's h, two tails (as statsmodels NormalIndPower)",
    "mcnemar-exact": "exact power of the two-sided exact McNemar test on the discordant prompts",
    "mcnemar-exact-one-sided": "exact power of the one-sided exact McNemar (binomial) test",
}


def icc(values: Values, clusters: PromptIds) -> float:
    """Intra-prompt correlation of 0/1 outcomes: the one-way ANOVA estimator, clipped to [0, 1].

    rho = (MSB - MSW) / (MSB + (n0 - 1) MSW), n0 = (N - sum m_i^2 / N) / (M - 1).
    Needs at least two prompts, one of them with two or more samples, and not all values equal.
    """
    g = group(values, clusters)
    m, n = g.n_prompts, float(g.n_samples)
    if m < 2 or n <= m:
        raise ConfigError(
            f"the intra-prompt correlation needs >= 2 prompts and several samples per prompt; "
            f"got {m} prompts and {int(n)} samples"
        )
    means = g.means
    pbar = g.sums.sum() / n
    msb = float(np.sum(g.counts * (means - pbar) ** 2)) / (m - 1)
    msw = float(np.sum(g.counts * means * (1 - means))) / (n - m)
    n0 = (n - float(np.sum(g.counts**2)) / n) / (m - 1)
    denom = msb + (n0 - 1) * msw
    if denom <= 0:
        raise ConfigError(
            "the intra-prompt correlation is undefined when every sample has the same value "
            "(the pilot saw no events); run a larger pilot or pass icc explicitly"
        )
    return float(np.clip((msb - msw) / denom, 0.0, 1.0))


def design_effect(samples_per_prompt: float, icc: float) -> float:
    """Variance inflation of a mean over k correlated samples per prompt: 1 + (k - 1) * icc."""
    k = check_real("samples_per_prompt", samples_per_prompt)
    rho = check_real("icc", icc)
    if k < 1:
        raise ConfigError(f"samples_per_prompt must be >= 1, got {samples_per_prompt!r}")
    if not 0.0 <= rho <= 1.0:
        raise ConfigError(f"icc must lie in [0, 1], got {icc!r}")
    return 1.0 + (k - 1.0) * rho


@dataclass(frozen=True, slots=True)
class Plan:
    """How many prompts (per condition) and samples are needed, and the figures behind it."""

    p: float  # rate now
    d: float  # change to detect (p -> p + d)
    alpha: float
    power: float  # target power
    two_sided: bool
    paired: bool
    samples_per_prompt: int
    icc: float
    design_effect: float
    n_independent: float  # independent samples (or pairs) per condition, before clustering
    n_prompts: int  # prompts per condition (the same prompts in both when paired)
    n_samples: int  # samples per condition
    achieved_power: float  # power at n_prompts (>= power: n_prompts is rounded up)
    method: str
    formula: str

    def __str__(self) -> str:
        sides = "two-sided" if self.two_sided else "one-sided"
        return (f"{self.n_prompts} prompts x {self.samples_per_prompt} samples per condition "
                f"to detect {self.p:.3f} -> {self.p + self.d:.3f} with power "
                f"{self.achieved_power:.2f} at alpha {self.alpha} ({sides}; design effect "
                f"{self.design_effect:.2f}; {self.formula})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(p: float, d: float, alpha: float, two_sided: bool) -> tuple[float, float, float]:
    p, d, alpha = check_real("p", p), check_real("d", d), check_real("alpha", alpha)
    if not 0.0 < p < 1.0:
        raise ConfigError(f"p (the current rate) must lie strictly between 0 and 1, got {p!r}")
    if d == 0 or not 0.0 < p + d < 1.0:
        raise ConfigError(f"d must be non-zero with p + d strictly between 0 and 1; got p={p}, "
                          f"d={d}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie between 0 and 1, got {alpha!r}")
    z_a = float(norm_ppf(1 - alpha / 2 if two_sided else 1 - alpha))
    return p, p + d, z_a


def _discordance(p1: float, p2: float, discordance: float | None) -> float:
    psi = (p1 * (1 - p2) + p2 * (1 - p1) if discordance is None
           else check_real("discordance", discordance))
    d = abs(p2 - p1)
    if not d < psi <= min(p1 + p2, 2 - p1 - p2):
        raise ConfigError(
            f"discordance (chance the two conditions disagree on a prompt) must exceed |d|={d:g} "
            f"and be at most {min(p1 + p2, 2 - p1 - p2):g}; got {psi:g}"
        )
    return psi


def _power_independent(n: float, p1: float, p2: float, z_a: float, two_sided: bool,
                       method: str, psi: float | None) -> float:
    """Power with n independent samples per condition (normal approximations), or with n pairs
    (``psi`` given: the exact McNemar test; n is then a whole number of prompts)."""
    d = abs(p2 - p1)
    if psi is not None:
        return mcnemar_exact_power(round(n), p1, p2, psi, _alpha_of(z_a, two_sided), two_sided)
    if method == "normal":
        pbar = (p1 + p2) / 2
        return float(norm_cdf((d * math.sqrt(n) - z_a * math.sqrt(2 * pbar * (1 - pbar)))
                              / math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))))
    h = abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1)))
    shift = h * math.sqrt(n / 2)
    out = float(norm_cdf(shift - z_a))
    if two_sided:
        out += float(norm_cdf(-shift - z_a))
    return out


def _alpha_of(z_a: float, two_sided: bool) -> float:
    return (2.0 if two_sided else 1.0) * float(norm_cdf(-z_a))


def mcnemar_exact_power(n: int, p1: float, p2: float, psi: float, alpha: float,
                        two_sided: bool = True) -> float:
    """Power of the exact McNemar test with ``n`` pairs: rates p1 -> p2, discordance ``psi``.

    The test is the one `paired_difference` runs: reject when 2 P(Bin(D, 1/2) <= min) <= alpha
    (two-sided), min being the smaller of the two discordant counts; one-sided, when
    P(Bin(D, 1/2) <= the count against the change) <= alpha.
    """
    from scipy.special import bdtr
    from scipy.stats import binom

    if n < 1:
        return 0.0
    favour_b = (psi + (p2 - p1)) / 2 / psi  # chance a discordant prompt goes B's way
    tail = alpha / 2 if two_sided else alpha
    lo, hi = binom.ppf(1e-13, n, psi), binom.isf(1e-13, n, psi)
    discordant = np.arange(max(int(lo) - 1, 0), min(int(hi) + 1, n) + 1)  # (D,) with mass
    weight = binom.pmf(discordant, n, psi)
    # Largest c with P(Bin(D, 1/2) <= c) <= tail, checked with the test's own function (bdtr).
    c = binom.ppf(tail, discordant, 0.5)
    for _ in range(2):
        too_big = (c >= 0) & (bdtr(np.maximum(c, 0), discordant, 0.5) > tail)
        c = np.where(too_big, c - 1, c)
    c = np.where(c < 0, -1.0, c)
    toward_b = binom.sf(discordant - c - 1, discordant, favour_b)  # B's count >= D - c
    toward_a = binom.cdf(c, discordant, favour_b)  # B's count <= c
    one_tail = toward_b if p2 > p1 else toward_a
    reject = toward_a + toward_b if two_sided else one_tail
    return float(np.clip(np.sum(weight * np.where(c >= 0, reject, 0.0)), 0.0, 1.0))


def _n_mcnemar(p1: float, p2: float, z_a: float, power: float, two_sided: bool, psi: float
               ) -> int:
    """Smallest number of pairs whose exact McNemar power reaches ``power``."""
    d = abs(p2 - p1)
    z_b = float(norm_ppf(power))
    alpha = _alpha_of(z_a, two_sided)
    connor = (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - d * d)) ** 2 / (d * d)

    def enough(n: int) -> bool:
        return mcnemar_exact_power(n, p1, p2, psi, alpha, two_sided) >= power

    lo, hi = max(1, math.floor(connor * 0.8)), max(2, math.ceil(connor * 1.1))
    while lo > 1 and enough(lo):
        lo //= 2
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > 10**9:
            raise ConfigError(f"no feasible number of prompts reaches power {power} for "
                              f"{p1} -> {p2} at discordance {psi:g}")
    while hi - lo > 1:  # enough(hi), not enough(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def _n_independent(p1: float, p2: float, z_a: float, power: float, two_sided: bool, method: str,
                   psi: float | None) -> float:
    d = abs(p2 - p1)
    z_b = float(norm_ppf(power))
    if psi is not None:
        return float(_n_mcnemar(p1, p2, z_a, power, two_sided, psi))
    if method == "normal":
        pbar = (p1 + p2) / 2
        return (z_a * math.sqrt(2 * pbar * (1 - pbar))
                + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (d * d)
    h = abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1)))
    guess = 2 * ((z_a + z_b) / h) ** 2
    if not two_sided:
        return guess
    from scipy.optimize import brentq

    def gap(n: float) -> float:
        return _power_independent(n, p1, p2, z_a, True, "cohen-h", None) - power

    return float(brentq(gap, guess * 0.5, guess * 1.5 + 1.0, xtol=1e-12, rtol=1e-14))


def _setup(p: float, d: float, alpha: float, samples_per_prompt: int, icc: float, paired: bool,
           discordance: float | None, two_sided: bool, method: str
           ) -> tuple[float, float, float, float, float | None, str]:
    p1, p2, z_a = _check(p, d, alpha, two_sided)
    if method not in ("normal", "cohen-h"):
        raise ConfigError(f"unknown power method {method!r}; choose 'normal' or 'cohen-h'")
    if (isinstance(samples_per_prompt, bool)
            or check_real("samples_per_prompt", samples_per_prompt) != int(samples_per_prompt)):
        raise ConfigError(f"samples_per_prompt must be a whole number, got {samples_per_prompt!r}")
    deff = design_effect(samples_per_prompt, icc)
    psi = None
    name = method
    if paired:
        if samples_per_prompt != 1:
            raise ConfigError(
                "paired planning supports one sample per prompt only; with several, plan as "
                "unpaired (paired=False), which is conservative when the conditions are "
                "positively correlated across prompts"
            )
        psi = _discordance(p1, p2, discordance)
        name = "mcnemar-exact" if two_sided else "mcnemar-exact-one-sided"
    return p1, p2, z_a, deff, psi, name


def power(
    p: float,
    d: float,
    n_prompts: int,
    *,
    alpha: float = 0.05,
    samples_per_prompt: int = 1,
    icc: float = 0.0,
    paired: bool = False,
    discordance: float | None = None,
    two_sided: bool = True,
    method: PowerMethod = "normal",
) -> float:
    """Power to detect p -> p + d with ``n_prompts`` prompts per condition (see `sample_size`).

    Unpaired, ``n_prompts`` may be fractional (the normal approximations are continuous in n);
    paired, it must be a whole number: the power is that of the exact McNemar test.
    """
    p1, p2, z_a, deff, psi, _ = _setup(p, d, alpha, samples_per_prompt, icc, paired, discordance,
                                       two_sided, method)
    n_real = check_real("n_prompts", n_prompts)
    if n_real <= 0:
        raise ConfigError(f"n_prompts must be positive, got {n_prompts!r}")
    if paired and n_real != int(n_real):
        raise ConfigError(f"paired power is exact and needs a whole number of prompts, got "
                          f"{n_prompts!r}")
    n = n_real * samples_per_prompt / deff
    return _power_independent(n, p1, p2, z_a, two_sided, method, psi)


def sample_size(
    p: float,
    d: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    samples_per_prompt: int = 1,
    icc: float = 0.0,
    paired: bool = False,
    discordance: float | None = None,
    two_sided: bool = True,
    method: PowerMethod = "normal",
) -> Plan:
    """Prompts and samples per condition to detect a change from rate ``p`` to ``p + d``.

    Args:
        p, d: the current rate and the change that matters.
        alpha, power, two_sided: the test's level, the power wanted, one or two tails.
        samples_per_prompt, icc: k samples per prompt whose outcomes correlate with ``icc``
            (estimate it from a pilot with `icc`, or use `plan_from_pilot`).
        paired: the same prompts in both conditions, one sample per prompt; the plan is for the
            exact McNemar test `paired_difference` runs, its power computed exactly.
            ``discordance`` is the chance the conditions disagree on a prompt (default: as if
            independent, p1 q2 + p2 q1, which is conservative when they are positively correlated).
        method: "normal" (Fleiss) or "cohen-h" (arcsine; matches statsmodels NormalIndPower).
    """
    if not 0.0 < check_real("power", power) < 1.0:
        raise ConfigError(f"power must lie between 0 and 1 (e.g. 0.8), got {power!r}")
    p1, p2, z_a, deff, psi, name = _setup(p, d, alpha, samples_per_prompt, icc, paired,
                                          discordance, two_sided, method)
    n_ind = _n_independent(p1, p2, z_a, power, two_sided, method, psi)
    k = int(samples_per_prompt)
    n_prompts = max(2, math.ceil(n_ind * deff / k - 1e-9))
    achieved = _power_independent(n_prompts * k / deff, p1, p2, z_a, two_sided, method, psi)
    return Plan(p, d, alpha, power, two_sided, paired, k, float(icc), deff, n_ind, n_prompts,
                n_prompts * k, achieved, name, _FORMULAS[name])


def plan_from_pilot(
    values: Values,
    clusters: PromptIds,
    d: float,
    *,
    samples_per_prompt: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    method: PowerMethod = "normal",
    paired: bool = False,
    discordance: float | None = None,
) -> Plan:
    """`sample_size` with the rate and the intra-prompt correlation estimated from a pilot run.

    ``samples_per_prompt`` defaults to the pilot's (rounded) mean samples per prompt. Paired
    plans (one sample per prompt in each condition, exact McNemar) take only the pilot's rate:
    ``samples_per_prompt`` defaults to 1 and the intra-prompt correlation is not needed.
    """
    g = group(values, clusters)
    p = float(g.means.mean())
    if paired:
        k = 1 if samples_per_prompt is None else samples_per_prompt
        return sample_size(p, d, alpha=alpha, power=power, samples_per_prompt=k, paired=True,
                           discordance=discordance, two_sided=two_sided, method=method)
    rho = icc(values, clusters)
    k = samples_per_prompt if samples_per_prompt is not None else max(
        1, round(g.n_samples / g.n_prompts))
    return sample_size(p, d, alpha=alpha, power=power, samples_per_prompt=k, icc=rho,
                       two_sided=two_sided, method=method)
