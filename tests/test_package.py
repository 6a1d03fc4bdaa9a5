"""The package's public surface: light imports and pinned exports."""

from __future__ import annotations

import subprocess
import sys


def test_importing_refute_and_its_library_does_not_import_torch():
    code = ("import sys, refute, refute.models, refute.datasets, refute.engine, refute.store, "
            "refute.scorers, refute.stats, refute.report, refute.redteam, refute.gaming, refute.awareness, refute.cli; "
            "heavy = [m for m in ('torch', 'transformers', 'pandas', 'datasets') if m in sys.modules]; "
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_public_exports_are_pinned():
    import refute.agents
    import refute.awareness
    import refute.engine
    import refute.gaming
    import refute.models
    import refute.store

    assert set(refute.models.__all__) == {
        "EMBEDDED", "Completion", "EmbeddedModel", "GenerateConfig", "GenerateRequest", "Message",
        "ModelBackend", "ModelCache", "ModelInfo", "ModelSpec", "load_model", "parse_spec", "prepare_embedded",
        "AblateEdit", "Edit", "LoraEdit", "SAEEdit", "SAEFeature", "SteerEdit", "encode", "render", "NoiseEdit",
        "noised"}
    assert set(refute.store.__all__) == {
        "SCHEMA_VERSION", "CachedReply", "CalibrationRecord", "FindingEvent", "FindingEventKind",
        "FindingRecord", "RunRecord", "RunStatus", "SampleRecord",
        "ScoreRecord", "Store", "export_run", "open_store", "run_rows", "HumanLabel", "LabelRecord", "QueueItem",
        "ScorerLabel", "csv_cell", "ExchangeOutcome", "ExchangeRecord", "LayerStats", "CopyReport", "copy_runs",
        "PostgresStore"}
    assert {"TaskConfig", "run_task", "resume_run", "solver", "SampleState", "Executor", "current_executor",
            "use_executor"} <= set(refute.engine.__all__)
    assert {"SandboxKind", "SandboxLimits", "ExecResult", "FileEvent", "SandboxSession", "BwrapSandbox",
            "DockerSandbox", "SandboxUnavailableError", "available_sandbox",
            "open_sandbox"} <= set(refute.agents.__all__)
    assert set(refute.gaming.__all__) == {
        "EXPERIMENTS", "Context", "Curve", "Experiment", "ExperimentResult", "Figure", "Series", "Table",
        "experiment", "experiment_names", "get_experiment", "parse_settings", "run_experiment", "settings_digest"}
    assert set(refute.gaming.experiment_names()) >= {"overoptimisation", "code-hacking", "gridworlds",
                                                      "weak-to-strong", "debate"}
    assert set(refute.awareness.__all__) == {
        "BUILTIN_CUES", "ORGANISMS", "PASSWORD", "RECIPES", "SIDES", "CueFamily", "CueFile", "GapSettings",
        "NoiseSettings", "Organism", "ProbeSettings", "Recipe", "Side", "build_organism", "cue_chain", "load_cues",
        "organism_rows", "run_gap", "run_noise", "run_probe"}
    assert set(refute.gaming.experiment_names("awareness")) >= {"compliance-gap"}
    for module in (refute.models, refute.store, refute.engine, refute.agents, refute.gaming, refute.awareness):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_the_package_says_it_is_typed():
    """PEP 561: ``py.typed`` sits in the package and is listed as package data, so wheels carry it."""
    import importlib.resources
    import tomllib
    from pathlib import Path

    assert importlib.resources.files("refute").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["refute"]
