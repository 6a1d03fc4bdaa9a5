"""Run a study end to end: its runs through the engine, its measures, thresholds and gate decision
(made by the `PolicyGate` the caller hands in: the gate is a layer above studies).

Where results are kept (no change to the store's schema):

* every engine run is named ``study:<hash12>:<run id>`` (``...:<run id>:capability`` for the
  capability control of a robustness_gap), where ``hash12`` is the first 12 hex characters of
  the sha256 of the study file's text;
* the study's result, a `StudyResult` with the study's full text, its sha256, the ids of its
  runs, the measures, threshold verdicts and gate decision, is written as JSON to
  ``<store dir>/studies/<hash12>.json`` (next to ``refute.db``).

Stored samples are reused twice over: a completed run with the identical configuration on the same
embedded model (weights pinned by hash) and the same dataset content is reused as it is, so a
rerun loads no model at all; any other identical request is answered from the engine's cache.
Editing any byte of the study (a threshold, say) gives it a new hash and a new result file; the
old result stays, and `earlier_versions` finds it, so a change made after seeing the data shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from refute import __version__
from refute.datasets import load_dataset
from refute.engine import PluginSpec, TaskConfig, get_solver, helper_roles, needs_rewriter, resume_run, run_task
from refute.errors import ConfigError
from refute.gaming import Context, ExperimentResult, get_experiment, parse_settings, run_experiment, settings_digest
from refute.guard import load_stack, measure_stack
from refute.models import EMBEDDED, GenerateConfig, ModelBackend, ModelCache, parse_spec
from refute.redteam._attacks import attack_tasks, run_attacks
from refute.redteam._campaign import (
    DEFAULT_CAPABILITY_DATASET,
    DEFAULT_CAPABILITY_LIMIT,
    DEFAULT_CAPABILITY_MAX_TOKENS,
    campaign_pair,
)
from refute.scorers import get_scorer
from refute.scorers._validate import validate
from refute.store import RunRecord, Store
from refute.study._measures import (
    Calibration,
    Measurement,
    RunRef,
    ThresholdVerdict,
    compute_measure,
    judge_threshold,
)
from refute.study._spec import LoadedStudy, RunSpec, load_study, study_from_text

__all__ = ["PolicyGate", "StudyResult", "earlier_versions", "find_result", "load_result", "resolve_study",
           "result_path", "results_dir", "run_study", "stored_measurements", "study_measurements"]

RESULT_VERSION = 1


class StudyResult(BaseModel):
    """What a study run produced; saved as ``<store dir>/studies/<hash12>.json``."""

    model_config = ConfigDict(frozen=True)

    version: int = Field(RESULT_VERSION, description="Schema version of this record.")
    study_id: str = Field(description="The study's id field (stable across edits).")
    title: str = Field(description="The study's title.")
    sha256: str = Field(description="SHA-256 of the study file's text.")
    path: str = Field(description="Where the study file was read from.")
    text: str = Field(description="The study file's full text, as run.")
    created_at: str = Field(description="UTC ISO-8601 time the result was written.")
    first_created_at: str = Field(description="When a result of this exact text was first written.")
    refute_version: str = Field(description="refute's version.")
    runs: dict[str, dict[str, Any]] = Field(description="Study run id -> RunRef (stored run ids, reused or not).")
    calibration: dict[str, Any] | None = Field(None, description="The judge's measured error, if any.")
    measures: dict[str, dict[str, Any] | None] = Field(description="Measure name -> Measurement (None: no data).")
    thresholds: list[dict[str, Any]] = Field(description="ThresholdVerdict of each pre-registered threshold.")
    gate: dict[str, Any] | None = Field(None, description="GateDecision of the study's policy, if it names one.")
    policy_text: str | None = Field(None, description="The policy file's text, as applied.")

    @property
    def hash12(self) -> str:
        return self.sha256[:12]

    def run_refs(self) -> dict[str, RunRef]:
        return {k: RunRef(**v) for k, v in self.runs.items()}

    def measurements(self) -> dict[str, Measurement | None]:
        return {k: (Measurement.from_dict(v) if v else None) for k, v in self.measures.items()}

    def verdicts(self) -> list[ThresholdVerdict]:
        return [ThresholdVerdict.from_dict(t) for t in self.thresholds]


def results_dir(store: Store) -> Path:
    return Path(store.path).parent / "studies"


def result_path(store: Store, sha256: str) -> Path:
    return results_dir(store) / f"{sha256[:12]}.json"


def load_result(path: Path) -> StudyResult:
    try:
        return StudyResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable study result ({exc})") from exc


def find_result(store: Store, sha_or_prefix: str) -> StudyResult | None:
    """The stored result of the study version with this sha256 (or a unique prefix of 4+)."""
    folder = results_dir(store)
    if len(sha_or_prefix) < 4 or not re.fullmatch(r"[0-9a-f]+", sha_or_prefix) or not folder.is_dir():
        return None
    found = sorted(folder.glob(f"{sha_or_prefix[:12]}*.json"))
    if len(found) > 1:
        raise ConfigError(f"study hash prefix '{sha_or_prefix}' is ambiguous "
                          f"({', '.join(p.stem for p in found)}); give more characters")
    return load_result(found[0]) if found else None


def earlier_versions(store: Store, study_id: str, sha256: str) -> list[StudyResult]:
    """Results of other versions (other text) of the same study id, oldest first."""
    folder = results_dir(store)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob("*.json"):
        try:
            r = load_result(p)
        except ConfigError:
            continue
        if r.study_id == study_id and r.sha256 != sha256:
            out.append(r)
    return sorted(out, key=lambda r: r.first_created_at)


def resolve_study(store: Store, target: str, *, check: Callable[[LoadedStudy], None] | None = None
                  ) -> tuple[LoadedStudy, StudyResult]:
    """A study and its stored result, from a study file or a study hash (prefix). ``check`` runs
    on the study before its result is looked up (a policy's measures, say)."""
    path = Path(target)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        study = load_study(path)
        if check is not None:
            check(study)
        rp = result_path(store, study.sha256)
        if not rp.is_file():
            older = earlier_versions(store, study.spec.id, study.sha256)
            hint = (f"; results exist for earlier versions of it ({', '.join(o.hash12 for o in older)}): "
                    "`refute report HASH` reports one" if older else "")
            raise ConfigError(f"{path}: no stored results for this version of the study (sha256 "
                              f"{study.hash12}) in {store.path}; run `refute study run {path}` first{hint}")
        return study, load_result(rp)
    result = find_result(store, target)
    if result is None:
        raise ConfigError(f"no study file or stored study result '{target}' (results live in "
                          f"{results_dir(store)})")
    study = study_from_text(result.text, result.path)
    if check is not None:
        check(study)
    return study, result


def stored_measurements(store: Store, study: LoadedStudy, result: StudyResult) -> dict[str, Measurement | None]:
    """The measures of a study's stored result, recomputed from the store's samples."""
    cal = Calibration.from_dict(result.calibration) if result.calibration else None
    return study_measurements(store, study, result.run_refs(), cal)


class PolicyGate(Protocol):
    """How `run_study` applies the deployment policy a study names. The gate sits above studies,
    so the study is handed one (`refute.gate.study_gate`) rather than importing it."""

    def check(self, study: LoadedStudy) -> None:
        """Raise when the study's policy cannot be applied to its measures (before any run)."""

    def decide(self, study: LoadedStudy, measures: dict[str, Measurement | None]) -> tuple[dict[str, Any], str]:
        """The decision, as stored (``GateDecision.to_dict()``), and the policy file's text."""


# --- running -------------------------------------------------------------------------------------


def _balanced(store: Store, dataset: str, per_category: int) -> str:
    """A JSONL file of the first ``per_category`` records of every category (written once)."""
    full = load_dataset(dataset)
    taken: dict[str, int] = {}
    rows = []
    for r in full.records:
        if taken.get(r.category, 0) < per_category:
            taken[r.category] = taken.get(r.category, 0) + 1
            rows.append(json.dumps(r.model_dump(mode="json", exclude_none=True), ensure_ascii=False, sort_keys=True))
    text = "\n".join(rows) + "\n"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(full.name).stem)
    folder = Path(store.path).parent / "datasets"
    path = folder / f"{stem}-{per_category}-per-category.jsonl"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return str(path)


def _dataset(store: Store, study: LoadedStudy, name: str, per_category: int | None) -> str:
    resolved = study.resolve_dataset(name)
    return resolved if per_category is None else _balanced(store, resolved, per_category)


def _tasks(store: Store, study: LoadedStudy, run: RunSpec) -> list[tuple[str, str, TaskConfig]]:
    """(name suffix, kind, task) of each engine run a study run needs."""
    chains = ["none", *run.transforms]
    scorers = [PluginSpec(name=s) for s in run.scorers] if run.scorers else None
    if run.type == "robustness_gap" and scorers is None:
        scorers = [PluginSpec(name="refusal")]
    main = TaskConfig(
        dataset=_dataset(store, study, run.dataset, run.per_category), limit=run.limit,
        epochs=run.epochs, system=run.system, template=run.template, seed=run.seed,
        generate=GenerateConfig(max_tokens=run.max_tokens, temperature=run.temperature),
        scorers=scorers, transforms=chains,
        harmful=None if run.intent is None else run.intent == "harmful",
        solver=PluginSpec(name=run.solver, args=run.solver_args),
    )
    if run.type == "eval":
        return [("", "eval", main)]
    per_category = run.capability_per_category  # a balanced subset is used whole unless limited
    _, cap = campaign_pair(
        main, capability_dataset=_dataset(store, study, run.capability_dataset or DEFAULT_CAPABILITY_DATASET,
                                          per_category),
        capability_limit=run.capability_limit or (None if per_category else DEFAULT_CAPABILITY_LIMIT),
        capability_max_tokens=run.capability_max_tokens or DEFAULT_CAPABILITY_MAX_TOKENS)
    return [("", "redteam", main)] + ([(":capability", "capability", cap)] if cap is not None else [])


def _helpers(run: RunSpec, spec: str, task: TaskConfig, models: ModelCache, *,
             attacks: bool = False) -> dict[str, ModelBackend]:
    """The helper models this run's solver, rewrites and attacks ask, loaded once per spec."""
    attacker = run.attacker or spec
    specs = {"attacker": attacker, "judge": run.judge or attacker, "rewriter": run.rewriter or spec}
    needed = set(helper_roles(get_solver(task.solver.name, **task.solver.args)))
    if needs_rewriter(task):
        needed.add("rewriter")
    if attacks:
        needed |= {"attacker", "judge"} if set(run.attacks) & {"pair", "crescendo", "best_of_n"} else set()
    return {role: models.get(specs[role]) for role in sorted(needed)}


def _reusable(store: Store, spec: str, kind: str, task: TaskConfig) -> RunRecord | None:
    """A completed study run of the same config, embedded model and dataset content."""
    if parse_spec(spec).kind != "embedded" or parse_spec(spec).edits:
        return None  # weights not pinned by the spec (or edited by files): let the request cache decide
    revision = f"sha256:{EMBEDDED[spec].sha256[:16]}"
    data_hash = load_dataset(task.dataset, adapter=task.dataset_adapter, columns=task.dataset_columns,
                             limit=task.limit).content_hash
    config = task.model_dump(mode="json")
    for r in store.list_runs():
        if (r.status == "completed" and r.kind == kind and (r.name or "").startswith("study:")
                and r.model_spec == spec and r.model_revision == revision and r.config == config
                and r.dataset_hash == data_hash and not r.model.get("load_options")):
            ok, bad = store.sample_counts(r.id)
            if bad == 0 and ok >= r.n_planned:
                return r
    return None


def _resumable(store: Store, name: str, spec: str, kind: str, task: TaskConfig) -> RunRecord | None:
    """This study run's own earlier attempt that stopped early (killed, Ctrl-C, a failed store) or
    with failed samples: resumed (failed samples are tried again) rather than left behind beside a
    new run."""
    config = task.model_dump(mode="json")
    for r in store.list_runs():
        if (r.name == name and r.kind == kind and r.model_spec == spec and r.config == config
                and r.status in ("interrupted", "completed_with_errors", "failed")):
            return r
    return None


def _calibration(study: LoadedStudy) -> Calibration | None:
    cal = study.spec.calibration
    labels = study.labels_path()
    if cal is None or labels is None:
        return None

    result = validate(get_scorer(cal.scorer), labels, subset=cal.split)
    return Calibration.from_validation(result, str(labels), cal.correct)


def study_measurements(store: Store, study: LoadedStudy, refs: dict[str, RunRef],
                       calibration: Calibration | None) -> dict[str, Measurement | None]:
    """Every measure of the study from its stored runs; a refusal measure is corrected with its
    run's own labels when the store has them (unless the study's calibration says
    ``own_labels: false``), else with ``calibration`` when it says ``correct``."""
    own = study.spec.calibration.own_labels if study.spec.calibration is not None else True
    return {name: compute_measure(store, name, m, refs[m.run], calibration, own_labels=own)
            for name, m in study.spec.measures.items() if m.run in refs}


def run_study(study: LoadedStudy, store: Store, *, model: ModelBackend | None = None,
              progress: bool = True, on_event: Callable[[str], None] | None = None,
              gate: PolicyGate | None = None) -> StudyResult:
    """Run (or reuse) every run of ``study``, compute its measures, verdicts and gate decision,
    and write the result JSON. ``model``: a backend for every run (tests); default: load each
    run's model spec on first need. ``gate`` applies the policy the study names
    (`refute.gate.study_gate`); a study that names one and gets no gate fails before any run."""
    say = on_event or (lambda _msg: None)
    if study.spec.policy is not None:  # a malformed policy stops the study before any run
        if gate is None:
            raise ConfigError(f"{study.path}: the study names the policy '{study.spec.policy}'; pass "
                              "gate=refute.gate.study_gate to run_study so its decision is made "
                              "(`refute study run` does)")
        gate.check(study)
    models = ModelCache(model, say)
    refs: dict[str, RunRef] = {}
    try:
        for run in study.spec.runs:
            spec = run.model or study.spec.model
            if run.type == "layers":
                refs[run.id] = _layers_run(store, study, run, spec, models, progress=progress, say=say)
                continue
            if run.type == "experiment":
                refs[run.id] = _experiment_run(store, study, run, spec, models, progress=progress, say=say)
                continue
            ids: list[str] = []
            reused_all = True
            tasks = _tasks(store, study, run)
            for suffix, kind, task in tasks:
                found = _reusable(store, spec, kind, task) if model is None else None
                if found is not None:
                    say(f"{run.id}{suffix}: reusing completed run {found.id}")
                    ids.append(found.id)
                    continue
                reused_all = False
                backend = models.get(spec)
                name = f"study:{study.hash12}:{run.id}{suffix}"
                stopped = _resumable(store, name, backend.info.spec, kind, task)
                if stopped is not None:
                    say(f"{run.id}{suffix}: resuming interrupted run {stopped.id}")
                    record = resume_run(stopped.id, store, backend, progress=progress)
                else:
                    say(f"{run.id}{suffix}: running {task.dataset} x {len(task.transforms)} chain(s)")
                    parent, role = (ids[0], "capability") if kind == "capability" and ids else (None, None)
                    record = run_task(task, backend, store, name=name, kind=kind, progress=progress,
                                      parent=parent, role=role, helpers=_helpers(run, spec, task, models))
                ids.append(record.id)
            if run.attacks:
                by_kind = {kind: t for _, kind, t in tasks}
                main_task, cap_task = by_kind["redteam"], by_kind.get("capability")
                helpers = _helpers(run, spec, main_task, models, attacks=True)
                plan = attack_tasks(run.attacks, main_task, cap_task, limit=run.attack_limit, args=run.attack_args,
                                    helpers=helpers)
                say(f"{run.id}: attacks {', '.join(run.attacks)} on {run.attack_limit} prompts")
                run_attacks(store, models.get(spec), plan, store.get_run(ids[0]), helpers=helpers,
                            args=run.attack_args, progress=progress, say=say)
                reused_all = False
            refs[run.id] = RunRef(ids[0], ids[1] if len(ids) > 1 else None, reused_all)
    finally:
        models.close()
    calibration = _calibration(study)
    measures = study_measurements(store, study, refs, calibration)
    verdicts = [judge_threshold(t.safe_if, measures.get(t.measure), t.measure, t.rationale)
                for t in study.spec.thresholds]
    decision: dict[str, Any] | None = None
    policy_text: str | None = None
    if study.spec.policy is not None and gate is not None:
        decision, policy_text = gate.decide(study, measures)

    path = result_path(store, study.sha256)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    first = now
    if path.is_file():
        with contextlib.suppress(ConfigError):
            first = load_result(path).first_created_at
    result = StudyResult(
        study_id=study.spec.id, title=study.spec.title, sha256=study.sha256, path=study.path,
        text=study.text, created_at=now, first_created_at=first,
        refute_version=__version__,
        runs={k: asdict(v) for k, v in refs.items()},
        calibration=None if calibration is None else asdict(calibration),
        measures={k: (v.to_dict() if v else None) for k, v in measures.items()},
        thresholds=[v.to_dict() for v in verdicts],
        gate=decision, policy_text=policy_text,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return result


def _layers_run(store: Store, study: LoadedStudy, run: RunSpec, spec: str, models: ModelCache, *, progress: bool,
                say: Callable[[str], None]) -> RunRef:
    """A guard stack measured as a whole (`refute.guard.measure_stack`); the run's dataset and limit
    replace the stack's harmful requests. A measurement of the same study text, stack file and model
    is reused."""
    loaded = load_stack(study.resolve_file(str(run.stack)))
    update: dict[str, Any] = {"harmful": study.resolve_dataset(run.dataset)}
    if run.limit is not None:
        update["limit"] = run.limit
    stack = replace(loaded, spec=loaded.spec.model_copy(
        update={"measure": loaded.spec.measure.model_copy(update=update)}))
    out_dir = results_dir(store) / "layers" / f"{study.hash12}-{run.id}"
    found = out_dir / "stack.json"
    kept = str(found.relative_to(Path(store.path).parent))
    if found.is_file():
        with contextlib.suppress(ValueError, KeyError, StopIteration):
            data = json.loads(found.read_text(encoding="utf-8"))
            if data["stack_sha256"] == stack.sha256 and data["model"] == spec:
                say(f"{run.id}: reusing the stack measurement {found}")
                return RunRef(next(iter(data["runs"].values())), reused=True, stack_result=kept)
    say(f"{run.id}: measuring the stack '{stack.spec.name}' ({run.stack})")
    result = measure_stack(stack, models.get(spec), store, out_dir=out_dir, progress=progress, say=say)
    return RunRef(next(iter(result.runs.values())), stack_result=kept)


def _experiment_run(store: Store, study: LoadedStudy, run: RunSpec, spec: str, models: ModelCache, *, progress: bool,
                    say: Callable[[str], None]) -> RunRef:
    """A `refute.gaming` experiment; the run's model fills the model settings the run does not set. A
    result of the same experiment and settings in the study's folder for it is reused."""
    name = str(run.experiment)
    exp = get_experiment(name)
    given, files = study.experiment_settings(run)
    settings = parse_settings(name, {**{f: spec for f in exp.model_fields}, **given},
                              where=f"{study.path}: runs.{run.id}.settings")
    digest = hashlib.sha256(settings_digest(name, settings).encode())
    for f in files:  # an edited data file is a new experiment, whatever the study's text
        digest.update(f.read_bytes())
    out_dir = results_dir(store) / "gaming" / f"{study.hash12}-{run.id}-{digest.hexdigest()[:12]}"
    found = out_dir / "result.json"
    kept = str(found.relative_to(Path(store.path).parent))
    if found.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            old = ExperimentResult.load(found)
            say(f"{run.id}: reusing the experiment result {found}")
            return RunRef(next(iter(old.runs.values()), ""), reused=True, experiment_result=kept)
    say(f"{run.id}: running the experiment '{name}'")
    ctx = Context(store=store, out_dir=out_dir, models=models.get, progress=progress, say=say)
    result = run_experiment(name, settings, ctx)
    return RunRef(next(iter(result.runs.values()), ""), experiment_result=kept)
