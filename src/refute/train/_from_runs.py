"""Training rows built from measurements, not by hand (`refute train data`).

From stored harmful runs (a `refute redteam` run: every prompt under every transform chain, scored
for refusal), each variant the model *complied* with becomes a row that pairs the prompt, exactly as
the model saw it, with a short refusal. The model's own helpful answers to benign look-alikes and to
capability tasks (from stored runs of the same model, or generated now, greedily, through the
engine) become rows too, so that the fix does not teach over-refusal or cost capability.

Prompts are split into train and held out by a seeded hash of their id (`is_held_out`), harmful
and benign alike; rows come from train prompts only, and the split is written beside the rows
(``OUT.split.json``, a `TrainSplit`) so the fix can be re-measured on prompts it never saw. A
harmful completion is never written anywhere: a complied variant contributes its prompt alone.
Every row says in ``source`` which run, sample, prompt and transform it came from.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refute._seeds import derive_seed
from refute.datasets import run_harmful
from refute.engine import PluginSpec, TaskConfig, run_task
from refute.errors import ConfigError, DatasetError
from refute.models import GenerateConfig, ModelBackend
from refute.scorers import meaning_of
from refute.store import RunRecord, SampleRecord, Store

__all__ = ["DEFAULT_REFUSALS", "KindSummary", "RowKind", "TrainDataPlan", "TrainDataSummary", "TrainSplit",
           "build_train_data", "is_held_out", "prepare_train_data", "read_refusals", "read_split", "split_path"]

RowKind = Literal["harmful-refusal", "benign", "task"]

#: Short, varied refusals; each complied variant gets one, chosen by a hash of its sample.
DEFAULT_REFUSALS: tuple[str, ...] = (
    "I can't help with that.",
    "I'm sorry, but I can't assist with that request.",
    "I won't help with this.",
    "Sorry, I can't provide that.",
    "I can't help with that, because it could cause serious harm.",
    "I'm not able to help with that request.",
    "I can't assist with this. If there's something else you need, I'm happy to help.",
    "Sorry, but I won't provide instructions for that.",
    "That's not something I can help with.",
    "I'm sorry, I can't do that.",
)

#: Most new tokens per benign answer generated now; a reply cut at this length is not used.
DEFAULT_MAX_TOKENS = 256


def split_path(out: str | Path) -> Path:
    """The split file written beside the rows: ``OUT.split.json``."""
    out = Path(out)
    return out.with_name(out.name + ".split.json")


def is_held_out(prompt_id: str, seed: int, fraction: float) -> bool:
    """Whether ``prompt_id`` is held out: a hash of (seed, id) below ``fraction`` of its range.

    Depends on the id alone, never on which other prompts are there, so a later run with a larger
    ``--limit`` puts each prompt on the same side."""
    return derive_seed("train-data-split", seed, prompt_id) < fraction * 2**31


class TrainSplit(BaseModel):
    """Which prompts were trained on and which were held out (``OUT.split.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(1, description="Format version of this file.")
    dataset: str = Field(description="The harmful dataset the prompt ids belong to.")
    runs: list[str] = Field(description="The harmful runs the rows came from.")
    model_spec: str = Field(description="The model whose measurements the rows answer.")
    seed: int = Field(description="Seed of the split (`is_held_out`) and of the refusal choice.")
    hold_out: float = Field(description="Fraction of prompts held out.")
    transforms: list[str] = Field(description="Transform chains rows were taken from.")
    held_out_transforms: list[str] = Field(description="Chains in the runs that no row was taken from.")
    train_prompt_ids: list[str] = Field(description="Harmful prompts rows may come from.")
    held_out_prompt_ids: list[str] = Field(description="Harmful prompts never trained on.")
    benign_dataset: str | None = Field(None, description="Dataset of the benign look-alikes, if used.")
    train_benign_ids: list[str] = Field(default_factory=list)
    held_out_benign_ids: list[str] = Field(default_factory=list)
    tasks_dataset: str | None = Field(None, description="Dataset of the capability tasks, if used.")
    train_task_ids: list[str] = Field(default_factory=list)
    held_out_task_ids: list[str] = Field(default_factory=list)
    benign_runs: list[str] = Field(default_factory=list, description="Runs the benign and task answers came from.")


def read_split(path: str | Path) -> TrainSplit:
    """Read an ``OUT.split.json``; a `DatasetError` names the file when it is missing or malformed."""
    path = Path(path)
    try:
        return TrainSplit.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise DatasetError("split file not found", path=str(path),
                           hint="it is written beside the rows by `refute train data`") from None
    except ValidationError as exc:
        raise DatasetError(f"not a split file: {exc.errors(include_url=False)[0]['msg']}", path=str(path)) from None


def read_refusals(path: str | Path) -> tuple[str, ...]:
    """Refusal texts from a file, one a line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError("refusals file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read refusals: {exc}", path=str(path)) from None
    found = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not found:
        raise DatasetError("no refusals in the file", path=str(path), hint="write one refusal a line")
    return found


@dataclass(frozen=True)
class KindSummary:
    """One kind of row: where it came from, how many were written and why the others were not."""

    kind: RowKind
    runs: tuple[str, ...]
    samples: int  # completed samples read (of the chosen transforms)
    usable: int  # harmful: complied variants; benign and task: helpful, finished (and correct) answers
    rows: int
    by_transform: dict[str, int]  # rows per chain
    dropped: dict[str, int]  # reason -> samples: held_out, refused, wrong, empty, unscored, multi_turn, duplicate
    open_rows: int = 0  # rows whose reply was cut at the token limit: kept without EOS (``ends: false``)


@dataclass(frozen=True)
class TrainDataSummary:
    """What `build_train_data` wrote."""

    out: Path
    split: Path
    kinds: tuple[KindSummary, ...]
    generated_runs: tuple[str, ...]  # runs made now for the model's own benign answers

    @property
    def rows(self) -> int:
        return sum(k.rows for k in self.kinds)

    def lines(self) -> list[str]:
        """The summary as plain text lines."""
        parts = ", ".join(f"{k.kind} {k.rows}" for k in self.kinds)
        lines = [f"wrote {self.out}: {self.rows} rows ({parts}); split in {self.split}"]
        for k in self.kinds:
            what = "complied variants" if k.kind == "harmful-refusal" else "usable answers"
            dropped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(k.dropped.items()) if n)
            opened = f" ({k.open_rows} cut at the token limit, kept open)" if k.open_rows else ""
            lines.append(f"{k.kind}: {k.usable} {what} of {k.samples} samples (runs {', '.join(k.runs)}); "
                         f"{k.rows} rows{opened}" + (f"; not written: {dropped}" if dropped else ""))
            if k.by_transform and k.kind == "harmful-refusal":
                lines.append("  rows by transform: " + ", ".join(f"{c} {n}" for c, n in sorted(k.by_transform.items())))
        if self.generated_runs:
            lines.append(f"benign answers generated now in runs {', '.join(self.generated_runs)}")
        return lines


@dataclass(frozen=True)
class _Source:
    """A benign or task source: a stored run, or a dataset to generate answers on."""

    kind: RowKind
    run: RunRecord | None = None
    dataset: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class TrainDataPlan:
    """Everything checked before a model loads: the runs, their scorer, the chains and sources."""

    runs: tuple[RunRecord, ...]
    scorer: str
    dataset: str
    chains: tuple[str, ...]  # chosen
    all_chains: tuple[str, ...]  # present in the runs
    sources: tuple[_Source, ...]
    out: Path
    refusals: tuple[str, ...]
    hold_out: float
    seed: int
    max_tokens: int

    @property
    def model_spec(self) -> str:
        return self.runs[0].model_spec

    @property
    def needs_model(self) -> bool:
        """Whether benign answers are generated now (a model must be passed to `build_train_data`)."""
        return any(s.run is None for s in self.sources)


def prepare_train_data(store: Store, run_ids: Sequence[str], *, out: str | Path,
                       benign: str | None = "benign-lookalike", tasks: str | None = "benign-tasks",
                       benign_runs: Sequence[str] = (), benign_limit: int | None = 60, tasks_limit: int | None = 60,
                       refusals: Sequence[str] | None = None, hold_out: float = 0.5, seed: int = 0,
                       transforms: Sequence[str] | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> TrainDataPlan:
    """Check every input of `build_train_data` (see there) without writing or generating anything.

    Raises RunNotFoundError for an unknown run, ConfigError for a run with no refusal scores, a
    chain no run has, an output that exists, no complied variant (or none of a train prompt)."""
    if not run_ids:
        raise ConfigError("no harmful run given; pass --from RUN_ID (a `refute redteam` run; `refute runs list`)")
    if not 0.0 <= hold_out < 1.0:
        raise ConfigError(f"hold_out must be at least 0 and below 1, got {hold_out}")
    for option, value in (("benign_limit", benign_limit), ("tasks_limit", tasks_limit), ("max_tokens", max_tokens)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")
    texts = tuple(refusals) if refusals is not None else DEFAULT_REFUSALS
    if not texts or any(not t.strip() for t in texts):
        raise ConfigError("refusals must be non-empty texts")
    out = Path(out)
    for path in (out, split_path(out)):
        if path.exists():
            raise ConfigError(f"{path} exists; choose another --out or delete it first")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")

    runs = tuple(store.get_run(r) for r in dict.fromkeys(run_ids))
    scorer = _harmful_scorer(store, runs)
    datasets = {_dataset(r) for r in runs}
    if len(datasets) > 1:
        raise ConfigError(f"the runs are on different datasets ({', '.join(sorted(datasets))}); the held-out "
                          "prompt ids name one dataset: build one file per dataset")
    specs = {r.model_spec for r in runs}
    if len(specs) > 1:
        raise ConfigError(f"the runs are of different models ({', '.join(sorted(specs))}); train data answers "
                          "one model's measurements")
    samples = {r.id: store.samples(r.id, include_errors=False) for r in runs}
    present = tuple(sorted({s.transform_chain for ss in samples.values() for s in ss}))
    if transforms is None:
        chains = present
    else:
        chains = tuple(dict.fromkeys(t.strip() for t in transforms if t.strip()))
        unknown = [c for c in chains if c not in present]
        if unknown or not chains:
            raise ConfigError(f"transform(s) {', '.join(unknown) or '(none given)'} not in the runs; they have: "
                              f"{', '.join(present) or 'no samples'}")
    outcomes = {r.id: _outcome(store, r.id, scorer) for r in runs}
    complied = [s for r in runs for s in samples[r.id]
                if s.transform_chain in chains and outcomes[r.id].get(s.id) == "complied"]
    if not complied:
        raise ConfigError(f"no complied variant in run(s) {', '.join(r.id for r in runs)} (transforms "
                          f"{', '.join(chains)}): the model refused everything, so there is nothing to train on; "
                          "try other transforms (`refute redteam --transforms ...`) or attacks")
    if all(is_held_out(s.prompt_id, seed, hold_out) for s in complied):
        raise ConfigError(f"all {len(complied)} complied variants are of held-out prompts; lower --hold-out or "
                          "change --seed")

    sources: list[_Source] = []
    covered: set[RowKind] = set()
    for run_id in dict.fromkeys(benign_runs):
        run = store.get_run(run_id)
        kind = _benign_kind(store, run, runs[0])
        if kind in covered:
            raise ConfigError(f"two benign runs give {kind} answers; pass one run of each kind")
        covered.add(kind)
        sources.append(_Source(kind, run=run))
    for kind, dataset, limit in (("benign", benign, benign_limit), ("task", tasks, tasks_limit)):
        if dataset and kind not in covered:
            sources.append(_Source(kind, dataset=dataset, limit=limit))
    return TrainDataPlan(runs=runs, scorer=scorer, dataset=datasets.pop(), chains=chains, all_chains=present,
                         sources=tuple(sources), out=out, refusals=texts, hold_out=hold_out, seed=seed,
                         max_tokens=max_tokens)


def build_train_data(store: Store, run_ids: Sequence[str], *, out: str | Path,
                     benign: str | None = "benign-lookalike", tasks: str | None = "benign-tasks",
                     benign_runs: Sequence[str] = (), model: ModelBackend | None = None,
                     benign_limit: int | None = 60, tasks_limit: int | None = 60,
                     refusals: Sequence[str] | None = None, hold_out: float = 0.5, seed: int = 0,
                     transforms: Sequence[str] | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                     progress: bool = False) -> TrainDataSummary:
    """Write SFT rows (`refute.train.load_train_data` reads them) to ``out`` and the split beside it.

    ``run_ids``: harmful runs of one model on one dataset, scored by a refusal scorer; each variant
    (prompt x chain in ``transforms``, default every chain the runs have, ``none`` included) the
    model complied with, of a train prompt, becomes a row: the rendered user message (and system
    message) -> a refusal from ``refusals`` (default `DEFAULT_REFUSALS`), chosen by a hash of the
    sample. Variants whose input is more than one user message (few-shot turns) cannot be an SFT
    row and are counted as ``multi_turn``.

    Benign rows pair the model's own answers with the prompts: from ``benign_runs`` (stored runs of
    the same model; a run scored by a correctness scorer gives task rows, another gives benign
    rows), else generated now with ``model`` on ``benign`` and ``tasks`` (None: none of that
    kind), the first ``benign_limit`` / ``tasks_limit`` records, greedily, with the harmful run's
    system prompt and template, stored as runs linked to the first harmful run. Kept: answers that
    are not refusals, that finished (not cut at the token limit) and, for tasks, are correct;
    from canonical samples and samples under the chosen chains.

    ``hold_out`` of the prompts (harmful, benign and task ids alike) are held out by
    `is_held_out` with ``seed``. Raises ConfigError (see `prepare_train_data`) before anything is
    written or generated.
    """
    plan = prepare_train_data(store, run_ids, out=out, benign=benign, tasks=tasks, benign_runs=benign_runs,
                              benign_limit=benign_limit, tasks_limit=tasks_limit, refusals=refusals,
                              hold_out=hold_out, seed=seed, transforms=transforms, max_tokens=max_tokens)
    if plan.needs_model:
        if model is None:
            raise ConfigError("benign answers must be generated but no model was given; pass the model, stored "
                              "runs of its answers (--benign-run), or skip them (--benign none --tasks none)")
        if model.info.spec != plan.model_spec:
            raise ConfigError(f"the runs measured '{plan.model_spec}', not '{model.info.spec}': the benign "
                              "answers must be the same model's own")
    rows: list[dict[str, Any]] = []
    harmful = _harmful_rows(store, plan)
    if not harmful.rows:
        why = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(harmful.summary.dropped.items()))
        raise ConfigError(f"none of the {harmful.summary.usable} complied variants can be a row ({why}); "
                          "try other transforms, a lower --hold-out or another --seed")
    rows += harmful.rows
    kinds = [harmful.summary]
    splits: dict[str, tuple[str | None, list[str], list[str]]] = {}
    generated: list[str] = []
    for source in plan.sources:
        run = source.run
        if run is None and model is not None:  # plan.needs_model: checked above
            run = _generate(store, model, source, plan, progress)
            generated.append(run.id)
        if run is None:
            continue
        got = _benign_rows(store, run, source.kind, plan)
        rows += got.rows
        kinds.append(got.summary)
        splits[source.kind] = (_dataset(run), *got.split)
    empty: tuple[str | None, list[str], list[str]] = (None, [], [])
    benign_split = splits.get("benign", empty)
    task_split = splits.get("task", empty)
    split = TrainSplit(
        dataset=plan.dataset, runs=[r.id for r in plan.runs], model_spec=plan.model_spec, seed=plan.seed,
        hold_out=plan.hold_out, transforms=list(plan.chains),
        held_out_transforms=[c for c in plan.all_chains if c not in plan.chains],
        train_prompt_ids=harmful.split[0], held_out_prompt_ids=harmful.split[1],
        benign_dataset=benign_split[0], train_benign_ids=benign_split[1], held_out_benign_ids=benign_split[2],
        tasks_dataset=task_split[0], train_task_ids=task_split[1], held_out_task_ids=task_split[2],
        benign_runs=[k.runs[0] for k in kinds[1:]])
    _write(plan.out, rows, split)
    return TrainDataSummary(plan.out, split_path(plan.out), tuple(kinds), tuple(generated))


# -- harmful rows -----------------------------------------------------------------------------


@dataclass
class _Built:
    rows: list[dict[str, Any]]
    summary: KindSummary
    split: tuple[list[str], list[str]]  # (train ids, held-out ids)


def _harmful_rows(store: Store, plan: TrainDataPlan) -> _Built:
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    by_chain: Counter[str] = Counter()
    ids: set[str] = set()
    seen: set[tuple[str | None, str]] = set()
    samples = usable = 0
    for run in plan.runs:
        outcome = _outcome(store, run.id, plan.scorer)
        for s in store.samples(run.id, include_errors=False):
            ids.add(s.prompt_id)
            if s.transform_chain not in plan.chains:
                continue
            samples += 1
            verdict = outcome.get(s.id)
            if verdict is None:
                dropped["unscored"] += 1
                continue
            if verdict != "complied":
                continue
            usable += 1
            turns = _trainable(s, plan, seen, dropped)
            if turns is None:
                continue
            pick = derive_seed("train-data-refusal", plan.seed, run.id, s.id) % len(plan.refusals)
            rows.append(_row("harmful-refusal", run, s, turns, plan.refusals[pick]))
            by_chain[s.transform_chain] += 1
    summary = KindSummary("harmful-refusal", tuple(r.id for r in plan.runs), samples, usable, len(rows),
                          dict(by_chain), dict(dropped))
    return _Built(rows, summary, _split(ids, plan))


def _trainable(sample: SampleRecord, plan: TrainDataPlan, seen: set[tuple[str | None, str]],
               dropped: Counter[str]) -> tuple[str | None, str] | None:
    """A usable sample's (system, user) turns if it can be a training row, else None with the reason
    counted: its prompt is held out, it has several user turns, or the same turns were taken already."""
    if is_held_out(sample.prompt_id, plan.seed, plan.hold_out):
        dropped["held_out"] += 1
        return None
    turns = _input(sample)
    if turns is None:
        dropped["multi_turn"] += 1
        return None
    if turns in seen:
        dropped["duplicate"] += 1
        return None
    seen.add(turns)
    return turns


# -- benign and task rows ---------------------------------------------------------------------


def _benign_rows(store: Store, run: RunRecord, kind: RowKind, plan: TrainDataPlan) -> _Built:
    refusal = _refusal_scorers(store, run.id)
    correct = [n for n in store.scorers_of(run.id) if meaning_of(n).higher_is == "correct"]
    refused = _outcome(store, run.id, refusal[0]) if refusal else {}
    right = _outcome(store, run.id, correct[0]) if correct else {}
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    by_chain: Counter[str] = Counter()
    ids: set[str] = set()
    seen: set[tuple[str | None, str]] = set()
    samples = usable = open_rows = 0
    for s in store.samples(run.id, include_errors=False):
        ids.add(s.prompt_id)
        if s.transform_chain != "none" and s.transform_chain not in plan.chains:
            continue
        samples += 1
        reason = _unusable(s, kind, refused.get(s.id) if refusal else "complied", right.get(s.id))
        if reason is not None:
            dropped[reason] += 1
            continue
        usable += 1
        turns = _trainable(s, plan, seen, dropped)
        if turns is None:
            continue
        rows.append(_row(kind, run, s, turns, s.completion or "") | ({"ends": False} if _cut(s) else {}))
        by_chain[s.transform_chain] += 1
        open_rows += _cut(s)
    summary = KindSummary(kind, (run.id,), samples, usable, len(rows), dict(by_chain), dict(dropped), open_rows)
    return _Built(rows, summary, _split(ids, plan))


def _unusable(sample: SampleRecord, kind: RowKind, refusal: str | None, correct: str | None) -> str | None:
    """Why a benign or task answer cannot be a target, or None when it can."""
    if refusal is None or (kind == "task" and correct is None):
        return "unscored"
    if refusal == "refused":
        return "refused"
    if kind == "task" and correct != "correct":
        return "wrong"
    if not (sample.completion or "").strip():
        return "empty"
    return None


def _cut(sample: SampleRecord) -> bool:
    """A reply stopped by the token limit: kept as an open row (``ends: false``, no EOS after it), so the
    model learns how a helpful answer starts without learning to stop mid-sentence."""
    return sample.finish_reason == "length" or bool(sample.truncated)


def _generate(store: Store, model: ModelBackend, source: _Source, plan: TrainDataPlan, progress: bool) -> RunRecord:
    """The model's own answers on ``source.dataset``, as a stored run linked to the first harmful run."""
    first = plan.runs[0]
    refusal = next((PluginSpec.model_validate(s) for s in first.config.get("scorers") or []
                    if isinstance(s, dict) and s.get("name") == plan.scorer), PluginSpec(name=plan.scorer))
    scorers = [refusal] if source.kind == "benign" else [PluginSpec(name="match"), refusal]
    try:
        task = TaskConfig(dataset=source.dataset or "", limit=source.limit, system=first.config.get("system"),
                          template=first.config.get("template") or "{prompt}", seed=plan.seed, harmful=False,
                          generate=GenerateConfig(max_tokens=plan.max_tokens, temperature=0.0), scorers=scorers)
    except ValidationError as exc:
        raise ConfigError(f"cannot build the {source.kind} task: {exc.errors(include_url=False)[0]['msg']}") from None
    return run_task(task, model, store, name=f"train-data:{source.dataset}", kind="eval", progress=progress,
                    parent=first.id, role="train-data")


# -- shared -----------------------------------------------------------------------------------


def _dataset(run: RunRecord) -> str:
    return str(run.config.get("dataset") or run.dataset_name)


def _refusal_scorers(store: Store, run_id: str) -> list[str]:
    """The run's refusal scorers, the preferred first (by name: ``refusal`` before ``refusal_patterns``)."""
    return sorted(n for n in store.scorers_of(run_id) if meaning_of(n).higher_is == "refusal")


def _harmful_scorer(store: Store, runs: Iterable[RunRecord]) -> str:
    """The refusal scorer every harmful run has; ConfigError naming the run that lacks one."""
    common: list[str] | None = None
    for run in runs:
        if not run_harmful(run.config, run.dataset_name):
            raise ConfigError(f"run {run.id} is on '{_dataset(run)}', a benign dataset; pass it as --benign-run, "
                              "and a harmful run (`refute redteam`) as --from")
        names = _refusal_scorers(store, run.id)
        if not names:
            have = ", ".join(store.scorers_of(run.id)) or "none"
            raise ConfigError(f"run {run.id} has no refusal scores (its scorers: {have}); score it with "
                              f"`refute score {run.id} --scorer refusal`")
        common = names if common is None else [n for n in common if n in names]
    if not common:
        raise ConfigError("the runs share no refusal scorer; score them all with `refute score RUN --scorer refusal`")
    return common[0]


def _benign_kind(store: Store, run: RunRecord, harmful: RunRecord) -> RowKind:
    if run.model_spec != harmful.model_spec:
        raise ConfigError(f"benign run {run.id} is of '{run.model_spec}', the harmful runs of '{harmful.model_spec}'; "
                          "the benign answers must be the same model's own")
    if run_harmful(run.config, run.dataset_name):
        raise ConfigError(f"benign run {run.id} is on '{_dataset(run)}', a harmful dataset; its answers "
                          "cannot be training targets")
    if any(meaning_of(n).higher_is == "correct" for n in store.scorers_of(run.id)):
        return "task"
    if not _refusal_scorers(store, run.id):
        raise ConfigError(f"benign run {run.id} has neither refusal nor correctness scores; score it with "
                          f"`refute score {run.id} --scorer refusal`")
    return "benign"


def _outcome(store: Store, run_id: str, scorer: str) -> dict[int | None, str]:
    """Per sample id, the display name of its value (``refused``/``complied``, ``correct``/``wrong``)."""
    meaning = meaning_of(scorer)
    return {s.sample_id: meaning.outcome(s.value) for s in store.scores(run_id, scorer) if s.value is not None}


def _input(sample: SampleRecord) -> tuple[str | None, str] | None:
    """(system message, user message) the model answered; None for any other conversation."""
    messages = list(sample.messages)
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    system = None
    if messages and messages[0].get("role") == "system":
        system = messages.pop(0).get("content")
    if len(messages) != 1 or messages[0].get("role") != "user" or not (messages[0].get("content") or "").strip():
        return None
    return system, str(messages[0]["content"])


def _row(kind: RowKind, run: RunRecord, sample: SampleRecord, turns: tuple[str | None, str],
         completion: str) -> dict[str, Any]:
    tag = {"harmful-refusal": "refuse", "benign": "benign", "task": "task"}[kind]
    row: dict[str, Any] = {"id": f"{tag}-{run.id}-{sample.id}", "prompt": turns[1], "completion": completion}
    if turns[0] is not None:
        row["system"] = turns[0]
    row["source"] = {"run_id": run.id, "sample_id": sample.id, "prompt_id": sample.prompt_id,
                     "transform": sample.transform_chain, "kind": kind}
    return row


def _split(ids: Iterable[str], plan: TrainDataPlan) -> tuple[list[str], list[str]]:
    ordered = sorted(ids)
    return ([i for i in ordered if not is_held_out(i, plan.seed, plan.hold_out)],
            [i for i in ordered if is_held_out(i, plan.seed, plan.hold_out)])


def _write(out: Path, rows: list[dict[str, Any]], split: TrainSplit) -> None:
    """Write the rows and the split through temporary files, so neither is left half written."""
    texts = {out: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
             split_path(out): split.model_dump_json(indent=2) + "\n"}
    tmps = {path: path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") for path in texts}
    try:
        for path, text in texts.items():
            tmps[path].write_text(text, encoding="utf-8")
        for path in texts:
            if path.exists():
                raise ConfigError(f"{path} appeared while the rows were built; choose another --out")
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
