"""Correcting a rate for judge (scorer) error: the Rogan-Gladen estimator.

A scorer with sensitivity Se and specificity Sp turns a true rate pi into an apparent rate
a = Se pi + (1 - Sp)(1 - pi), so pi = (a + Sp - 1) / (Se + Sp - 1) (Rogan & Gladen 1978,
"Estimating prevalence from the results of a screening test", Am. J. Epidemiol. 107:71-76).

The interval carries both sampling and judge uncertainty by a parametric bootstrap (as in Lang &
Reiczigel 2014, Prev. Vet. Med. 113:13-22): the apparent rate, Se and Sp are drawn from Jeffreys
Beta posteriors (Se from the labelled true positives / false negatives, Sp from true negatives /
false positives, the apparent rate from its count or effective sample size), each draw is
corrected, and the percentiles of the corrected draws, clipped to [0, 1], form the interval. A
draw whose Se + Sp <= 1 (a judge no better than chance) is corrected to 0 or 1, which widens the
interval rather than hiding the problem.

The correction never makes an interval narrower than the uncorrected one: dividing by Se + Sp - 1
< 1 widens it, but clipping to [0, 1] can collapse it, e.g. to 0 [0, 0] when the apparent rate is
below the judge's false-positive rate 1 - Sp (or 1 [1, 1] above its sensitivity). Such an apparent
rate is one the judge's measured error rates cannot produce (the judge errs differently on these
replies, or the labels are too few to say): the estimate is then clipped, its interval widened to
the uncorrected width (inward from the bound), and it carries a warning (`Estimate.warnings`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refute.errors import ConfigError
from refute.stats._common import (
    Estimate,
    RngLike,
    as_rng,
    check_confidence,
    check_count,
    norm_ppf,
)
from refute.stats._rates import wilson_interval

_EPS = 1e-9


def _pair(name: str, counts: Any, labels: tuple[str, str]) -> tuple[int, int]:
    try:
        x, y = (int(c) for c in counts)
        ok = all(float(c) == int(c) for c in counts)
    except (TypeError, ValueError, OverflowError):  # not two numbers, NaN, infinite
        ok = False
    if not ok or x < 0 or y < 0 or x + y == 0:
        raise ConfigError(
            f"{name} must be a pair of non-negative counts ({labels[0]}, {labels[1]}) from "
            f"labelled data, not both zero; got {counts!r}"
        )
    return x, y


def _apparent_counts(apparent: Estimate | tuple[int, int]
                     ) -> tuple[float, float, float, Estimate | None]:
    """(rate, effective successes, effective size, source estimate) of the apparent rate."""
    if isinstance(apparent, Estimate):
        p, lo, hi = apparent.value, apparent.low, apparent.high
        if not (np.isfinite([p, lo, hi]).all() and 0.0 <= lo <= p <= hi <= 1.0):
            raise ConfigError(
                f"the apparent estimate must be a rate in [0, 1] inside its interval, got {apparent} "
                "(an estimate with no data, or one built by hand?); pass (positives, samples)"
            )
        z = float(norm_ppf(1 - (1 - check_confidence(apparent.confidence)) / 2))
        # Invert the Wilson limit farther from p: (p - L)^2 = z^2 L (1 - L) / n.
        bound = lo if abs(p - lo) >= abs(hi - p) else hi
        gap = abs(p - bound)
        if gap <= 0:
            raise ConfigError("the apparent estimate has a zero-width interval; pass its counts "
                              "(positives, samples) instead")
        n = z * z * bound * (1 - bound) / (gap * gap)
        if not np.isfinite(n) or n <= 0:
            n = float(apparent.n_prompts)
        return p, p * n, n, apparent
    positives, total = _pair("apparent", apparent, ("positives", "samples"))
    if positives > total:
        raise ConfigError(f"apparent positives ({positives}) exceed samples ({total})")
    return positives / total, float(positives), float(total), None


def rogan_gladen(
    apparent: Estimate | tuple[int, int],
    sensitivity: tuple[int, int],
    specificity: tuple[int, int],
    *,
    confidence: float | None = None,
    n_draws: int = 20_000,
    rng: RngLike = None,
) -> Estimate:
    """The judge-corrected rate with an interval carrying sampling and judge uncertainty.

    Args:
        apparent: the scorer's rate, as an `Estimate` (its effective sample size is recovered
            from its interval, so clustering carries over) or as (positives, samples) counts.
        sensitivity: (true positives, false negatives) on labelled data.
        specificity: (true negatives, false positives) on labelled data.
        confidence: defaults to the apparent estimate's, else 0.95.
        n_draws: parametric bootstrap draws.
        rng: Generator, seed, or None for the fixed default seed.
    """
    tp, fn = _pair("sensitivity", sensitivity, ("true positives", "false negatives"))
    tn, fp = _pair("specificity", specificity, ("true negatives", "false positives"))
    p, x, n, source = _apparent_counts(apparent)
    if confidence is None:
        confidence = source.confidence if source is not None else 0.95
    confidence = check_confidence(confidence)
    n_draws = check_count("n_draws", n_draws, 1000)
    se, sp = tp / (tp + fn), tn / (tn + fp)
    if se + sp <= 1.0:
        raise ConfigError(
            f"the judge is no better than chance (sensitivity {se:.3f} + specificity {sp:.3f} "
            "<= 1), so its rate cannot be corrected; fix or replace the scorer"
        )
    value = float(np.clip((p + sp - 1) / (se + sp - 1), 0.0, 1.0))
    gen = as_rng(rng)
    a_draw = gen.beta(x + 0.5, n - x + 0.5, size=n_draws)
    se_draw = gen.beta(tp + 0.5, fn + 0.5, size=n_draws)
    sp_draw = gen.beta(tn + 0.5, fp + 0.5, size=n_draws)
    youden = se_draw + sp_draw - 1.0
    num = a_draw + sp_draw - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        corrected = np.where(youden > _EPS, num / youden, np.where(num >= 0, 1.0, 0.0))
    corrected = np.clip(corrected, 0.0, 1.0)
    alpha = 1 - confidence
    low, high = np.quantile(corrected, [alpha / 2, 1 - alpha / 2])
    low, high = min(float(low), value), max(float(high), value)
    warnings = list(source.warnings) if source is not None else []
    if p < 1.0 - sp or p > se:
        if p < 1.0 - sp:
            side, bound = f"below the judge's false-positive rate (1 - specificity = {1 - sp:.3f})", 0
        else:
            side, bound = f"above the judge's sensitivity ({se:.3f})", 1
        warnings.append(
            f"apparent rate {p:.3f} is {side}: the judge's measured error rates cannot produce it, "
            f"so the corrected rate is clipped to {bound} and its interval widened to the "
            "uncorrected one's width; check the judge on this model's replies (more labels, or "
            "labels from this run)"
        )
    # Never narrower than the uncorrected interval (clipping to [0, 1] can collapse it).
    if source is not None and source.confidence == confidence:
        floor = source.width
    else:
        a_low, a_high = wilson_interval(p, n, float(norm_ppf(1 - alpha / 2)))
        floor = float(a_high - a_low)
    low, high = _widen(low, high, floor)
    n_prompts = source.n_prompts if source is not None else int(n)
    n_samples = source.n_samples if source is not None else int(n)
    n_missing = source.n_missing if source is not None else 0
    return Estimate(value, low, high, confidence, "rogan-gladen-bootstrap", n_prompts, n_samples,
                    n_missing, tuple(warnings))


def _widen(low: float, high: float, width: float) -> tuple[float, float]:
    """[low, high] grown evenly to at least ``width``, kept inside [0, 1] (pushed off a bound)."""
    short = width - (high - low)
    if short <= 0:
        return low, high
    low, high = low - short / 2, high + short / 2
    if low < 0.0:
        low, high = 0.0, min(1.0, high - low)
    if high > 1.0:
        low, high = max(0.0, low - (high - 1.0)), 1.0
    return low, high
