"""Specification gaming and scalable oversight: experiments where the metric and the goal come apart.

Five experiments, each a command (`refute gaming NAME`) and a study run type (``type: experiment``):

- ``overoptimisation``: best-of-n against a proxy reward, measured with a gold one (Gao et al. 2022);
- ``code-hacking``: coding tasks with visible and hidden tests, and the rate of passing only the visible;
- ``gridworlds``: small environments whose reward and hidden performance differ, and agents trained on them;
- ``weak-to-strong``: a strong student trained on a weak supervisor's labels (Burns et al. 2023);
- ``debate``: a judge's accuracy with debate, a single consultant, or no help.

Each returns an `ExperimentResult` (figures with intervals, curves, tables) that `refute.report`
renders. Every model reply goes through the engine into the store (resumable; a rerun is answered
from its cache); weak-to-strong reads activations instead, cached beside its result with each seed's
accuracies, and the gridworlds keep each seed's curves there.
"""

from refute.gaming import _bestofn, _codehack, _debate, _gridworlds, _w2s  # noqa: F401  (register the experiments)
from refute.gaming._experiments import (
    EXPERIMENTS,
    Context,
    Experiment,
    experiment,
    experiment_names,
    get_experiment,
    parse_settings,
    run_experiment,
    settings_digest,
)
from refute.gaming._result import Curve, ExperimentResult, Figure, Series, Table

__all__ = [
    "EXPERIMENTS",
    "Context",
    "Curve",
    "Experiment",
    "ExperimentResult",
    "Figure",
    "Series",
    "Table",
    "experiment",
    "experiment_names",
    "get_experiment",
    "parse_settings",
    "run_experiment",
    "settings_digest",
]
