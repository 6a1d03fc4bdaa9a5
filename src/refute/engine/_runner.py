"""The eval engine: plan samples, drive solvers in batches, score and commit each sample."""

from __future__ import annotations

import hashlib
import json
import platform
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from refute.datasets import Dataset, Record, load_dataset
from refute.engine._progress import progress_bar
from refute.engine._solver import SampleState, SolverRun, get_solver
from refute.engine._task import TaskConfig
from refute.errors import ConfigError, RefuteError, StoreError
from refute.models._base import Completion, GenerateRequest, Message, ModelBackend
from refute.scorers import Scorer, ScoreInput, get_scorer
from refute.scorers._base import to_record
from refute.store import RunRecord, SampleRecord, ScoreRecord, Store

__all__ = ["PlannedSample", "plan_samples", "run_task", "resume_run", "derive_seed", "default_scorers"]

_VERSIONED = ("refute", "torch", "transformers", "numpy", "scipy", "httpx", "pydantic")


@dataclass(frozen=True)
class PlannedSample:
    record: Record
    epoch: int
    chain: str
    seed: int
    messages: tuple[Message, ...]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.record.id, self.epoch, self.chain)


def derive_seed(run_seed: int, prompt_id: str, epoch: int, chain: str) -> int:
    """A sample's seed: stable for the same run seed, prompt, epoch and chain."""
    digest = hashlib.sha256(f"{run_seed}|{prompt_id}|{epoch}|{chain}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def default_scorers(dataset: Dataset) -> list[str]:
    has_targets = any(r.target is not None for r in dataset.records)
    return ["match"] if has_targets else ["refusal"]


def _base_messages(task: TaskConfig, record: Record) -> tuple[Message, ...]:
    user = Message(role="user", content=task.template.replace("{prompt}", record.prompt))
    if task.system is None:
        return (user,)
    return (Message(role="system", content=task.system), user)


def plan_samples(task: TaskConfig, dataset: Dataset) -> list[PlannedSample]:
    """Every prompt x transform chain x epoch the task asks for, with its messages and seed."""
    chains: list[Any] = []
    for name in task.transforms:
        if name == "none":
            chains.append(None)
        else:
            from refute.redteam import parse_chain

            chains.append(parse_chain(name))
    planned = []
    for record in dataset.records:
        base = _base_messages(task, record)
        for chain_name, chain in zip(task.transforms, chains):
            canonical = "none" if chain is None else chain.name
            for epoch in range(task.epochs):
                seed = derive_seed(task.seed, record.id, epoch, canonical)
                messages = base if chain is None else tuple(chain.apply(base, seed))
                planned.append(PlannedSample(record, epoch, canonical, seed, messages))
    return planned


def cache_key(model: ModelBackend, request: GenerateRequest) -> str:
    payload = {
        "spec": model.info.spec, "revision": model.info.revision,
        "dtype": model.info.details.get("dtype"),
        "config": request.config.model_dump(), "seed": request.seed,
        "messages": [m.model_dump() for m in request.messages],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _load_task_dataset(task: TaskConfig) -> Dataset:
    return load_dataset(task.dataset, adapter=task.dataset_adapter, columns=task.dataset_columns,
                        limit=task.limit)


def _build_scorers(task: TaskConfig, dataset: Dataset) -> list[Scorer]:
    specs = task.scorers
    if specs is None:
        return [get_scorer(name) for name in default_scorers(dataset)]
    return [get_scorer(s.name, **s.args) for s in specs]


def run_task(task: TaskConfig, model: ModelBackend, store: Store, *, name: str | None = None,
             kind: str = "eval", load_options: dict[str, Any] | None = None,
             helpers: dict[str, ModelBackend] | None = None, progress: bool = True) -> RunRecord:
    """Start a run of ``task`` on ``model``; every sample is committed as it completes.

    ``helpers`` are the other models a solver may ask by role (``attacker``, ``judge``, ...).
    """
    dataset = _load_task_dataset(task)  # a malformed dataset raises here, before any run exists
    get_solver(task.solver.name, **task.solver.args)  # so does an unknown solver or bad argument
    planned = plan_samples(task, dataset)
    scorers = _build_scorers(task, dataset)
    model_json = {"backend": model.info.backend, "details": model.info.details,
                  "load_options": load_options or {},
                  "helpers": {role: m.info.spec for role, m in (helpers or {}).items()}}
    run = store.create_run(
        kind=kind, name=name, model_spec=model.info.spec, model_revision=model.info.revision,
        model=model_json, config=task.model_dump(mode="json"), versions=package_versions(),
        dataset_name=dataset.name, dataset_hash=dataset.content_hash, n_planned=len(planned),
    )
    return _execute(run, planned, scorers, {**(helpers or {}), "target": model}, store, progress)


def resume_run(run_id: str, store: Store, model: ModelBackend | None = None, *,
               helpers: dict[str, ModelBackend] | None = None, progress: bool = True) -> RunRecord:
    """Finish an interrupted run: only samples not yet completed are generated."""
    run = store.get_run(run_id)
    task = TaskConfig.model_validate(run.config)
    dataset = _load_task_dataset(task)
    if dataset.content_hash != run.dataset_hash:
        raise StoreError(
            f"run {run.id}: dataset '{task.dataset}' changed since the run started "
            f"(hash {dataset.content_hash[:12]} != {run.dataset_hash[:12]}); start a new run instead"
        )
    if model is None:
        from refute.models import load_model

        model = load_model(run.model_spec, **run.model.get("load_options", {}))
    if model.info.spec != run.model_spec:
        raise ConfigError(f"run {run.id} used model '{run.model_spec}', not '{model.info.spec}'")
    helpers = dict(helpers or {})
    for role, spec in run.model.get("helpers", {}).items():
        if role not in helpers:
            from refute.models import load_model

            helpers[role] = load_model(spec)
    models = {**helpers, "target": model}
    return _execute(run, plan_samples(task, dataset), _build_scorers(task, dataset), models, store, progress)


@dataclass
class _Slot:
    plan: PlannedSample
    state: SampleState
    run: SolverRun
    request: GenerateRequest


def _execute(run: RunRecord, planned: Sequence[PlannedSample], scorers: list[Scorer],
             models: dict[str, ModelBackend], store: Store, progress: bool) -> RunRecord:
    task = TaskConfig.model_validate(run.config)
    solve = get_solver(task.solver.name, **task.solver.args)
    done = store.completed_keys(run.id)
    todo = deque(p for p in planned if p.key not in done)
    store.set_status(run.id, "running")
    chunk = max(1, models["target"].preferred_batch_size)
    try:
        with progress_bar(f"run {run.id}", total=len(planned), done=len(planned) - len(todo),
                          enabled=progress) as bar:
            active: list[_Slot] = []
            while todo or active:
                while todo and len(active) < chunk:
                    slot = _start(todo.popleft(), task, solve)
                    if isinstance(slot, _Slot):
                        active.append(slot)
                    else:  # the solver failed before asking anything
                        _commit(store, run.id, slot[0], slot[1], scorers)
                        bar.advance()
                active = _step(active, models, store, run.id, scorers, bar)
    except KeyboardInterrupt:
        store.set_status(run.id, "interrupted")
        raise
    ok, bad = store.sample_counts(run.id)
    store.set_status(run.id, "completed" if ok + bad >= len(planned) else "interrupted")
    return store.get_run(run.id)


def _start(plan: PlannedSample, task: TaskConfig, solve: Any) -> _Slot | tuple[PlannedSample, SampleState]:
    state = SampleState(messages=list(plan.messages), config=task.generate, seed=plan.seed)
    run = solve(state)
    try:
        return _Slot(plan, state, run, next(run))
    except StopIteration:
        state.completion = Completion(text="", error="the solver finished without asking the model")
        return (plan, state)
    except Exception as exc:  # noqa: BLE001 - one failed sample is recorded, not raised
        state.completion = Completion(text="", error=f"solver failed: {type(exc).__name__}: {exc}")
        return (plan, state)


def _model_for(models: dict[str, ModelBackend], request: GenerateRequest) -> ModelBackend:
    if request.role not in models:
        raise ConfigError(f"a solver asked the '{request.role}' model, but the run has only "
                          f"{', '.join(sorted(models))}; pass it in helpers")
    return models[request.role]


def _step(active: list[_Slot], models: dict[str, ModelBackend], store: Store, run_id: str,
          scorers: list[Scorer], bar: Any) -> list[_Slot]:
    """Answer every active slot's request once (cache first), advance its solver."""
    keys = [cache_key(_model_for(models, s.request), s.request) for s in active]
    answered: list[tuple[int, Completion, bool]] = []
    misses: list[int] = []
    for i, key in enumerate(keys):
        hit = store.cache_get(key)
        if hit is not None:
            answered.append((i, hit, True))
        else:
            misses.append(i)
    still_active: list[_Slot] = []

    def advance(i: int, completion: Completion, cached: bool) -> None:
        slot = active[i]
        if not cached:
            store.cache_put(keys[i], completion)
        slot.state.cached = slot.state.cached or cached
        if completion.ok:
            try:
                slot.request = slot.run.send(completion)
                still_active.append(slot)
                return
            except StopIteration:
                pass
            except Exception as exc:  # noqa: BLE001 - one failed sample is recorded, not raised
                slot.state.completion = Completion(text="", error=f"solver failed: {type(exc).__name__}: {exc}")
        else:  # a failed request ends the sample with its error
            slot.state.completion = completion
            slot.run.close()
        _commit(store, run_id, slot.plan, slot.state, scorers)
        bar.advance()

    for i, completion, cached in answered:
        advance(i, completion, True)
    # Group by role before generating: a slot answered by one model may move on to a request for
    # another in this same step, and must not be answered twice.
    by_role = {role: [i for i in misses if active[i].request.role == role] for role in models}
    for role, mine in by_role.items():
        if mine:
            for j, completion in models[role].generate([active[i].request for i in mine]):
                advance(mine[j], completion, False)
    return still_active


def _commit(store: Store, run_id: str, plan: PlannedSample, state: SampleState,
            scorers: list[Scorer]) -> None:
    completion = state.completion
    error = completion.error if completion is not None else None
    turns = state.turns or ([completion] if completion is not None else [])
    sample = SampleRecord(
        run_id=run_id, prompt_id=plan.record.id, category=plan.record.category, epoch=plan.epoch,
        transform_chain=plan.chain, seed=plan.seed,
        messages=[m.model_dump() for m in state.messages],
        completion=None if error else (completion.text if completion else None),
        input_tokens=sum(t.input_tokens for t in turns), output_tokens=sum(t.output_tokens for t in turns),
        latency_s=sum(t.latency_s for t in turns),
        finish_reason=completion.finish_reason if completion else None,
        cached=state.cached, error=error, metadata=state.metadata,
    )
    scores: list[ScoreRecord] = []
    if error is None and completion is not None:
        item = ScoreInput(record=plan.record, messages=sample.messages, completion=completion.text)
        for s in scorers:
            scores.append(_safe_score(s, item))
    store.record_sample(sample, scores)


def _safe_score(s: Scorer, item: ScoreInput) -> ScoreRecord:
    from refute.scorers import Score

    try:
        return to_record(s, s.score(item))
    except RefuteError as exc:
        return to_record(s, Score(None, "error", str(exc)))
    except Exception as exc:  # noqa: BLE001 - a scorer bug must not lose the sample
        return to_record(s, Score(None, "error", f"{type(exc).__name__}: {exc}"))
