"""Studies: a safety question, its threat model, a claim, pre-registered thresholds, and the runs
and measures that answer it, run end to end with `run_study` (``refute study run STUDY.yaml``).

A study file is YAML validated by pydantic; a malformed one raises `SpecFileError` naming the file,
the line and the field, and nothing runs. Results are stored with the file's sha256 (see
`refute.study._run` for where), so an edit made after the data was seen is visible.
"""

from pathlib import Path

from refute._yaml import Issue, SpecFileError
from refute.study._measures import (
    Calibration,
    CalibrationSource,
    Measurement,
    RunRef,
    ThresholdVerdict,
    Verdict,
    choose_calibration,
    compute_measure,
    judge_threshold,
    run_calibration,
)
from refute.study._run import (
    PolicyGate,
    StudyResult,
    earlier_versions,
    find_result,
    load_result,
    resolve_study,
    result_path,
    results_dir,
    run_study,
    stored_measurements,
    study_measurements,
)
from refute.study._spec import (
    CalibrationSpec,
    Limit,
    LoadedStudy,
    MeasureSpec,
    RunSpec,
    StudySpec,
    ThresholdSpec,
    load_study,
    study_from_text,
)

EXAMPLES = "examples"
"""Folder (inside this package) of the example study and policy that `refute demo` runs."""

__all__ = [
    "EXAMPLES",
    "Calibration",
    "CalibrationSource",
    "CalibrationSpec",
    "Issue",
    "Limit",
    "LoadedStudy",
    "MeasureSpec",
    "Measurement",
    "PolicyGate",
    "RunRef",
    "RunSpec",
    "SpecFileError",
    "StudyResult",
    "StudySpec",
    "ThresholdSpec",
    "ThresholdVerdict",
    "Verdict",
    "choose_calibration",
    "compute_measure",
    "earlier_versions",
    "example_path",
    "find_result",
    "judge_threshold",
    "load_result",
    "load_study",
    "resolve_study",
    "results_dir",
    "result_path",
    "run_calibration",
    "run_study",
    "stored_measurements",
    "study_from_text",
    "study_measurements",
]


def example_path(name: str) -> Path:
    """The path of a shipped example: ``refusal-study.yaml`` or ``deployment-policy.yaml``."""
    return Path(__file__).parent / EXAMPLES / name
