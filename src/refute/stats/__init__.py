"""Statistics a reviewer accepts: clustered intervals, paired tests, corrections, power, judges.

Pure numpy (scipy.special and scipy.optimize load on first use); no I/O. Every rate comes back as
an `Estimate` with its interval and the method that produced it; every comparison as a
`Comparison` with a p-value and both methods named. Random generators are passed in (``rng``: a
Generator, an int seed, or None for a fixed default seed).

Defense in depth (`stack_statistics`): safeguard layers alone against the stack measured, the
miss rate independence predicts, the correlation of layers' misses, and `pareto_front`.

Also the one implementation of what other packages need from statistics: an interval read at its
conservative end (`conservative_end`), L2-penalised logistic regression (`logistic_regression`)
and resampling for bootstraps (``refute.stats._bootstrap``).
"""

from refute.stats._bootstrap import bootstrap_interval
from refute.stats._common import DEFAULT_SEED, Better, Estimate, conservative_end
from refute.stats._compare import (
    ComparisonRow,
    ComparisonTable,
    Direction,
    Observation,
    compare_conditions,
)
from refute.stats._judge import rogan_gladen
from refute.stats._layers import PairCorrelation, StackStats, pareto_front, stack_statistics
from refute.stats._logistic import LogisticFit, logistic_regression
from refute.stats._multiple import Correction, adjust_pvalues
from refute.stats._paired import Comparison, PairedMethod, paired_difference, unpaired_difference
from refute.stats._power import (
    Plan,
    PowerMethod,
    design_effect,
    icc,
    plan_from_pilot,
    power,
    sample_size,
)
from refute.stats._rates import CategoryRate, RateMethod, rate, rates_by_category

__all__ = [
    "DEFAULT_SEED",
    "Better",
    "CategoryRate",
    "Comparison",
    "ComparisonRow",
    "ComparisonTable",
    "Correction",
    "Direction",
    "Estimate",
    "LogisticFit",
    "Observation",
    "PairCorrelation",
    "PairedMethod",
    "Plan",
    "PowerMethod",
    "RateMethod",
    "StackStats",
    "adjust_pvalues",
    "bootstrap_interval",
    "compare_conditions",
    "conservative_end",
    "design_effect",
    "icc",
    "logistic_regression",
    "paired_difference",
    "pareto_front",
    "plan_from_pilot",
    "power",
    "rate",
    "rates_by_category",
    "rogan_gladen",
    "sample_size",
    "stack_statistics",
    "unpaired_difference",
]
