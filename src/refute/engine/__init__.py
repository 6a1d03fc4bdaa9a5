"""The eval engine: tasks, solvers, and runs that store every sample as it completes."""

from refute.engine._executor import Executor, current_executor, use_executor
from refute.engine._observations import primary_of, primary_scorer, run_observations
from refute.engine._progress import ProgressSink, progress_bar
from refute.engine._runner import (
    PlannedSample,
    check_helpers,
    default_scorers,
    derive_seed,
    needs_rewriter,
    plan_samples,
    resume_run,
    run_task,
)
from refute.engine._solver import (
    SampleState,
    Solver,
    asks,
    get_solver,
    helper_roles,
    list_solvers,
    single_turn,
    solver,
)
from refute.engine._task import PluginSpec, TaskConfig

__all__ = [
    "Executor",
    "PlannedSample",
    "PluginSpec",
    "ProgressSink",
    "SampleState",
    "Solver",
    "TaskConfig",
    "asks",
    "check_helpers",
    "current_executor",
    "default_scorers",
    "derive_seed",
    "get_solver",
    "helper_roles",
    "list_solvers",
    "needs_rewriter",
    "plan_samples",
    "primary_of",
    "primary_scorer",
    "progress_bar",
    "resume_run",
    "run_observations",
    "run_task",
    "single_turn",
    "solver",
    "use_executor",
]
