"""Shared pieces of refute.stats: the `Estimate` result, input checks, grouping by prompt, seeds.

Distribution functions come from ``scipy.special`` and are imported on first use, so that
``import refute.stats`` costs only numpy.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike

from refute.errors import ConfigError

DEFAULT_SEED = 20240611
"""Seed used when ``rng`` is None, so that every bootstrap result is reproducible by default."""

RngLike = np.random.Generator | int | None
Values = ArrayLike | Sequence[float | bool | None]
"""0/1 outcomes, one per sample: bools, ints or floats; None or NaN marks a missing sample."""
PromptIds = Sequence[Hashable] | np.ndarray | None
"""The prompt id of each sample (any hashable); None means one sample per prompt."""


def as_rng(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator (used as is), an int seed, or None (fixed `DEFAULT_SEED`)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(DEFAULT_SEED)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(
        f"rng must be a numpy Generator, an int seed or None, not {type(rng).__name__}"
    )


def check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return c


def check_real(name: str, value: Any) -> float:
    """``value`` as a finite float (not a bool); NaN, infinities and non-numbers are errors."""
    if isinstance(value, (bool, str, bytes)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return x


def check_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --- distribution functions (scipy.special, imported lazily) -------------------------------------


def norm_cdf(x: Any) -> Any:
    from scipy.special import ndtr

    return ndtr(x)


def norm_ppf(q: Any) -> Any:
    from scipy.special import ndtri

    return ndtri(q)


def t_ppf(q: float, df: float) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def t_half_width(x: Any, confidence: float) -> float:
    """Half the width of the t-interval of the mean of ``x`` (at least 2 values)."""
    n = len(x)
    return t_ppf(0.5 + confidence / 2, n - 1) * float(np.std(x, ddof=1)) / math.sqrt(n)


def t_sf(x: float, df: float) -> float:
    from scipy.special import stdtr

    return float(stdtr(df, -x))


def beta_ppf(q: Any, a: Any, b: Any) -> Any:
    from scipy.special import betaincinv

    return betaincinv(a, b, q)


def binom_cdf(k: Any, n: Any, p: float) -> Any:
    from scipy.special import bdtr

    return bdtr(k, n, p)


# --- the result of every rate -------------------------------------------------------------------

Better = Literal["higher", "lower"]
"""Which way of a measure is safer: ``higher`` (e.g. refusal of harmful requests) or ``lower``."""
Bound = Literal["lower", "upper"]


class Bounds(Protocol):
    """Anything with an interval: an `Estimate`, a study's ``Measurement``."""

    @property
    def low(self) -> float: ...

    @property
    def high(self) -> float: ...


def conservative_end(interval: Bounds, better: Better) -> tuple[Bound, float]:
    """The end of ``interval`` that is worse for safety, and which end it is.

    When higher is better that is the lower bound, when lower is better the upper bound: a claim
    read there holds for every value the interval does not exclude. The study's verdicts, its
    "could be as bad as" sentences and the gate's decisions all read intervals through this one
    function.
    """
    if better == "higher":
        return "lower", interval.low
    if better == "lower":
        return "upper", interval.high
    raise ConfigError(f"better must be 'higher' or 'lower', got {better!r}")


@dataclass(frozen=True, slots=True)
class Estimate:
    """A rate with its interval, the method that produced it and how much data it rests on.

    ``value`` is the mean over prompts of each prompt's rate (every prompt counts once, as an
    epoch reducer would); with the same number of samples per prompt it is successes / samples.
    """

    value: float
    low: float
    high: float
    confidence: float
    method: str
    n_prompts: int
    n_samples: int
    n_missing: int = 0
    """Samples excluded because their value was missing (NaN / None: an errored sample)."""
    warnings: tuple[str, ...] = ()
    """What a reader must know before trusting the interval (e.g. a judge correction whose apparent
    rate lies outside the judge's range); reports show them beside the estimate."""

    def __post_init__(self) -> None:
        if not isinstance(self.warnings, tuple):  # a list read back from JSON
            object.__setattr__(self, "warnings", tuple(self.warnings))

    def __str__(self) -> str:
        text = f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"
        return text + "".join(f" (warning: {w})" for w in self.warnings)

    @property
    def width(self) -> float:
        return self.high - self.low

    def conservative(self, better: Better) -> float:
        """The interval's end that is worse for safety (`conservative_end`): ``low`` when higher
        is better, ``high`` when lower is better."""
        return conservative_end(self, better)[1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- inputs: binary values grouped by prompt ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grouped:
    """Binary samples grouped by prompt: per-prompt successes and valid-sample counts."""

    keys: tuple[Hashable, ...]  # prompt ids, one per prompt with at least one valid sample
    sums: np.ndarray  # (M,) successes per prompt
    counts: np.ndarray  # (M,) valid samples per prompt
    n_missing: int

    @property
    def n_prompts(self) -> int:
        return int(self.counts.size)

    @property
    def n_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def means(self) -> np.ndarray:
        out: np.ndarray = self.sums / self.counts
        return out

    @property
    def singleton(self) -> bool:
        """True when every prompt has exactly one sample (no clustering)."""
        return bool(np.all(self.counts == 1))

    def subset(self, keys: Sequence[Hashable], n_missing: int = 0) -> Grouped:
        """These prompts only, in this order; ``n_missing``: their missing samples, if known."""
        index = {k: i for i, k in enumerate(self.keys)}
        rows = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
        return Grouped(tuple(keys), self.sums[rows], self.counts[rows], n_missing)


def as_values(values: Values, name: str = "values") -> np.ndarray:
    """A 1-D float array of 0/1, NaN for missing (None becomes NaN); anything else is an error."""
    try:
        v: np.ndarray = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be 0/1 outcomes (bool, int or float; None or NaN for a missing "
            f"sample): {exc}"
        ) from None
    if v.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional, got shape {v.shape}")
    bad = ~(np.isnan(v) | (v == 0.0) | (v == 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"{name} must be binary (0/1, True/False; NaN or None for a missing sample), "
            f"got {v[i]!r} at index {i}; threshold scores before computing a rate"
        )
    return v


def factorize(keys: Iterable[Hashable], name: str = "clusters"
              ) -> tuple[np.ndarray, list[Hashable]]:
    """Integer codes (in first-seen order for Python objects, sorted for numpy arrays) and keys."""
    if isinstance(keys, np.ndarray) and keys.ndim == 1 and keys.dtype.kind in "biuUS":
        uniq, codes = np.unique(keys, return_inverse=True)
        return codes.astype(np.int64), uniq.tolist()
    seen: dict[Hashable, int] = {}
    try:
        codes_list = [seen.setdefault(k, len(seen)) for k in keys]
    except TypeError as exc:
        raise ConfigError(f"{name} must be hashable prompt ids (str or int): {exc}") from None
    return np.asarray(codes_list, dtype=np.int64), list(seen)


def group(values: Values, clusters: PromptIds | Iterable[Hashable] = None, *,
          name: str = "values") -> Grouped:
    """Group 0/1 ``values`` by prompt id ``clusters`` (None: every sample is its own prompt)."""
    v = as_values(values, name)
    if clusters is None:
        codes = np.arange(v.size, dtype=np.int64)
        keys: list[Hashable] = list(range(v.size))
    else:
        ids: Sequence[Hashable] | np.ndarray
        if isinstance(clusters, (str, bytes)):
            ids = [clusters]
        elif isinstance(clusters, (np.ndarray, Sequence)):
            ids = clusters
        else:
            ids = list(clusters)
        if len(ids) != v.size:
            raise ConfigError(
                f"{name} has {v.size} samples but its prompt ids (clusters) have {len(ids)}; "
                "pass one prompt id per sample"
            )
        codes, keys = factorize(ids)
    valid = ~np.isnan(v)
    n_missing = int(v.size - valid.sum())
    m = len(keys)
    counts = np.bincount(codes[valid], minlength=m).astype(float)
    sums = np.bincount(codes[valid], weights=v[valid], minlength=m)
    keep = counts > 0
    if not keep.any():
        raise ConfigError(
            f"{name} has no valid samples ({v.size} given, {n_missing} missing); nothing to "
            "estimate"
        )
    if not keep.all():
        keys = [k for k, kept in zip(keys, keep, strict=True) if kept]
        sums, counts = sums[keep], counts[keep]
    return Grouped(tuple(keys), sums, counts, n_missing)


def lcm_of(counts: Iterable[int], cap: int) -> int | None:
    """Least common multiple of ``counts``, or None once it exceeds ``cap``."""
    out = 1
    for c in counts:
        out = math.lcm(out, int(c))
        if out > cap:
            return None
    return out
