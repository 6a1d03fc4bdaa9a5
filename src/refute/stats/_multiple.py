"""Corrections for many comparisons at once (every transform x category).

* "holm": Holm (1979), "A simple sequentially rejective multiple test procedure", Scand. J.
  Statist. 6:65-70. Controls the family-wise error rate under any dependence.
* "bh": Benjamini & Hochberg (1995), "Controlling the false discovery rate", JRSS B 57:289-300.
  Controls the false discovery rate for independent or positively dependent tests.

Both agree with statsmodels ``multipletests(method="holm" | "fdr_bh")``. NaN p-values (tests that
could not be run) are left out of the family and stay NaN.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from refute.errors import ConfigError

Correction = Literal["holm", "bh"]
CORRECTIONS: tuple[str, ...] = ("holm", "bh")


def adjust_pvalues(pvalues: Any, method: Correction = "holm") -> np.ndarray:
    """Adjusted p-values, in the input order; reject where adjusted p <= alpha."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ConfigError(f"pvalues must be one-dimensional, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ConfigError("p-values must lie in [0, 1]")
    if method not in CORRECTIONS:
        raise ConfigError(f"unknown correction {method!r}; choose 'holm' or 'bh'")
    out = np.full(p.shape, np.nan)
    q = p[finite]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="mergesort")
    ranked = q[order]
    ranks = np.arange(1, m + 1)
    if method == "holm":
        adj = np.maximum.accumulate((m - ranks + 1) * ranked)
    else:
        adj = np.minimum.accumulate((m / ranks * ranked)[::-1])[::-1]
    adj = np.minimum(adj, 1.0)
    back = np.empty(m)
    back[order] = adj
    out[finite] = back
    return out
