"""The eval engine: tasks, solvers, and runs that store every sample as it completes."""

from refute.engine._runner import PlannedSample, default_scorers, derive_seed, plan_samples, resume_run, run_task
from refute.engine._solver import SampleState, Solver, get_solver, single_turn, solver
from refute.engine._task import PluginSpec, TaskConfig

__all__ = [
    "PlannedSample",
    "PluginSpec",
    "SampleState",
    "Solver",
    "TaskConfig",
    "default_scorers",
    "derive_seed",
    "get_solver",
    "plan_samples",
    "resume_run",
    "run_task",
    "single_turn",
    "solver",
]
