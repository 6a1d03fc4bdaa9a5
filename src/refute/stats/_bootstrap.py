"""Cluster bootstrap over prompts: percentile and BCa intervals for a mean of per-prompt values.

Prompts are resampled with replacement, carrying all their samples along, so the correlation of
samples of one prompt is kept (Davison & Hinkley 1997, *Bootstrap Methods and their Application*,
sec. 3.8). BCa follows Efron (1987), "Better bootstrap confidence intervals", JASA 82:171-185,
with the acceleration from the jackknife over prompts.

Measured on 4,000 simulated data sets of 100 prompts x 5 samples, intra-prompt correlation 0.3:
the percentile interval covers 93.3-94.4% and BCa 93.9-95.0% for rates 0.05-0.95; with 30 prompts
both fall to 88-94%. That is why ``rate(method="auto")`` uses the design-effect Wilson interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from refute.stats._common import norm_cdf, norm_ppf

_CHUNK = 2_000_000  # resampled indices held in memory at once


def resample_indices(m: int, n_boot: int, rng: np.random.Generator, *,
                     width: int = 1) -> Iterator[np.ndarray]:
    """Indices of ``n_boot`` resamples with replacement of ``range(m)``, a block of rows at a time.

    Each block is ``(B_block, m)``, sized so that a block times ``width`` (values carried per
    index) stays near two million; the blocks together are ``n_boot`` rows drawn from ``rng`` in
    order, and numpy draws the same integers whatever the block size, so the same seed gives the
    same resamples whoever consumes them. Every bootstrap in refute (rates, paired differences,
    probe metrics, best-of-N curves, causal effects) draws its resamples here.
    """
    rows = max(1, _CHUNK // max(m * width, 1))
    for start in range(0, n_boot, rows):
        yield rng.integers(0, m, size=(min(n_boot, start + rows) - start, m))  # (B_block, M)


def bootstrap_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of ``x`` resampled with replacement along its first axis.

    ``x`` is ``(M,)`` (one value per prompt; returns ``(n_boot,)``) or ``(M, K)`` (a row per
    prompt; returns ``(n_boot, K)``, every column resampled with the same prompts).
    """
    out = np.empty((n_boot, *x.shape[1:]))
    start = 0
    for idx in resample_indices(x.shape[0], n_boot, rng, width=int(np.prod(x.shape[1:]))):
        out[start : start + len(idx)] = x[idx].mean(axis=1)
        start += len(idx)
    return out


def bootstrap_statistic(stat: Callable[..., float], *arrays: np.ndarray, n_boot: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``stat(*resampled arrays)`` for ``n_boot`` resamples of the rows shared by ``arrays``.

    For statistics that are not a mean (AUROC, accuracy of a thresholded score); NaN results
    (a resample with one class only) are kept, for the caller to drop.
    """
    out = np.empty(n_boot)
    i = 0
    for idx in resample_indices(len(arrays[0]), n_boot, rng):
        for row in idx:
            out[i] = stat(*(a[row] for a in arrays))
            i += 1
    return out


def percentile_interval(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap replicates ``boot`` ``(B, ...)``, per column."""
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return low, high


def bootstrap_interval(
    x: np.ndarray,
    *,
    confidence: float,
    n_boot: int,
    rng: np.random.Generator,
    bca: bool,
) -> tuple[float, float, str] | None:
    """Interval for ``mean(x)`` from resampling the entries of ``x`` (one entry per prompt).

    Returns (low, high, kind) with kind "bca" or "percentile" (BCa falls back to percentile when
    its bias correction is undefined), or None when the bootstrap distribution is a single point
    (every prompt has the same value, or fewer than two prompts).
    """
    if x.size < 2 or np.ptp(x) == 0.0:
        return None
    return bootstrap_limits(x, bootstrap_means(x, n_boot, rng), confidence=confidence, bca=bca)


def bootstrap_limits(x: np.ndarray, boot: np.ndarray, *, confidence: float, bca: bool
                     ) -> tuple[float, float, str]:
    """The percentile or BCa interval of ``mean(x)`` at ``confidence`` from replicates ``boot``.

    Split from `bootstrap_interval` so that one set of replicates gives the interval at any level
    (a comparison's p-value is the level at which its interval stops covering zero).
    """
    theta = float(x.mean())
    alpha = 1.0 - confidence
    levels = np.array([alpha / 2.0, 1.0 - alpha / 2.0])
    kind = "percentile"
    if bca:
        below = float(np.mean(boot < theta)) + 0.5 * float(np.mean(boot == theta))
        if 0.0 < below < 1.0:
            z0 = float(norm_ppf(below))
            jack = (x.sum() - x) / (x.size - 1)  # (M,) leave-one-prompt-out means
            dev = jack.mean() - jack
            ss = float(np.sum(dev**2))
            accel = float(np.sum(dev**3)) / (6.0 * ss**1.5) if ss > 0 else 0.0
            zq = norm_ppf(levels)
            levels = norm_cdf(z0 + (z0 + zq) / (1.0 - accel * (z0 + zq)))
            kind = "bca"
    low, high = np.quantile(boot, levels)
    return float(low), float(high), kind
