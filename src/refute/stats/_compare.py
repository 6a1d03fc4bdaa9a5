"""The regression gate: per-category comparison of two conditions with corrected p-values.

Each category is compared with `paired_difference` when its prompts appear in both conditions,
else with `unpaired_difference` (labelled); the overall row is paired when every category is.
The p-values of the rows form one family, adjusted by Holm (family-wise error) and
Benjamini-Hochberg (false discovery rate); see `_multiple`. A row is a *regression* when safety
got worse (a drop for "higher_is_safer" rates such as refusal, a rise for "lower_is_safer" ones
such as attack success) and its p-value, adjusted by the chosen correction, is <= alpha. The
overall row joins the family when there are two or more categories; with one category it repeats
that category's row.

One criterion: each row's interval is at confidence 1 - alpha and its p-value is the comparison's
(`paired_difference` / `unpaired_difference` make p <= 1 - confidence exactly when the interval
excludes 0), so a row can be a regression only if its interval lies wholly on the unsafe side of
0, and an interval that excludes 0 beside "no regression" means the row did not survive the
multiple-comparison correction (the table says so).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np

from refute.errors import ConfigError
from refute.stats._common import (
    Estimate,
    RngLike,
    as_rng,
    as_values,
    check_confidence,
    group,
)
from refute.stats._multiple import CORRECTIONS, Correction, adjust_pvalues
from refute.stats._paired import Comparison, PairedMethod, paired_difference, unpaired_difference
from refute.stats._rates import OVERALL, prompt_categories, rate_from_groups

Direction = Literal["higher_is_safer", "lower_is_safer"]


class Observation(NamedTuple):
    """One scored sample: which prompt, its category, and the 0/1 outcome (None/NaN: missing)."""

    prompt_id: Hashable
    category: str | None
    value: float | bool | None


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """A category's rates under A and B, their comparison, and its corrected p-values."""

    category: str
    rate_a: Estimate
    rate_b: Estimate
    comparison: Comparison
    p_holm: float
    p_bh: float
    p_adjusted: float  # by the table's chosen correction
    regression: bool
    overall: bool = False


@dataclass(frozen=True, slots=True)
class ComparisonTable:
    """Per-category comparison of condition B against A, and which categories regressed."""

    rows: tuple[ComparisonRow, ...]
    direction: Direction
    correction: Correction
    alpha: float
    confidence: float
    n_tests: int  # size of the family the p-values were adjusted over
    label_a: str = "A"
    label_b: str = "B"

    @property
    def regressions(self) -> tuple[str, ...]:
        """Categories (or "overall") whose safety got significantly worse after correction."""
        return tuple(r.category for r in self.rows if r.regression)

    @property
    def regressed(self) -> bool:
        return any(r.regression for r in self.rows)

    @property
    def methods(self) -> tuple[str, ...]:
        """Every interval method, test and rate method used, for a caption."""
        names: list[str] = []
        for r in self.rows:
            for m in (r.rate_a.method, r.rate_b.method, r.comparison.method, r.comparison.test):
                if m not in names:
                    names.append(m)
        return tuple(names)


def _rows(rows: Iterable[Any], name: str) -> tuple[list[Hashable], list[str], np.ndarray]:
    ids: list[Hashable] = []
    cats: list[Any] = []
    vals: list[Any] = []
    for i, row in enumerate(rows):
        try:
            prompt_id, category, value = row
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name} row {i} must be (prompt_id, category, value), got {row!r}"
            ) from None
        ids.append(prompt_id)
        cats.append(category)
        vals.append(value)
    if not ids:
        raise ConfigError(f"{name} has no observations")
    by_prompt = prompt_categories(ids, cats)
    return ids, [by_prompt[p] for p in ids], as_values(vals, f"{name} values")


def _compare(
    ids_a: list[Hashable], va: np.ndarray, ids_b: list[Hashable], vb: np.ndarray, *,
    paired: bool | None, confidence: float, method: PairedMethod, n_boot: int,
    rng: np.random.Generator,
) -> tuple[Estimate, Estimate, Comparison]:
    shared = set(ids_a) & set(ids_b)
    use_paired = bool(shared) if paired is None else paired
    if use_paired:
        if not shared:
            raise ConfigError("paired=True, but no prompt appears in both conditions")
        cmp = paired_difference(va, vb, ids_a, clusters_b=ids_b, confidence=confidence,
                                method=method, n_boot=n_boot, rng=rng)
        ga = group(va, ids_a)
        gb = group(vb, ids_b)
        # Only prompts with valid samples in both conditions were compared; rates use the same.
        in_b = set(gb.keys)
        both = [k for k in ga.keys if k in in_b]
        kept = set(both)
        miss_a = int(sum(np.isnan(v) for v, p in zip(va, ids_a, strict=True) if p in kept))
        miss_b = int(sum(np.isnan(v) for v, p in zip(vb, ids_b, strict=True) if p in kept))
        ga, gb = ga.subset(both, n_missing=miss_a), gb.subset(both, n_missing=miss_b)
    else:
        cmp = unpaired_difference(va, ids_a, vb, ids_b, confidence=confidence)
        ga, gb = group(va, ids_a), group(vb, ids_b)
    est_a = rate_from_groups(ga, confidence=confidence)
    est_b = rate_from_groups(gb, confidence=confidence)
    return est_a, est_b, cmp


def compare_conditions(
    a_rows: Iterable[Observation | tuple[Hashable, str | None, Any]],
    b_rows: Iterable[Observation | tuple[Hashable, str | None, Any]],
    *,
    direction: Direction = "higher_is_safer",
    correction: Correction = "holm",
    alpha: float = 0.05,
    confidence: float | None = None,
    paired: bool | None = None,
    method: PairedMethod = "auto",
    n_boot: int = 2000,
    labels: tuple[str, str] = ("A", "B"),
    rng: RngLike = None,
) -> ComparisonTable:
    """Compare condition B with A per category and overall, and flag significant regressions.

    Args:
        a_rows, b_rows: `Observation` records (prompt_id, category, value) of each condition.
        direction: "higher_is_safer" (refusal of harmful requests) or "lower_is_safer" (attack
            success, over-refusal).
        correction: which adjusted p-value decides a regression ("holm" or "bh"); both are shown.
        alpha: level for a regression, applied to the adjusted p-value.
        confidence: the intervals' level; None (the default) is 1 - alpha, the only level at which
            an interval excludes 0 exactly when its p-value is <= alpha (anything else is an error).
        paired: None pairs a category's prompts when any appear in both conditions (prompts in one
            only are left out and counted), else compares unpaired (labelled); the overall row is
            paired only when every category is. True/False force it everywhere.
        method, n_boot, rng: interval method of `paired_difference` and its bootstrap settings.
    """
    if direction not in ("higher_is_safer", "lower_is_safer"):
        raise ConfigError(f"direction must be 'higher_is_safer' or 'lower_is_safer', "
                          f"got {direction!r}")
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be 'holm' or 'bh', got {correction!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie between 0 and 1, got {alpha!r}")
    if confidence is None:
        confidence = 1.0 - alpha
    elif abs(check_confidence(confidence) - (1.0 - alpha)) > 1e-12:
        raise ConfigError(
            f"confidence {confidence} does not match alpha {alpha}: a comparison table's intervals "
            f"are at 1 - alpha so that an interval excludes 0 exactly when its p <= alpha; pass "
            "alpha only"
        )
    confidence = check_confidence(confidence)
    ids_a, cats_a, va = _rows(a_rows, "a_rows")
    ids_b, cats_b, vb = _rows(b_rows, "b_rows")
    cat_of_a = dict(zip(ids_a, cats_a, strict=True))
    for p, cb in zip(ids_b, cats_b, strict=True):
        if p in cat_of_a and cat_of_a[p] != cb:
            raise ConfigError(f"prompt {p!r} is in category {cat_of_a[p]!r} under A but {cb!r} "
                              "under B; a prompt keeps its category across conditions")
    names = sorted(set(cats_a) | set(cats_b))
    children = as_rng(rng).spawn(len(names) + 1)
    ca_arr, cb_arr = np.asarray(cats_a, dtype=object), np.asarray(cats_b, dtype=object)
    raw: list[tuple[str, bool, Estimate, Estimate, Comparison]] = []
    for i, name in enumerate(names):
        sa, sb = np.flatnonzero(ca_arr == name), np.flatnonzero(cb_arr == name)
        if sa.size == 0 or sb.size == 0:
            missing = labels[0] if sa.size == 0 else labels[1]
            raise ConfigError(f"category {name!r} has no observations under {missing}; both "
                              "conditions must cover the same categories")
        got = _compare([ids_a[j] for j in sa], va[sa], [ids_b[j] for j in sb], vb[sb],
                       paired=paired, confidence=confidence, method=method, n_boot=n_boot,
                       rng=children[i])
        raw.append((name, False, *got))
    if len(names) > 1:
        # The overall row is paired only when every category is, so that it covers them all.
        overall_paired = all(r[4].paired for r in raw) if paired is None else paired
        got = _compare(ids_a, va, ids_b, vb, paired=overall_paired, confidence=confidence,
                       method=method, n_boot=n_boot, rng=children[-1])
        raw.append((OVERALL, True, *got))
    pvals = np.array([r[4].p_value for r in raw])
    holm, bh = adjust_pvalues(pvals, "holm"), adjust_pvalues(pvals, "bh")
    chosen = holm if correction == "holm" else bh
    rows: list[ComparisonRow] = []
    for (name, is_overall, ea, eb, cmp), ph, pb, pc in zip(raw, holm, bh, chosen, strict=True):
        worse = cmp.difference < 0 if direction == "higher_is_safer" else cmp.difference > 0
        rows.append(ComparisonRow(name, ea, eb, cmp, float(ph), float(pb), float(pc),
                                  bool(worse and pc <= alpha), is_overall))
    if len(names) == 1:
        rows.append(replace(rows[0], category=OVERALL, overall=True))
    return ComparisonTable(tuple(rows), direction, correction, alpha, confidence, len(raw),
                           *labels)
