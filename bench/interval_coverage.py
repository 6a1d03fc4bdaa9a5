"""Coverage, power and agreement of refute.stats' intervals, measured by simulation.

1. Clustered rates: coverage of the default 95% interval of `rate(values, prompts)` over the grid
   prompts {30, 40, 50, 75, 100} x 5 samples, intra-prompt correlation (ICC) {0.1 .. 0.5}, true
   rate {0.02 .. 0.98}; prompt rates ~ Beta with mean p and ICC rho = 1 / (a + b + 1) (beta-binomial
   prompt effects). Per cell: coverage, how often the truth lay above / below the interval, mean
   width; then the smallest coverage per (prompts, ICC) over the rates, and over the grid.
2. Paired plans: `sample_size(p, d, paired=True)`; at the planned number of prompts, the exact
   power of the exact McNemar test (computed here independently) and the power of
   `paired_difference` (p <= 0.05) over simulated paired data with the plan's discordance.
3. Judge correction: `rogan_gladen` near the judge's range (true rate 0, 0.03, 0.97; Se = Sp = 0.9
   measured on 100 + 100 labels; 200 scored samples): how often the apparent rate falls outside
   the judge's range, how often the corrected interval is narrower than the uncorrected (Wilson)
   one, how often a warning is given, coverage.
4. Agreement: paired (clustered and one sample per prompt) and unpaired comparisons with small
   effects: how often the interval excludes 0 while p > 0.05, or the reverse.

Writes bench/results/interval_coverage.json (about 3 minutes on 2 cores). The same script measures
older code when run with that code first on the path, e.g. from an exported tree:

    python bench/interval_coverage.py                     # this tree
    PYTHONPATH=/tmp/old/src python bench/interval_coverage.py --out /tmp/before.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

import refute.stats as rs

PROMPTS = (30, 40, 50, 75, 100)
ICCS = (0.1, 0.2, 0.3, 0.4, 0.5)
RATES = (0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98)
K = 5


def beta_binomial(rng: np.random.Generator, p: float, rho: float, n_sets: int, m: int, k: int
                  ) -> np.ndarray:
    """(n_sets, m * k) 0/1 samples, prompt-major."""
    a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
    pi = rng.beta(a, b, size=(n_sets, m))  # (S, M)
    return (rng.random((n_sets, m, k)) < pi[..., None]).astype(float).reshape(n_sets, m * k)


def clustered_rates(n_sets: int, seed: int) -> dict[str, Any]:
    cells = []
    for m in PROMPTS:
        clusters = np.repeat(np.arange(m), K)
        for rho in ICCS:
            for p in RATES:
                rng = np.random.default_rng([seed, m, int(rho * 100), int(p * 1000)])
                data = beta_binomial(rng, p, rho, n_sets, m, K)
                lows = np.empty(n_sets)
                highs = np.empty(n_sets)
                for i, row in enumerate(data):
                    est = rs.rate(row, clusters)
                    lows[i], highs[i] = est.low, est.high
                cells.append({
                    "prompts": m, "icc": rho, "rate": p,
                    "coverage": round(float(np.mean((lows <= p) & (p <= highs))), 4),
                    "truth_above": round(float(np.mean(highs < p)), 4),
                    "truth_below": round(float(np.mean(lows > p)), 4),
                    "mean_width": round(float(np.mean(highs - lows)), 4),
                })
            row_min = min(c["coverage"] for c in cells[-len(RATES):])
            print(f"  {m:3d} prompts, icc {rho}: min coverage over rates {row_min:.4f}", flush=True)
    by_design = [{"prompts": m, "icc": rho,
                  "min_coverage": min(c["coverage"] for c in cells
                                      if c["prompts"] == m and c["icc"] == rho)}
                 for m in PROMPTS for rho in ICCS]
    worst = min(cells, key=lambda c: c["coverage"])
    return {"design": f"prompts x {K} samples, beta-binomial prompt effects", "sets_per_cell": n_sets,
            "nominal": 0.95, "min_coverage": worst["coverage"], "worst_cell": worst,
            "mean_coverage": round(float(np.mean([c["coverage"] for c in cells])), 4),
            "min_coverage_by_prompts_and_icc": by_design, "cells": cells}


def exact_mcnemar_power(n: int, p1: float, p2: float, psi: float, alpha: float = 0.05) -> float:
    """Power of the two-sided exact McNemar test (statsmodels' p = 2 P(Bin(D, 1/2) <= min))."""
    q = (psi + p2 - p1) / 2 / psi
    total = 0.0
    for d in range(n + 1):
        w = sps.binom.pmf(d, n, psi)
        if w < 1e-14:
            continue
        x = np.arange(d + 1)
        p = np.minimum(1.0, 2 * sps.binom.cdf(np.minimum(x, d - x), d, 0.5))
        total += w * float(np.sum(sps.binom.pmf(x, d, q) * (p <= alpha)))
    return total


PLANS = [(0.1, 0.05, None), (0.5, 0.1, None), (0.3, -0.1, None), (0.05, 0.05, None),
         (0.5, -0.2, None), (0.02, 0.03, None), (0.9, -0.05, None), (0.2, 0.1, 0.15),
         (0.3, -0.1, 0.2)]


def paired_plans(n_sets: int, seed: int) -> dict[str, Any]:
    rows = []
    for i, (p, d, disc) in enumerate(PLANS):
        plan = rs.sample_size(p, d, paired=True, discordance=disc)
        psi = disc if disc is not None else p * (1 - p - d) + (p + d) * (1 - p)
        n = plan.n_prompts
        p10, p01 = (psi - d) / 2, (psi + d) / 2
        rng = np.random.default_rng([seed, i])
        counts = rng.multinomial(n, [p - p10, p10, p01, 1 - p - p01], size=n_sets)
        rejected = 0
        for n11, n10, n01, n00 in counts.tolist():
            a = np.r_[np.ones(n11 + n10), np.zeros(n01 + n00)]
            b = np.r_[np.ones(n11), np.zeros(n10), np.ones(n01), np.zeros(n00)]
            rejected += rs.paired_difference(a, b).p_value <= 0.05
        row = {"p": p, "d": d, "discordance": round(psi, 4), "target_power": plan.power,
               "prompts": n, "method": plan.method, "stated_power": round(plan.achieved_power, 4),
               "exact_power": round(exact_mcnemar_power(n, p, p + d, psi), 4),
               "simulated_power": round(rejected / n_sets, 4)}
        rows.append(row)
        print(f"  {p} -> {p + d:.2f}: {n} prompts, stated {row['stated_power']}, exact "
              f"{row['exact_power']}, simulated {row['simulated_power']}", flush=True)
    return {"sets_per_plan": n_sets, "alpha": 0.05, "plans": rows,
            "simulated_power_range": [min(r["simulated_power"] for r in rows),
                                      max(r["simulated_power"] for r in rows)],
            "exact_power_range": [min(r["exact_power"] for r in rows),
                                  max(r["exact_power"] for r in rows)]}


def judge_correction(n_sets: int, seed: int) -> dict[str, Any]:
    rows = []
    n, se, sp, labels = 200, 0.9, 0.9, 100
    for j, truth in enumerate((0.0, 0.03, 0.97)):
        rng = np.random.default_rng([seed, j])
        apparent = truth * se + (1 - truth) * (1 - sp)
        pos = rng.binomial(n, apparent, n_sets)
        tp, tn = rng.binomial(labels, se, n_sets), rng.binomial(labels, sp, n_sets)
        gen = np.random.default_rng([seed, j, 1])
        outside = narrower = warned = covered = 0
        for x, a, b in zip(pos.tolist(), tp.tolist(), tn.tolist(), strict=True):
            est = rs.rogan_gladen((x, n), (a, labels - a), (b, labels - b), n_draws=4_000, rng=gen)
            lo, hi = sps.binomtest(x, n).proportion_ci(method="wilson")
            outside += x / n < 1 - b / labels or x / n > a / labels
            narrower += est.high - est.low < hi - lo - 1e-9
            warned += bool(getattr(est, "warnings", ()))
            covered += est.low <= truth <= est.high
        rows.append({"truth": truth, "outside_judge_range": outside / n_sets,
                     "narrower_than_uncorrected": float(narrower) / n_sets, "warned": warned / n_sets,
                     "coverage": covered / n_sets})
        print(f"  truth {truth}: {rows[-1]}", flush=True)
    return {"design": f"{n} scored samples, Se = Sp = {se} measured on {labels} + {labels} labels",
            "sets": n_sets, "rows": rows}


AGREEMENT = [(0.1, 0.07, 50, 5), (0.9, 0.85, 30, 5), (0.5, 0.45, 50, 5), (0.2, 0.15, 40, 5),
             (0.3, 0.25, 100, 3), (0.5, 0.42, 100, 1), (0.1, 0.05, 200, 1), (0.5, 0.5, 50, 5)]


def agreement(n_sets: int, seed: int) -> dict[str, Any]:
    rows = []
    for i, (pa, pb, m, k) in enumerate(AGREEMENT):
        rng = np.random.default_rng([seed, i])
        u = rng.standard_normal((n_sets, m))
        rate_a = sps.norm.cdf(sps.norm.ppf(pa) * math.sqrt(2) + u)
        rate_b = sps.norm.cdf(sps.norm.ppf(pb) * math.sqrt(2) + u)
        a = (rng.random((n_sets, m, k)) < rate_a[..., None]).astype(float).reshape(n_sets, -1)
        b = (rng.random((n_sets, m, k)) < rate_b[..., None]).astype(float).reshape(n_sets, -1)
        cl = np.repeat(np.arange(m), k) if k > 1 else None
        for kind in ("paired", "unpaired"):
            excl_only = p_only = 0
            for ra, rb in zip(a, b, strict=True):
                if kind == "paired":
                    c = rs.paired_difference(ra, rb, cl)
                else:
                    c = rs.unpaired_difference(ra, cl, rb, None if cl is None else cl + m)
                excludes, significant = not c.low <= 0.0 <= c.high, c.p_value <= 0.05
                excl_only += excludes and not significant
                p_only += significant and not excludes
            rows.append({"rate_a": pa, "rate_b": pb, "prompts": m, "samples_per_prompt": k,
                         "kind": kind, "interval_excludes_0_but_p_above_0.05": excl_only / n_sets,
                         "p_at_most_0.05_but_interval_covers_0": p_only / n_sets})
            print(f"  {kind} {pa} -> {pb}, {m} x {k}: {excl_only / n_sets:.4f} / "
                  f"{p_only / n_sets:.4f}", flush=True)
    return {"sets_per_scenario": n_sets, "rows": rows,
            "max_disagreement": max(r["interval_excludes_0_but_p_above_0.05"]
                                    + r["p_at_most_0.05_but_interval_covers_0"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=4_000, help="data sets per coverage cell")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    figures: dict[str, Any] = {"refute_stats": rs.__file__}
    for name, fn, n_sets in (("clustered_rate", clustered_rates, args.sets),
                             ("paired_plans", paired_plans, 4_000),
                             ("judge_correction", judge_correction, 2_000),
                             ("agreement", agreement, 2_000)):
        start = time.perf_counter()
        print(f"{name}:", flush=True)
        figures[name] = fn(n_sets, args.seed)
        figures[name]["seconds"] = round(time.perf_counter() - start, 1)
    path = write_result("interval_coverage", figures, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
