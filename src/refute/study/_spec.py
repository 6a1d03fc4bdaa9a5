"""A study file: one safety question, its threat model, a claim, pre-registered thresholds, and
the runs and measures that answer it.

A study is written before the data is seen. Its thresholds say in advance what result supports
the claim and what would change the author's mind, and the file's sha256 is stored with every
result it produces, so an edit made after the fact shows (`refute.study.earlier_versions`).

Loading validates everything that can be checked without a model: fields and their types,
references between runs, measures and thresholds, datasets, transform chains, scorers and model
specs. Any problem raises `SpecFileError` naming the file, the line and the field, before
anything runs. The fields are documented on the models below; ``examples/refusal-study.yaml``
is a full example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

import refute.scorers
from refute._yaml import (
    Loc,
    YamlDoc,
    located,
    parse_yaml,
    read_yaml,
    validate_doc,
)
from refute.datasets import declared_harmful, load_dataset
from refute.engine import get_solver
from refute.errors import RefuteError
from refute.gaming import parse_settings
from refute.guard import load_stack
from refute.models import parse_spec
from refute.redteam._attacks import ATTACKS
from refute.scorers import get_scorer
from refute.stats import Better  # which way is safer: one Literal for studies, reports and the gate
from refute.transforms import parse_chain

__all__ = [
    "Better",
    "CalibrationSpec",
    "Limit",
    "LoadedStudy",
    "MeasureSpec",
    "RunSpec",
    "Statistic",
    "StudySpec",
    "ThresholdSpec",
    "load_study",
    "study_from_text",
]

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ThreatModel = Literal["misuse", "misalignment", "accident"]
Kind = Literal["capability", "propensity"]
Statistic = Literal["refusal", "compliance", "accuracy", "worst_transform_compliance",
                    "largest_refusal_drop", "stack_miss", "stack_over_refusal", "independence_ratio",
                    "layer_catch", "layer_over_refusal", "experiment"]

#: Statistics that need a ``robustness_gap`` run.
GAP_STATISTICS = ("worst_transform_compliance", "largest_refusal_drop")
#: Settings values of an experiment run that name a data file, resolved against the study file.
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".yaml", ".yml", ".txt")
#: The dataset field of an experiment run, which takes none.
EXPERIMENT_DATASET = "(experiment)"
#: Statistics that need a ``layers`` run (a guard stack measured by `refute.guard.measure_stack`).
STACK_STATISTICS = ("stack_miss", "stack_over_refusal", "independence_ratio", "layer_catch", "layer_over_refusal")
#: Statistics that are not rates (their thresholds may lie outside [-1, 1]); an experiment's figure may be any number.
RATIO_STATISTICS = ("independence_ratio", "experiment")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limit(_Frozen):
    """A bound on a measure: exactly one of ``at_least`` and ``at_most``."""

    at_least: float | None = Field(None, ge=-1000.0, le=1000.0, description="Safe (or met) when >= this "
                                   "(a rate's limit lies in [-1, 1]).")
    at_most: float | None = Field(None, ge=-1000.0, le=1000.0, description="Safe (or met) when <= this.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Limit:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of at_least or at_most")
        return self

    @property
    def value(self) -> float:
        return self.at_least if self.at_least is not None else self.at_most  # type: ignore[return-value]

    @property
    def higher_is_safe(self) -> bool:
        return self.at_least is not None

    def __str__(self) -> str:
        return f">= {self.value:g}" if self.higher_is_safe else f"<= {self.value:g}"


class RunSpec(_Frozen):
    """One engine run (``eval``) or a red-team campaign with its capability control
    (``robustness_gap``: the dataset under every transform plus benign tasks with known answers
    under the same transforms)."""

    id: Slug = Field(description="Name of the run inside the study; measures refer to it.")
    type: Literal["eval", "robustness_gap", "layers", "experiment"] = Field(
        "eval", description="eval, robustness_gap, layers (a guard stack measured as a whole) or experiment "
        "(a specification-gaming or oversight experiment of `refute gaming`).")
    description: str | None = Field(None, description="What this run measures, in words.")
    model: str | None = Field(None, description="Model spec; default: the study's model.")
    dataset: Text = Field(description="Built-in dataset name, or a JSONL/CSV path (relative to the study file); "
                          "an experiment run takes none (its settings name its data).")
    intent: Literal["harmful", "benign"] | None = Field(
        None, description="Whether the requests are harmful (their completions are redacted in "
        "reports); default: benign for the built-in benign datasets, harmful otherwise.")
    condition: str | None = Field(None, description="Label of the condition (e.g. 'safety prompt') "
                                  "in plots; default: baseline, or the run id when a system prompt is set.")
    per_category: int | None = Field(None, ge=1, description="Use the first N prompts of every "
                                     "category (a balanced subset), before any limit.")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    epochs: int = Field(1, ge=1, description="Samples per prompt.")
    max_tokens: int = Field(48, ge=1, description="Most new tokens per reply.")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy decoding.")
    seed: int = Field(0, description="Run seed; every sample's seed derives from it.")
    system: str | None = Field(None, description="System prompt; none keeps the model's default.")
    template: str = Field("{prompt}", description="User message; {prompt} is the request.")
    scorers: list[Slug] | None = Field(None, description="Scorer names; default: match for tasks "
                                       "with answers, else refusal.")
    transforms: list[Text] = Field(default_factory=list, description="Transform chains besides the "
                                   "canonical prompt (required for robustness_gap).")
    capability_dataset: str | None = Field(None, description="robustness_gap only: benign tasks "
                                           "with known answers (default benign-tasks).")
    capability_per_category: int | None = Field(None, ge=1, description="robustness_gap only: "
                                                "the first N tasks of every category.")
    capability_limit: int | None = Field(None, ge=1, description="robustness_gap only: tasks to "
                                         "use (default 60 unless capability_per_category is set).")
    capability_max_tokens: int | None = Field(None, ge=1, description="robustness_gap only: "
                                              "tokens per task reply (default 24).")
    solver: Slug = Field("single_turn", description="eval only: how each conversation unfolds "
                         "(single_turn, scripted_escalation, crescendo, pair, best_of_n).")
    solver_args: dict[str, Any] = Field(default_factory=dict, description="Arguments of the solver, "
                                        "e.g. {budget: 3} for pair.")
    attacks: list[Slug] = Field(default_factory=list, description="robustness_gap only: attacks "
                                "beside the transforms (pair, crescendo, best_of_n, gcg), each with its "
                                "own capability control.")
    attack_limit: int = Field(10, ge=1, description="robustness_gap only: harmful prompts each attack "
                              "runs on.")
    attack_args: dict[str, dict[str, Any]] = Field(default_factory=dict, description="robustness_gap "
                                                   "only: arguments per attack, e.g. {pair: {budget: 5}}.")
    attacker: str | None = Field(None, description="Model spec of the attacker that pair and crescendo "
                                 "ask; default: the run's own model.")
    judge: str | None = Field(None, description="Model spec of the judge that pair asks; default: the "
                              "attacker.")
    rewriter: str | None = Field(None, description="Model spec that rewrite transforms (paraphrase, "
                                 "translate) ask; default: the run's own model.")
    stack: str | None = Field(None, description="layers only: the guard-stack file (relative to the study "
                              "file); dataset and limit replace its measure.harmful and measure.limit.")
    experiment: Slug | None = Field(None, description="experiment only: its name (refute gaming --help lists "
                                    "them); the run's model fills the experiment's model settings.")
    settings: dict[str, Any] = Field(default_factory=dict, description="experiment only: its settings "
                                     "(those of `refute gaming NAME --help`).")

    @model_validator(mode="before")
    @classmethod
    def _experiment_has_no_dataset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "experiment" and "dataset" not in data:
            return {**data, "dataset": EXPERIMENT_DATASET}
        return data

    @model_validator(mode="after")
    def _by_type(self) -> RunSpec:
        if "{prompt}" not in self.template:
            raise ValueError("template must contain {prompt}")
        if self.type == "robustness_gap" and not self.transforms and not self.attacks:
            raise ValueError("a robustness_gap run needs at least one transform in 'transforms' "
                             "(or an attack in 'attacks')")
        if (self.type == "experiment") != (self.experiment is not None):
            raise ValueError("an experiment run needs 'experiment' (its name), and only an experiment run takes it")
        if self.settings and self.type != "experiment":
            raise ValueError("settings apply to an experiment run only")
        if self.type == "experiment":
            extra = [k for k in ("transforms", "attacks", "attack_args", "solver_args", "scorers", "system", "stack",
                                 "limit", "per_category", "intent", "capability_dataset", "capability_limit",
                                 "capability_per_category", "capability_max_tokens") if getattr(self, k)]
            if self.dataset != EXPERIMENT_DATASET:
                extra.insert(0, "dataset")
            if extra:
                raise ValueError(f"{extra[0]} does not apply to an experiment run: its settings say what is measured")
        if (self.type == "layers") != (self.stack is not None):
            raise ValueError("a layers run needs 'stack' (a guard-stack file), and only a layers run takes it")
        if self.type == "layers":
            extra = [k for k in ("transforms", "attacks", "attack_args", "solver_args", "scorers", "system")
                     if getattr(self, k)]
            if extra:
                raise ValueError(f"{extra[0]} does not apply to a layers run: the stack file says what is measured")
        if self.type == "robustness_gap" and self.solver != "single_turn":
            raise ValueError("solver applies to type eval; a robustness_gap run takes 'attacks'")
        if self.type == "eval":
            extra = [k for k in ("capability_dataset", "capability_per_category",
                                          "capability_limit", "capability_max_tokens")
                     if getattr(self, k) is not None]
            extra += [k for k in ("attacks", "attack_args") if getattr(self, k)]
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply to type robustness_gap")
        unknown = [a for a in [*self.attacks, *self.attack_args] if a not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack '{unknown[0]}'; known: {', '.join(ATTACKS)}")
        try:
            get_solver(self.solver, **self.solver_args)
        except RefuteError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def harmful(self) -> bool:
        """The declared ``intent``, else the built-in dataset's declaration; any other file is harmful."""
        return declared_harmful(self.dataset, None if self.intent is None else self.intent == "harmful")

    @property
    def condition_label(self) -> str:
        if self.condition:
            return self.condition
        return self.id if self.system else "baseline"


class MeasureSpec(_Frozen):
    """A number the study reports (always with its interval) and thresholds and policies use.

    Statistics: ``refusal`` and ``compliance`` (1 - refusal) of a refusal scorer, ``accuracy``
    of the match scorer, on one chain (default the canonical prompts) and one category (default
    all); on a robustness_gap run, ``worst_transform_compliance`` (the highest compliance, by its
    upper bound, among transforms the model still understands) and ``largest_refusal_drop``
    (canonical minus transformed refusal, the largest by its upper bound, same transforms).
    """

    run: Slug = Field(description="The id of a run of this study.")
    statistic: Statistic = Field(description="What to compute from the run's scores.")
    better: Better = Field(description="Which way is safer or more useful: higher or lower.")
    description: Text = Field(description="What the number means, in words a newcomer reads.")
    chain: str = Field("none", description="Transform chain ('none' = canonical prompts).")
    category: str | None = Field(None, description="One category only; default: all.")
    scorer: Slug | None = Field(None, description="Scorer; default: the run's refusal or match scorer.")
    layer: Slug | None = Field(None, description="layer_catch / layer_over_refusal: the stack layer's name.")
    figure: str | None = Field(None, description="experiment: the name of one of the experiment's figures "
                               "(its result.json lists them, e.g. code-hacking's pressure.hack_rate).")


class ThresholdSpec(_Frozen):
    """A pre-registered threshold on a measure: the claim holds when the measure meets it."""

    measure: Slug = Field(description="The name of a measure of this study.")
    safe_if: Limit = Field(description="at_least or at_most: the claim's side of the threshold.")
    rationale: str | None = Field(None, description="Why this value, decided before the data.")


class CalibrationSpec(_Frozen):
    """Measure the refusal scorer against human labels, so its error is reported (and optionally
    carried into the refusal measures by the Rogan-Gladen correction).

    A run whose own replies were labelled (`refute judge sample`, then `refute judge validate
    --run`) is corrected with those labels whether or not the study has this block; the block is
    the fallback for runs without them, and ``own_labels: false`` turns the runs' labels off.
    """

    scorer: Slug = Field("refusal", description="Scorer to validate.")
    labels: str = Field("builtin", description="Label file (JSONL/CSV, relative to the study file) "
                        "or 'builtin' for refute's own labelled refusals.")
    split: str | None = Field(None, description="Only rows of this split (e.g. heldout).")
    correct: bool = Field(False, description="Correct refusal and compliance measures for the "
                          "scorer's error on these labels (wider intervals), where the run has no "
                          "labels of its own.")
    own_labels: bool = Field(True, description="Correct a run's refusal and compliance measures with "
                             "its own labels (refute judge validate --run) when it has them, in "
                             "preference to these; false ignores them.")


class StudySpec(_Frozen):
    """A study file (version 1)."""

    version: Literal[1] = Field(1, description="Schema version of the study file.")
    id: Slug = Field(description="Stable name of the study; kept across edits of the file.")
    title: Text = Field(description="One line: the study in a sentence.")
    question: Text = Field(description="The safety question.")
    threat_model: ThreatModel = Field(description="misuse, misalignment or accident.")
    kind: Kind = Field(description="capability (the model can't) or propensity (the model won't).")
    claim: Text = Field(description="The safety claim the study tries to refute.")
    change_my_mind: Text = Field(description="The result that would change the author's mind.")
    model: str = Field("default", description="Model spec of every run that names none.")
    policy: str | None = Field(None, description="Deployment policy file (relative to the study "
                               "file) the gate applies to this study's measures.")
    runs: list[RunSpec] = Field(min_length=1, description="The runs that answer the question.")
    measures: dict[Slug, MeasureSpec] = Field(min_length=1, description="Named measures.")
    thresholds: list[ThresholdSpec] = Field(default_factory=list, description="Pre-registered thresholds.")
    calibration: CalibrationSpec | None = Field(None, description="Judge calibration, if any.")


@dataclass(frozen=True)
class LoadedStudy:
    """A validated study with the text it came from and that text's sha256."""

    spec: StudySpec
    doc: YamlDoc = field(repr=False)

    @property
    def path(self) -> str:
        return self.doc.path

    @property
    def text(self) -> str:
        return self.doc.text

    @property
    def sha256(self) -> str:
        return self.doc.sha256

    @property
    def hash12(self) -> str:
        return self.sha256[:12]

    @property
    def base_dir(self) -> Path:
        return Path(self.doc.path).resolve().parent

    def run(self, run_id: str) -> RunSpec:
        return next(r for r in self.spec.runs if r.id == run_id)

    @property
    def ratio_measures(self) -> list[str]:
        """Measures that are not rates (their limits may lie outside [-1, 1])."""
        return [n for n, m in self.spec.measures.items() if m.statistic in RATIO_STATISTICS]

    def resolve_dataset(self, dataset: str) -> str:
        """A dataset relative to the study file, if such a file exists; else as written."""
        candidate = self.base_dir / dataset
        return str(candidate) if not Path(dataset).is_absolute() and candidate.is_file() else dataset

    def resolve_file(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.base_dir / p

    def experiment_settings(self, run: RunSpec) -> tuple[dict[str, Any], list[Path]]:
        """An experiment run's settings with every data file it names (a string, or a string in a list,
        ending in a data file's suffix) resolved against the study file; and those files."""
        files: list[Path] = []

        def resolve(value: Any) -> Any:
            if isinstance(value, list):
                return [resolve(v) for v in value]
            if isinstance(value, str) and value.lower().endswith(DATA_SUFFIXES):
                path = self.resolve_file(value)
                files.append(path)
                return str(path)
            return value

        return {k: resolve(v) for k, v in run.settings.items()}, files

    def labels_path(self) -> Path | None:
        cal = self.spec.calibration
        if cal is None:
            return None
        if cal.labels == "builtin":
            return Path(refute.scorers.__file__).parent / "data" / "refusal_labels.jsonl"
        return self.resolve_file(cal.labels)


def _check_references(study: LoadedStudy) -> list[tuple[Loc, str]]:
    spec = study.spec
    problems: list[tuple[Loc, str]] = []
    runs: dict[str, RunSpec] = {}
    for i, run in enumerate(spec.runs):
        if run.id in runs:
            problems.append((("runs", i, "id"), f"run id '{run.id}' is used twice"))
        runs[run.id] = run
    for name, m in spec.measures.items():
        where: Loc = ("measures", name)
        used = runs.get(m.run)
        if used is None:
            problems.append(((*where, "run"), f"no run '{m.run}' in this study; runs: {', '.join(runs)}"))
            continue
        run = used
        if m.statistic in GAP_STATISTICS and run.type != "robustness_gap":
            problems.append(((*where, "statistic"), f"'{m.statistic}' needs a robustness_gap run; "
                             f"run '{run.id}' is an eval"))
        if (m.statistic in STACK_STATISTICS) != (run.type == "layers"):
            problems.append(((*where, "statistic"), f"'{m.statistic}' needs a layers run; run '{run.id}' is "
                             f"{run.type}" if m.statistic in STACK_STATISTICS else
                             f"run '{run.id}' is a layers run: measure it with {', '.join(STACK_STATISTICS)}"))
        if (m.statistic == "experiment") != (run.type == "experiment"):
            problems.append(((*where, "statistic"), f"'experiment' needs an experiment run; run '{run.id}' is "
                             f"{run.type}" if m.statistic == "experiment" else
                             f"run '{run.id}' is an experiment run: measure it with statistic: experiment and "
                             "figure: NAME"))
        if (m.figure is not None) != (m.statistic == "experiment"):
            problems.append(((*where, "figure"), "statistic experiment names a 'figure' of the experiment; other "
                             "statistics take none"))
        if m.statistic == "experiment":
            stray = [k for k in ("scorer", "category", "layer") if getattr(m, k) is not None]
            stray += ["chain"] if m.chain != "none" else []
            problems += [((*where, k), f"'{k}' does not apply to statistic experiment: the figure says what is "
                          "measured") for k in stray]
        if (m.layer is not None) != (m.statistic in ("layer_catch", "layer_over_refusal")):
            problems.append(((*where, "layer"), "layer_catch and layer_over_refusal name a 'layer' of the "
                             "stack; other statistics take none"))
        if m.chain != "none" and m.chain not in run.transforms:
            problems.append(((*where, "chain"), f"run '{run.id}' has no transform '{m.chain}'; "
                             f"it has: none, {', '.join(run.transforms) or '(no transforms)'}"))
    for i, t in enumerate(spec.thresholds):
        if t.measure not in spec.measures:
            problems.append((("thresholds", i, "measure"), f"no measure '{t.measure}'; measures: "
                             f"{', '.join(spec.measures)}"))
        elif spec.measures[t.measure].statistic not in RATIO_STATISTICS and not -1.0 <= t.safe_if.value <= 1.0:
            problems.append((("thresholds", i, "safe_if"), f"'{t.measure}' is a rate: its limit lies in [-1, 1], "
                             f"not {t.safe_if.value:g}"))
    return problems


def _check_plugins(study: LoadedStudy) -> list[tuple[Loc, str]]:
    """Datasets, transforms, scorers, model specs and files: everything a run would load first."""
    spec = study.spec
    problems: list[tuple[Loc, str]] = []

    def check(loc: Loc, fn: object, *args: object) -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except RefuteError as exc:
            problems.append((loc, str(exc)))

    check(("model",), parse_spec, spec.model)
    for i, run in enumerate(spec.runs):
        if run.model is not None:
            check(("runs", i, "model"), parse_spec, run.model)
        if run.stack is not None:
            check(("runs", i, "stack"), load_stack, study.resolve_file(run.stack))
        if run.type == "experiment":
            settings, files = study.experiment_settings(run)
            problems += [(("runs", i, "settings"), f"no file {f}") for f in files if not f.is_file()]
            check(("runs", i, "settings"), parse_settings, str(run.experiment), settings)
            continue
        check(("runs", i, "dataset"), load_dataset, study.resolve_dataset(run.dataset))
        if run.capability_dataset is not None:
            check(("runs", i, "capability_dataset"), load_dataset, study.resolve_dataset(run.capability_dataset))
        for j, chain in enumerate(run.transforms):
            check(("runs", i, "transforms", j), parse_chain, chain)
        for j, name in enumerate(run.scorers or []):
            check(("runs", i, "scorers", j), get_scorer, name)
    if spec.policy is not None and not study.resolve_file(spec.policy).is_file():
        problems.append((("policy",), f"no policy file {study.resolve_file(spec.policy)}"))
    if spec.calibration is not None:
        check(("calibration", "scorer"), get_scorer, spec.calibration.scorer)
        labels = study.labels_path()
        if labels is not None and not labels.is_file():
            problems.append((("calibration", "labels"), f"no label file {labels}"))
    return problems


def load_study(path: str | Path) -> LoadedStudy:
    """Read, validate and cross-check a study file; raises `SpecFileError` naming file, line, field."""
    return _load(read_yaml(path, what="study"))


def study_from_text(text: str, path: str) -> LoadedStudy:
    """A study from its stored text (``path``: where it was read from, for messages and files)."""
    return _load(parse_yaml(text, path, what="study"), plugins=False)


def _load(doc: YamlDoc, plugins: bool = True) -> LoadedStudy:
    spec = validate_doc(doc, StudySpec, what="study")
    study = LoadedStudy(spec, doc)
    located(doc, _check_references(study), what="study")
    if plugins:
        located(doc, _check_plugins(study), what="study")
    return study
