"""Defense in depth: do a stack's layers fail independently, or do their holes line up?

Each safeguard layer (an input classifier, a safety system prompt, an output scorer, ...) is run
alone on harmful prompts, and the whole stack is run as deployed. `stack_statistics` reports

* each layer's miss rate alone (and its catch rate, 1 - miss), clustered intervals from `rate`;
* the stack's miss rate measured directly, also from `rate`. It is measured, not derived: layers
  interact (a system prompt changes the reply an output scorer sees), so it need not be the AND of
  the layers' misses;
* the miss rate independence predicts, the product of the alone miss rates, and the ratio
  measured / predicted: above 1 the holes line up (the layers miss the same prompts), below 1 the
  layers cover each other's holes better than chance;
* for every pair of layers, the phi coefficient of their miss indicators and the lift
  P(both miss) / (P(a miss) P(b miss)).

Prompts come in clusters (one base harmful request plain, transformed and multi-turn; the cluster
id is the base request). Every rate here weights each cluster once, as `rate` does: a rate is the
mean over clusters of the cluster's rate, P(both miss) likewise, and phi is the correlation under
those weights (with one prompt per cluster: the Pearson correlation of the two 0/1 columns). The
intervals of the product, the ratio, phi and the lift come from one cluster bootstrap (clusters
resampled with replacement, all statistics from the same resamples; Davison & Hinkley 1997, sec.
3.8), read as percentile limits at order statistics: the low end is the replicate just below the
alpha/2 quantile and the high end the one just above 1 - alpha/2 (numpy's ``lower`` / ``higher``),
never interpolated, so an infinite replicate needs no arithmetic and the limits are the same on
the ratio's own scale and on the log scale. `pareto_front` picks the configurations worth keeping
when layer thresholds trade misses against over-refusal.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from refute.errors import ConfigError
from refute.stats._bootstrap import bootstrap_means
from refute.stats._common import (
    Estimate,
    RngLike,
    as_rng,
    check_confidence,
    check_count,
    check_real,
    factorize,
)
from refute.stats._rates import rate

_BOOT = "cluster-bootstrap-percentile"
RATIO_RULE = "x/0 = inf, 0/0 = 1"
"""How a bootstrap replicate of a ratio (measured / predicted by independence) with a zero
denominator counts: infinite when something was measured though independence predicts nothing,
1 when neither has any miss (measured equals predicted). Counting 0/0 as 1 can only pull an
interval end toward 1, so it never makes a dependence look shown that the other replicates do not
show. The point estimate is not a replicate: when the data themselves have 0/0 the ratio is not
identified, and the estimate is NaN with the interval [0, inf] and a warning."""


@dataclass(frozen=True, slots=True)
class PairCorrelation:
    """How the misses of layers ``a`` and ``b`` (each deployed alone) go together."""

    a: str
    b: str
    phi: Estimate
    """Phi coefficient of the two miss indicators: 0 for independent misses, 1 when they miss the
    same prompts. NaN (interval NaN) when a layer's misses are constant; ``note`` says which."""
    lift: Estimate
    """P(both miss) / (P(a miss) P(b miss)): 1 under independence; replicates follow `RATIO_RULE`."""
    both_miss: float
    """P(both miss), cluster-weighted like every rate here."""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class StackStats:
    """Layers alone, the stack measured, the stack predicted by independence, and their ratio."""

    names: tuple[str, ...]
    n: int
    """Prompts (rows)."""
    n_clusters: int
    """Clusters (base requests): what the intervals resample."""
    miss_alone: tuple[Estimate, ...]
    """Each layer's miss rate deployed alone, in the order of ``names``."""
    catch_alone: tuple[Estimate, ...]
    """1 - ``miss_alone``, interval flipped."""
    stack_miss: Estimate
    """The stack's miss rate, measured with every layer deployed together."""
    independent_miss: Estimate
    """The product of the alone miss rates: the stack's miss rate if layers failed independently."""
    ratio: Estimate
    """``stack_miss / independent_miss``; above 1 the holes line up. Replicates follow `RATIO_RULE`."""
    pairs: tuple[PairCorrelation, ...]
    """One per pair of layers, in the order of ``itertools.combinations(names, 2)``."""
    n_boot: int

    @property
    def holes_line_up(self) -> bool:
        """True when the whole interval of ``ratio`` lies above 1 (the stack misses more often than
        independent layers would)."""
        return bool(self.ratio.low > 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats, lists for tuples; NaN and infinities as the strings "nan",
        "inf" and "-inf" (``float(s)`` reads them back), so ``json.dumps(allow_nan=False)`` works."""
        out = {
            "names": list(self.names), "n": self.n, "n_clusters": self.n_clusters,
            "n_boot": self.n_boot, "ratio_rule": RATIO_RULE,
            "miss_alone": [e.to_dict() for e in self.miss_alone],
            "catch_alone": [e.to_dict() for e in self.catch_alone],
            "stack_miss": self.stack_miss.to_dict(),
            "independent_miss": self.independent_miss.to_dict(),
            "ratio": self.ratio.to_dict(),
            "holes_line_up": self.holes_line_up,
            "pairs": [{"a": p.a, "b": p.b, "phi": p.phi.to_dict(), "lift": p.lift.to_dict(),
                       "both_miss": p.both_miss, "note": p.note} for p in self.pairs],
        }
        return _json_ready(out)

    def to_markdown(self) -> str:
        """Two tables: rates with intervals (layers alone, the stack, independence, the ratio), and
        the pairwise correlation of misses."""
        pct = f"{self.ratio.confidence:.0%}"
        lines = [f"{self.n} prompts in {self.n_clusters} clusters; {pct} intervals, clustered.", "",
                 f"| | miss rate | {pct} interval | catch rate | {pct} interval | method |",
                 "|---|---|---|---|---|---|"]
        for name, miss, catch in zip(self.names, self.miss_alone, self.catch_alone, strict=True):
            lines.append(f"| {_cell(name)} alone | {_row(miss)} | {_row(catch)} | {miss.method} |")
        s = self.stack_miss
        lines.append(f"| stack, measured | {_row(s)} | {_row(_flip(s))} | {s.method} |")
        lines.append(f"| stack if independent | {_row(self.independent_miss)} | | | "
                     f"{self.independent_miss.method} |")
        lines += ["", f"| measured / independent | ratio | {pct} interval | method |", "|---|---|---|---|",
                  f"| stack miss | {_row(self.ratio)} | {self.ratio.method} |"]
        if self.pairs:
            lines += ["", f"| layers | phi | {pct} interval | lift | {pct} interval | P(both miss) | note |",
                      "|---|---|---|---|---|---|---|"]
            for p in self.pairs:
                lines.append(f"| {_cell(p.a)} x {_cell(p.b)} | {_row(p.phi)} | {_row(p.lift)} | "
                             f"{_num(p.both_miss)} | {_cell(p.note or '')} |")
        warnings = [f"Warning ({_cell(label)}): {w}" for label, e in self._estimates() for w in e.warnings]
        if warnings:
            lines += ["", *warnings]
        return "\n".join(lines)

    def _estimates(self) -> list[tuple[str, Estimate]]:
        out = [(f"{n} alone", e) for n, e in zip(self.names, self.miss_alone, strict=True)]
        out += [("stack", self.stack_miss), ("independent", self.independent_miss), ("ratio", self.ratio)]
        for p in self.pairs:
            out += [(f"{p.a} x {p.b} phi", p.phi), (f"{p.a} x {p.b} lift", p.lift)]
        return out


def stack_statistics(
    missed_alone: ArrayLike,
    missed_stack: ArrayLike,
    names: Sequence[str],
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    rng: RngLike = None,
) -> StackStats:
    """Layers alone against the stack measured, with clustered intervals (see the module doc).

    Args:
        missed_alone: ``(n, k)`` 0/1 (or bool): row i is prompt i, column j is 1 when layer j,
            deployed alone, missed the prompt (let a harmful request through).
        missed_stack: ``(n,)`` 0/1: the whole stack, deployed together, missed prompt i.
        names: the k layers' names, unique.
        clusters: the cluster id (base request) of each prompt; None: every prompt its own cluster.
            At least two clusters are needed.
        confidence: the intervals' nominal coverage.
        n_boot: cluster-bootstrap resamples (at least 100) for the product, ratio, phi and lift.
        rng: Generator, seed, or None for the fixed default seed.

    Zero denominators: the ratio and the lift follow `RATIO_RULE` per replicate (x/0 = inf,
    0/0 = 1); their point estimate is +inf for x/0 and NaN with interval [0, inf] for 0/0. Phi is
    NaN when a layer's column is constant; replicates where a resampled column is constant are
    dropped, and a warning gives their share when they are more than alpha/2 of the replicates.
    """
    confidence = check_confidence(confidence)
    n_boot = check_count("n_boot", n_boot, 100)
    alone = _binary_matrix(missed_alone, names)  # (n, k)
    n, k = alone.shape
    stack = _binary_vector(missed_stack, n)  # (n,)
    ids = _cluster_ids(clusters, n)
    codes, keys = factorize(ids, "clusters")
    m = len(keys)
    if m < 2:
        raise ConfigError(f"the {n} prompts fall in {m} cluster; intervals resample clusters and need at "
                          "least two (pass clusters=None if every prompt is its own base request)")
    cluster_ids = codes if clusters is not None else None

    pairs = list(combinations(range(k), 2))
    columns = [stack[:, None], alone] + [(alone[:, a] * alone[:, b])[:, None] for a, b in pairs]
    per_row = np.hstack(columns)  # (n, 1 + k + P): stack, each layer, each pair's both-miss
    sizes = np.bincount(codes, minlength=m).astype(float)
    per_cluster = np.stack([np.bincount(codes, weights=c, minlength=m) for c in per_row.T], 1) / sizes[:, None]
    boot = bootstrap_means(per_cluster, n_boot, as_rng(rng))  # (B, 1 + k + P)
    point = per_cluster.mean(axis=0)  # (1 + k + P,)

    miss = tuple(rate(alone[:, j], cluster_ids, confidence=confidence) for j in range(k))
    stack_miss = rate(stack, cluster_ids, confidence=confidence)
    counts = {"confidence": confidence, "n_prompts": m, "n_samples": n}

    independent_point = math.prod(e.value for e in miss)
    independent_boot = np.prod(boot[:, 1 : 1 + k], axis=1)  # (B,)
    independent = Estimate(independent_point, *_limits(independent_boot, confidence),
                           method=f"{_BOOT} (product of the alone miss rates)", **counts)
    ratio = _ratio_estimate(stack_miss.value, independent_point, boot[:, 0], independent_boot,
                            confidence, counts, "stack miss measured / predicted by independence")

    pair_stats = []
    for p, (a, b) in enumerate(pairs):
        both = 1 + k + p
        pa, pb, pab = point[1 + a], point[1 + b], point[both]
        ba, bb, bab = boot[:, 1 + a], boot[:, 1 + b], boot[:, both]
        phi, note = _phi_estimate((pa, pb, pab), (ba, bb, bab), (names[a], names[b]), confidence, counts)
        lift = _ratio_estimate(pab, pa * pb, bab, ba * bb, confidence, counts,
                               "P(both miss) / (P(a miss) P(b miss))")
        pair_stats.append(PairCorrelation(names[a], names[b], phi, lift, float(pab), note))

    return StackStats(tuple(names), n, m, miss, tuple(_flip(e) for e in miss), stack_miss, independent,
                      ratio, tuple(pair_stats), n_boot)


def pareto_front(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Indices of the non-dominated ``(miss_rate, over_refusal)`` points, both to be minimised.

    A point is dominated when another is no worse on both and better on one. Identical points do
    not dominate each other, so duplicates on the front are all kept. The result is sorted by miss
    rate, then over-refusal, then index; an empty input gives an empty list.
    """
    rows = list(points)
    xy = []
    for i, p in enumerate(rows):
        if isinstance(p, (str, bytes)) or not isinstance(p, (Sequence, np.ndarray)) or len(p) != 2:
            raise ConfigError(f"pareto_front: point {i} must be a (miss_rate, over_refusal) pair, got {p!r}")
        xy.append((check_real(f"point {i} miss_rate", p[0]), check_real(f"point {i} over_refusal", p[1])))
    order = sorted(range(len(xy)), key=lambda i: (xy[i][0], xy[i][1], i))
    front: list[int] = []
    best = math.inf  # lowest over-refusal among points with a strictly lower miss rate
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and xy[order[end]][0] == xy[order[start]][0]:
            end += 1
        group = order[start:end]  # equal miss rate, sorted by over-refusal then index
        low = xy[group[0]][1]
        if low < best:
            front += [i for i in group if xy[i][1] == low]
            best = low
        start = end
    return front


# --- pieces ------------------------------------------------------------------------------------


def _binary_matrix(values: ArrayLike, names: Sequence[str]) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"missed_alone must be an (n prompts, k layers) array of 0/1: {exc}") from None
    if x.ndim != 2:
        raise ConfigError(f"missed_alone must be two-dimensional (n prompts, k layers), got shape {x.shape}; "
                          "for one layer pass a column, e.g. values.reshape(-1, 1)")
    n, k = x.shape
    if k == 0:
        raise ConfigError("missed_alone has no layers (k = 0 columns); pass one column per layer")
    if n == 0:
        raise ConfigError("missed_alone has no prompts (0 rows)")
    if isinstance(names, (str, bytes)) or len(names) != k:
        raise ConfigError(f"names must give one name per layer: missed_alone has {k} columns, "
                          f"names has {1 if isinstance(names, (str, bytes)) else len(names)} entries")
    if len(set(names)) != k or not all(isinstance(s, str) for s in names):
        raise ConfigError(f"layer names must be distinct strings, got {list(names)!r}")
    bad = ~((x == 0.0) | (x == 1.0))
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        what = "NaN (a missing judgement: decide it or drop the prompt)" if np.isnan(x[i, j]) else repr(float(x[i, j]))
        raise ConfigError(f"missed_alone must be 0/1: row {i}, layer {names[j]!r} (column {j}) is {what}")
    return x


def _cluster_ids(clusters: Sequence[Hashable] | np.ndarray | None, n: int) -> Sequence[Hashable] | np.ndarray:
    if clusters is None:
        return range(n)
    if isinstance(clusters, (str, bytes)):
        raise ConfigError(f"clusters must be one cluster id per prompt, not the single string {clusters!r}")
    ids = clusters if isinstance(clusters, np.ndarray) else list(clusters)
    if isinstance(ids, np.ndarray) and ids.ndim != 1:
        raise ConfigError(f"clusters must be one-dimensional, one cluster id per prompt; got shape {ids.shape}")
    if len(ids) != n:
        raise ConfigError(f"clusters must give one cluster id per prompt: {n} prompts, {len(ids)} ids")
    return ids


def _binary_vector(values: ArrayLike, n: int) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"missed_stack must be a 0/1 array, one entry per prompt: {exc}") from None
    if x.shape != (n,):
        raise ConfigError(f"missed_stack must have shape ({n},), one entry per row of missed_alone; got {x.shape}")
    bad = ~((x == 0.0) | (x == 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "NaN (a missing judgement: decide it or drop the prompt)" if np.isnan(x[i]) else repr(float(x[i]))
        raise ConfigError(f"missed_stack must be 0/1: row {i} is {what}")
    return x


def _limits(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile limits at order statistics (no interpolation, so infinite replicates are fine)."""
    alpha = 1.0 - confidence
    return (float(np.quantile(boot, alpha / 2.0, method="lower")),
            float(np.quantile(boot, 1.0 - alpha / 2.0, method="higher")))


def _flip(e: Estimate) -> Estimate:
    """1 - a rate: the catch rate from a miss rate."""
    return Estimate(1.0 - e.value, 1.0 - e.high, 1.0 - e.low, e.confidence, e.method, e.n_prompts,
                    e.n_samples, e.n_missing, e.warnings)


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` per replicate under `RATIO_RULE`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0.0, num / den, np.where(num > 0.0, math.inf, 1.0))
    result: np.ndarray = out
    return result


def _ratio_estimate(num: float, den: float, boot_num: np.ndarray, boot_den: np.ndarray, confidence: float,
                    counts: dict[str, Any], what: str) -> Estimate:
    method = f"{_BOOT} of {what} ({RATIO_RULE})"
    if num == 0.0 and den == 0.0:
        return Estimate(math.nan, 0.0, math.inf, method=method, **counts, warnings=(
            "no misses measured and none predicted: the ratio is not identified (any value fits)",))
    value = num / den if den > 0.0 else math.inf
    zero = boot_den == 0.0
    warnings: tuple[str, ...] = ()
    share = float(zero.mean())
    if share > (1.0 - confidence) / 2.0:
        warnings = (f"{share:.0%} of resamples predicted no miss ({RATIO_RULE}); too few misses for a "
                    "ratio: an interval end may sit at 1 or inf for that reason",)
    return Estimate(float(value), *_limits(_ratios(boot_num, boot_den), confidence), method=method, **counts,
                    warnings=warnings)


def _phi(pa: Any, pb: Any, pab: Any) -> Any:
    """Phi coefficient from P(a), P(b), P(a and b); NaN where a variance is 0. Vectorised."""
    var = pa * (1.0 - pa) * pb * (1.0 - pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0.0, (pab - pa * pb) / np.sqrt(np.where(var > 0.0, var, 1.0)), np.nan)


def _phi_estimate(point: tuple[float, float, float], boot: tuple[np.ndarray, np.ndarray, np.ndarray],
                  names: tuple[str, str], confidence: float, counts: dict[str, Any]
                  ) -> tuple[Estimate, str | None]:
    method = f"{_BOOT} (resamples with a constant layer dropped)"
    constant = [(name, p) for name, p in zip(names, point[:2], strict=True) if p in (0.0, 1.0)]
    if constant:
        note = "; ".join(f"layer {name!r} {'missed every' if p == 1.0 else 'missed no'} prompt alone"
                         for name, p in constant) + ": phi is undefined"
        return Estimate(math.nan, math.nan, math.nan, method=method, **counts, warnings=(note,)), note
    reps = _phi(*boot)
    kept = reps[~np.isnan(reps)]
    if kept.size == 0:
        note = "every resample had a layer with constant misses: too few misses for an interval"
        return Estimate(float(_phi(*point)), math.nan, math.nan, method=method, **counts, warnings=(note,)), note
    dropped = 1.0 - kept.size / reps.size
    warnings: tuple[str, ...] = ()
    if dropped > (1.0 - confidence) / 2.0:
        warnings = (f"{dropped:.0%} of resamples had a layer with constant misses and were dropped; "
                    "the interval rests on the rest",)
    value = float(_phi(*point))
    return Estimate(min(1.0, max(-1.0, value)), *_limits(kept, confidence), method=method, **counts,
                    warnings=warnings), None


def _json_ready(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return x


def _num(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.3f}"


def _row(e: Estimate) -> str:
    """Two table cells: the value and its interval."""
    return f"{_num(e.value)} | [{_num(e.low)}, {_num(e.high)}]"


def _cell(s: str) -> str:
    """Text safe inside a markdown table cell (layer names come from user files)."""
    return " ".join(s.split()).replace("\\", "\\\\").replace("|", "\\|")
