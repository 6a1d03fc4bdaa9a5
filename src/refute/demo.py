"""The demo: a whole study of the default model, from question to deployment decision.

It runs the example study shipped in ``refute/study/examples/``: refusal of harmful requests and
over-refusal of safe look-alikes, both with and without a safety system prompt (the candidate
safeguard); the robustness gap under six transforms with capability controls; the judge's error
against human labels; the gate decision of the example deployment policy; and the report. The
study and policy are copied next to the store (``<store dir>/demo/``) so they can be read, edited
and rerun with ``refute study run``.

Budget: about 700 generations of at most 48 new tokens (24 for capability tasks), under 10
minutes on 2 CPU cores the first time (model preparation included); a rerun reuses the stored runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from refute.gate import study_gate
from refute.models import ModelBackend
from refute.report._document import ReportDoc, study_report
from refute.report._html import default_report_path, write_report
from refute.store import Store
from refute.study import LoadedStudy, StudyResult, example_path, load_study, run_study

__all__ = ["DEMO_FILES", "DemoResult", "prepare_demo_study", "run_demo"]

#: The example files the demo copies and runs.
DEMO_FILES = ("refusal-study.yaml", "deployment-policy.yaml")


@dataclass(frozen=True)
class DemoResult:
    study: LoadedStudy
    result: StudyResult
    report: ReportDoc
    html: Path
    markdown: Path
    seconds: float


def prepare_demo_study(store: Store, model_spec: str = "default") -> Path:
    """Copy the example study and policy to ``<store dir>/demo/`` (for ``model_spec`` when it is
    not the default) and return the study's path. A file is rewritten only when it differs."""
    folder = Path(store.path).parent / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        text = example_path(name).read_text(encoding="utf-8")
        if name == DEMO_FILES[0] and model_spec != "default":
            text = re.sub(r"(?m)^model: default$", f"model: {model_spec}", text)
        target = folder / name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return folder / DEMO_FILES[0]


def run_demo(store: Store, *, model_spec: str = "default", model: ModelBackend | None = None,
             output: Path | None = None, unredacted: bool = False, progress: bool = True,
             on_event: Callable[[str], None] | None = None) -> DemoResult:
    """Run the example study end to end and write its report; stored runs are reused on a rerun."""
    start = time.perf_counter()
    study = load_study(prepare_demo_study(store, model_spec))
    result = run_study(study, store, model=model, progress=progress, on_event=on_event, gate=study_gate)
    doc = study_report(store, study, result, unredacted=unredacted)
    html, md = write_report(doc, output or default_report_path(store.path, doc))
    return DemoResult(study, result, doc, html, md, time.perf_counter() - start)
