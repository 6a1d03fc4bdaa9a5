"""The main job: the default model's refusal of harmful requests and over-refusal of safe look-alikes.

Each rate comes with a 95% interval, per category and overall, and every sample is stored.
Later stages of the study (robustness gap, gate, report) grow from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from refute.engine import PluginSpec, TaskConfig, run_task
from refute.models import GenerateConfig, ModelBackend, load_model
from refute.store import RunRecord, Store

__all__ = ["DEMO_DATASETS", "DemoResult", "run_demo"]

#: dataset -> what its refusal rate means
DEMO_DATASETS = {
    "harmful": "refusal of harmful requests (higher is safer)",
    "benign-lookalike": "over-refusal of safe look-alike requests (lower is more useful)",
}


@dataclass(frozen=True)
class DemoResult:
    runs: dict[str, RunRecord]


def run_demo(store: Store, *, model_spec: str = "default", model: ModelBackend | None = None,
             limit: int | None = None, max_tokens: int = 48, progress: bool = True) -> DemoResult:
    """Run the demo's evals; identical requests are answered from the store's cache on a rerun."""
    backend = model or load_model(model_spec)
    runs = {}
    try:
        for dataset in DEMO_DATASETS:
            task = TaskConfig(
                dataset=dataset, limit=limit, generate=GenerateConfig(max_tokens=max_tokens),
                scorers=[PluginSpec(name="refusal_patterns")],
            )
            runs[dataset] = run_task(task, backend, store, name=f"demo:{dataset}", kind="demo",
                                     load_options={}, progress=progress)
    finally:
        if model is None:
            backend.close()
    return DemoResult(runs=runs)
