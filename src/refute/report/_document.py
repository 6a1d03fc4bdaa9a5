"""Everything a report shows, gathered once from the store: the HTML and Markdown writers only lay
it out.

A report is built from a study (its stored result names its runs) or from a single run. Numbers
are recomputed from the stored samples, the store being the source of truth; the gate decision is
the one stored with the study's result unless another policy is given.

Dual-use care: replies to harmful requests are redacted unless ``unredacted`` is set, and a
transformed (attack) prompt is shown only by its transform chain and the sha256 of its text.
Whether a run's requests are harmful is its dataset's declared harm label (a study run's
``intent``, a task's ``harmful``, a built-in's declaration), never its name; anything undeclared
counts as harmful.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from refute import __version__
from refute.datasets import run_harmful
from refute.errors import ConfigError
from refute.gaming import ExperimentResult
from refute.gate import GateDecision, decide, load_policy
from refute.redteam._gap import RobustnessGap, robustness_gap
from refute.report._sections import Findings, ScopeFacts, findings
from refute.report._summary import RunSummary, primary_scorer, statistic_name, summarize_run
from refute.scorers import meaning_of
from refute.store import RunRecord, SampleRecord, Store
from refute.study._measures import (
    Calibration,
    Measurement,
    RunRef,
    ThresholdVerdict,
    compute_measure,
    judge_threshold,
    run_calibration,
    study_gap,
)
from refute.study._run import StudyResult, earlier_versions, find_result, resolve_study, study_measurements
from refute.study._spec import Better, LoadedStudy, MeasureSpec, study_from_text

__all__ = ["Example", "ReportDoc", "RunView", "build_report", "run_report", "study_report"]


@dataclass(frozen=True)
class RunView:
    """One stored run as the report names it."""

    label: str
    run: RunRecord
    dataset: str
    harmful: bool
    condition: str
    role: Literal["eval", "redteam", "capability", "other"]
    description: str | None
    summary: RunSummary | None
    n_ok: int
    n_failed: int
    reused: bool = False


@dataclass(frozen=True)
class Example:
    """One sample as the report may show it."""

    run_label: str
    prompt_id: str
    category: str
    chain: str
    system: str | None
    prompt: str | None  # None: hidden (an attack prompt); see prompt_sha
    prompt_sha: str
    reply: str | None  # None: redacted
    reply_chars: int
    outcome: str
    #: An agent episode's tool calls, in order: (tool, arguments as text, exit status or "-", output),
    #: hidden with the reply when the reply is.
    actions: tuple[tuple[str, str, str, str], ...] = ()


@dataclass(frozen=True)
class ReportDoc:
    """The content of a report, ready to lay out."""

    title: str
    source: Literal["study", "run"]
    generated_at: str
    refute_version: str
    runs: list[RunView]
    measurements: dict[str, Measurement | None]
    verdicts: list[ThresholdVerdict]
    gaps: list[tuple[str, RobustnessGap]]
    calibration: Calibration | None
    gate: GateDecision | None
    findings: Findings
    examples: list[Example]
    unredacted: bool
    study: LoadedStudy | None = None
    result: StudyResult | None = None
    edits: list[str] = field(default_factory=list)
    policy_text: str | None = None
    run_calibrations: list[Calibration] = field(default_factory=list)  # runs' own labels behind measures
    experiments: list[ExperimentResult] = field(default_factory=list)  # the study's experiment runs

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys([*(f"{v.run.model_spec}" + (f" ({v.run.model_revision})" if v.run.model_revision
                                                              else "") for v in self.runs),
                                   *(m for e in self.experiments for m in e.models)]))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _outcome(scorer: str | None, value: float | None) -> str:
    """What a sample's score is called, as its scorer declares it ("refused", "harmful", "wrong")."""
    if value is None or scorer is None:
        return "unscored"
    return meaning_of(scorer).outcome(value)


def _examples(store: Store, view: RunView, unredacted: bool, per_kind: int = 2) -> list[Example]:
    scorer = view.summary.scorer if view.summary else None
    values = {s.sample_id: s.value for s in store.scores(view.run.id, scorer)} if scorer else {}
    by_outcome: dict[tuple[bool, str], list[SampleRecord]] = {}
    for s in store.samples(view.run.id, include_errors=False):
        key = (s.transform_chain != "none", _outcome(scorer, values.get(s.id)))
        by_outcome.setdefault(key, []).append(s)
    meaning = meaning_of(scorer) if scorer else None
    # the outcome that counts against the model first (compliance with a harmful request, a
    # harmful reply, over-refusal of a safe one, a wrong answer), then the other one
    worse = meaning.worse_outcome(view.harmful) if meaning else None
    better = meaning.better_outcome(view.harmful) if meaning else None
    if meaning is not None and worse is None:  # no safer side declared: both outcomes as they are
        worse, better = meaning.high, meaning.low
    wanted = [(False, worse), (False, better)] if worse is not None and better is not None else []
    if view.harmful and worse is not None:
        wanted.append((True, worse))
    out = []
    for key in wanted:
        for s in by_outcome.get(key, [])[:per_kind]:
            users = [m["content"] for m in s.messages if m.get("role") == "user"]
            systems = [m["content"] for m in s.messages if m.get("role") == "system"]
            episode = s.metadata.get("agent") if isinstance(s.metadata.get("agent"), dict) else None
            prompt = (users[0] if episode else users[-1]) if users else ""  # an agent's task, not a tool result
            hidden = s.transform_chain != "none" and not unredacted
            reply = s.completion or ""
            redacted = view.harmful and not unredacted
            out.append(Example(view.label, s.prompt_id, s.category, s.transform_chain,
                               systems[0] if systems and not episode else None, None if hidden else prompt,
                               _sha(prompt), None if redacted else reply, len(reply),
                               _outcome(scorer, values.get(s.id)),
                               () if redacted or not episode else _actions(episode)))
    return out


def _actions(episode: dict[str, Any], clip: int = 300) -> tuple[tuple[str, str, str, str], ...]:
    """An agent episode's steps as a report shows them (arguments and output clipped)."""
    rows = []
    for step in episode.get("steps") or []:
        args = "; ".join(f"{k}={v}" for k, v in (step.get("args") or {}).items()) or str(step.get("error", ""))
        status = "-" if step.get("exit_code") is None else str(step["exit_code"])
        if step.get("limit"):
            status += f" ({step['limit']} limit)"
        output = str(step.get("output") or "")
        rows.append((str(step.get("tool") or "none"), args[:clip], status, output[:clip]))
    return tuple(rows)


def _view(store: Store, label: str, run_id: str, dataset: str, harmful: bool, condition: str,
          description: str | None, reused: bool = False) -> RunView:
    run = store.get_run(run_id)
    ok, bad = store.sample_counts(run.id)
    role = run.kind if run.kind in ("eval", "redteam", "capability") else "other"
    return RunView(label, run, dataset, harmful, condition, role, description,  # type: ignore[arg-type]
                   summarize_run(store, run.id), ok, bad, reused)


def _scope(views: list[RunView]) -> ScopeFacts:
    transforms: list[str] = []
    prompts: dict[str, int] = {}  # dataset -> most prompts of any canonical run on it
    greedy = True
    for v in views:
        cfg = v.run.config
        transforms += [t for t in cfg.get("transforms", []) if t != "none" and t not in transforms]
        if (cfg.get("generate") or {}).get("temperature", 0.0) > 0 or cfg.get("epochs", 1) > 1:
            greedy = False
        chain = next((c for c in v.summary.chains if c.chain == "none"), None) if v.summary else None
        overall = next((r.estimate.n_prompts for r in chain.rows if r.overall), 0) if chain else 0
        prompts[v.dataset] = max(prompts.get(v.dataset, 0), overall)
    solvers = sorted({(v.run.config.get("solver") or {}).get("name", "single_turn") for v in views})
    return ScopeFacts(list(prompts), sum(prompts.values()), transforms, greedy,
                      sum(v.n_failed for v in views), solvers)


def _edits(store: Store, study: LoadedStudy) -> list[str]:
    out = []
    mine = [(t.measure, str(t.safe_if)) for t in study.spec.thresholds]
    for old in earlier_versions(store, study.spec.id, study.sha256):
        try:
            theirs = [(t.measure, str(t.safe_if)) for t in study_from_text(old.text, old.path).spec.thresholds]
        except ConfigError:
            theirs = []
        changed = sorted(set(theirs) ^ set(mine))
        what = ("its thresholds differed: " + "; ".join(
            f"{'was' if c in theirs else 'now'} {c[0]} {c[1]}" for c in changed)) if changed else \
            "its thresholds were the same (other text changed)"
        out.append(f"An earlier version of this study (sha256 {old.hash12}, first run "
                   f"{old.first_created_at}) has stored results; {what}.")
    return out


def study_report(store: Store, study: LoadedStudy, result: StudyResult, *, unredacted: bool = False,
                 policy: Path | None = None) -> ReportDoc:
    """The report of a study from its stored result and the store's samples."""
    refs = result.run_refs()
    missing = [r.id for r in study.spec.runs if r.id not in refs]
    if missing:
        raise ConfigError(f"study result {result.hash12} has no runs for {', '.join(missing)}; "
                          f"run `refute study run {study.path}` again")
    views: list[RunView] = []
    gaps: list[tuple[str, RobustnessGap]] = []
    experiments: list[ExperimentResult] = []
    for spec in study.spec.runs:
        ref = refs[spec.id]
        if spec.type == "experiment":
            saved = None if ref.experiment_result is None else Path(store.path).parent / ref.experiment_result
            if saved is None or not saved.is_file():
                raise ConfigError(f"study result {result.hash12}: run '{spec.id}' has no experiment result "
                                  f"({saved or 'none recorded'}); run `refute study run {study.path}` again")
            experiments.append(ExperimentResult.load(saved))
            continue
        views.append(_view(store, spec.id, ref.run_id, spec.dataset, spec.harmful, spec.condition_label,
                           spec.description, ref.reused))
        if spec.type == "robustness_gap":
            if ref.capability_run_id:
                views.append(_view(store, f"{spec.id} (capability control)", ref.capability_run_id,
                                   spec.capability_dataset or "benign-tasks", False, spec.condition_label,
                                   "benign tasks with known answers under the same transforms", ref.reused))
            gaps.append((spec.id, study_gap(store, ref)))
    calibration = Calibration.from_dict(result.calibration) if result.calibration else None
    measurements = study_measurements(store, study, refs, calibration)

    verdicts = [judge_threshold(t.safe_if, measurements.get(t.measure), t.measure, t.rationale)
                for t in study.spec.thresholds]
    gate = None
    policy_text = result.policy_text
    if policy is not None:
        loaded = load_policy(policy)
        loaded.check_measures(list(study.spec.measures), study.path, study.ratio_measures)
        gate, policy_text = decide(loaded, measurements), loaded.doc.text
    elif result.gate is not None:
        gate = GateDecision.from_dict(result.gate)
    notes = _edits(store, study) + _calibration_changes(result, measurements, stale_gate=gate is not None
                                                        and policy is None)
    own = _run_calibrations(store, measurements)
    found = findings(measurements, verdicts, gaps, calibration, gate, _scope(views), own)
    examples = [e for v in views if v.role != "capability" for e in _examples(store, v, unredacted)]
    return ReportDoc(study.spec.title, "study", _now(), __version__, views, measurements, verdicts, gaps,
                     calibration, gate, found, examples, unredacted, study, result, notes, policy_text, own,
                     experiments)


def _run_calibrations(store: Store, measurements: dict[str, Measurement | None]) -> list[Calibration]:
    """The runs' own calibrations that corrected some measure, once each."""
    out: dict[tuple[str, str], Calibration] = {}
    for m in measurements.values():
        if m is not None and m.calibration_source == "run" and (m.run_id, m.scorer) not in out:
            cal, _ = run_calibration(store, m.run_id, m.scorer)
            if cal is not None:
                out[(m.run_id, m.scorer)] = cal
    return list(out.values())


def _calibration_changes(result: StudyResult, measurements: dict[str, Measurement | None], *,
                         stale_gate: bool) -> list[str]:
    """A note when a measure is corrected here with other labels than when the study ran (a run's
    replies were labelled since): the stored gate decision was made on the older figures."""
    then = result.measurements()
    changed = []
    for name, m in measurements.items():
        before = then.get(name)
        if m is not None and before is not None and (before.calibration_source, before.calibration_n) != (
                m.calibration_source, m.calibration_n):
            changed.append(name)
    if not changed:
        return []
    return [f"The calibration behind {', '.join(changed)} changed after the study ran (a run's own replies "
            "were labelled): the measures here use the current labels"
            + ("; the stored gate decision was made before them (apply the policy again: "
               "refute gate POLICY --study STUDY)." if stale_gate else ".")]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _run_measures(store: Store, view: RunView) -> dict[str, Measurement | None]:
    """A run alone has no pre-registered measures: one per chain, overall, for the findings; a
    refusal rate is corrected with the run's own labels when it has them."""
    out: dict[str, Measurement | None] = {}
    s = view.summary
    if s is None:
        return out
    meaning = meaning_of(s.scorer)
    refusal = meaning.higher_is == "refusal"
    for chain in s.chains:
        row = next(r for r in chain.rows if r.overall)
        e = row.estimate
        what = (("refusal of " + ("harmful" if view.harmful else "safe") + " requests") if refusal
                else statistic_name(s.scorer))
        where = "" if chain.chain == "none" else f" under {chain.chain}"
        # refusal is better high on harmful requests and low on safe ones; any other scorer says
        # which way is safer (a harmfulness judge: lower), else higher is better (accuracy)
        better: Better = (("higher" if view.harmful else "lower") if refusal
                          else "lower" if meaning.safer_when_higher is False else "higher")
        spec = MeasureSpec(run="run", statistic="refusal" if refusal else "accuracy", better=better,
                           description=what + where, chain=chain.chain)
        plain = Measurement(spec.description, spec.description, spec.statistic, better, e, view.run.id,
                            chain.chain, s.scorer)
        if refusal and run_calibration(store, view.run.id, s.scorer)[0] is not None:
            corrected = compute_measure(store, spec.description, spec.model_copy(update={"scorer": s.scorer}),
                                        RunRef(view.run.id))
            plain = corrected if corrected is not None else plain
        out[f"{chain.chain}"] = plain
    return out


def run_report(store: Store, run_id: str, *, unredacted: bool = False) -> ReportDoc:
    """The report of one stored run: its rates, and its robustness gap when it has transforms."""
    run = store.get_run(run_id)
    # the dataset as the run asked for it ("benign-tasks", or a path whose stem may look like one)
    harmful = run_harmful(run.config, run.dataset_name)
    view = _view(store, run.name or run.id, run.id, run.dataset_name, harmful, "baseline", None)
    gaps = []
    views = [view]
    scorer = primary_scorer(store, run.id)
    chains = [c for c in run.config.get("transforms", []) if c != "none"]
    if chains and scorer is not None and meaning_of(scorer).higher_is == "refusal":
        # its capability control is linked to it in the store (the newest, when rerun)
        controls = store.children(run.id, role="capability")
        control = controls[-1] if controls else None
        if control is not None:
            views.append(_view(store, f"{view.label} (capability control)", control.id, control.dataset_name,
                               False, "baseline", "benign tasks with known answers under the same transforms"))
        gaps.append((run.name or run.id, robustness_gap(store, run.id, control.id if control else None)))
    measurements = _run_measures(store, view)
    own = _run_calibrations(store, measurements)
    found = findings(measurements, [], gaps, None, None, _scope(views), own)
    return ReportDoc(f"Run {run.id}: {run.dataset_name} on {run.model_spec}", "run", _now(), __version__,
                     views, measurements, [], gaps, None, None, found, _examples(store, view, unredacted),
                     unredacted, run_calibrations=own)


def build_report(store: Store, target: str, *, unredacted: bool = False,
                 policy: Path | None = None) -> ReportDoc:
    """A report of ``target``: a study file, a study hash (prefix) or a run id (prefix)."""
    path = Path(target)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file() or find_result(store, target) is not None:
        study, result = resolve_study(store, target)
        return study_report(store, study, result, unredacted=unredacted, policy=policy)
    return run_report(store, target, unredacted=unredacted)
