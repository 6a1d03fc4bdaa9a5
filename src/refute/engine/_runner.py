"""The eval engine: plan samples, drive solvers in batches, score and commit each sample.

Nothing it reports is silently wrong:

- The request cache is keyed on everything that can change a reply: the model spec and revision,
  the backend and all its details (the endpoint and extra body of a server, the dtype of a local
  model), the sampling settings, the seed and the messages. Each sample records where its replies
  came from (``request``, ``cache`` or ``mixed``).
- A reply longer than ``MAX_REPLY_CHARS`` is cut there, and the sample says so (``truncated``).
- A run ends ``completed`` only when every planned sample completed; ``completed_with_errors``
  when some failed, ``failed`` when all did, ``interrupted`` when it stopped early. A store
  failure or Ctrl-C leaves it ``interrupted``, never ``running``, and the exception carries the run
  id (``refute_run_id``) so the caller can say how to resume.
- Backends that take concurrent calls (``concurrent = True``: remote servers) are fed one request
  at a time as slots free up, so one slow reply never holds back the others; local batched
  backends get batches.
- Inside ``use_executor("ray")`` the samples are sharded across Ray actors (`refute.engine._ray`),
  each running this engine on its chunk; this process alone writes the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Protocol

from refute._seeds import derive_seed  # a sample's seed: derive_seed(run seed, prompt id, epoch, chain)
from refute.datasets import Dataset, Record, load_dataset
from refute.engine._executor import current_executor
from refute.engine._progress import progress_bar
from refute.engine._solver import SampleState, SolverRun, get_solver, helper_roles
from refute.engine._task import TaskConfig
from refute.errors import ConfigError, RefuteError, StoreError
from refute.models import load_model
from refute.models._base import Completion, GenerateRequest, Message, ModelBackend
from refute.scorers import Score, ScoreInput, Scorer, get_scorer
from refute.scorers._base import to_record
from refute.store import CachedReply, RunRecord, RunStatus, SampleRecord, ScoreRecord, Store
from refute.transforms import parse_chain

__all__ = ["MAX_REPLY_CHARS", "PlannedSample", "check_helpers", "needs_rewriter", "plan_samples", "run_task",
           "resume_run", "derive_seed", "default_scorers", "final_status"]

#: Longest reply kept, in characters; a longer one is cut here and the sample marked truncated.
MAX_REPLY_CHARS = 100_000

_VERSIONED = ("refute", "torch", "transformers", "numpy", "scipy", "httpx", "pydantic")


@dataclass(frozen=True)
class PlannedSample:
    """One sample to run: its record, epoch, chain and seed. Its messages are built only when it
    starts (`messages`), so a resumed run does not transform (or rewrite through a model) the
    samples it already has."""

    record: Record
    epoch: int
    chain: str
    seed: int
    base: tuple[Message, ...]
    transform: Any = field(default=None, compare=False)  # a TransformChain, None for canonical

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.base if self.transform is None else tuple(self.transform.apply(self.base, self.seed))

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.record.id, self.epoch, self.chain)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


#: The scorers of agentic tasks (records naming an ``agent_task``), registered by `refute.agents`.
AGENT_SCORERS = ("agent_success", "affordance_use", "agent_monitor")


def default_scorers(dataset: Dataset) -> list[str]:
    if any("agent_task" in r.metadata for r in dataset.records):
        return list(AGENT_SCORERS)
    has_targets = any(r.target is not None for r in dataset.records)
    return ["match"] if has_targets else ["refusal"]


def _base_messages(task: TaskConfig, record: Record) -> tuple[Message, ...]:
    user = Message(role="user", content=task.template.replace("{prompt}", record.prompt))
    if task.system is None:
        return (user,)
    return (Message(role="system", content=task.system), user)


def plan_samples(task: TaskConfig, dataset: Dataset, *, rewriter: ModelBackend | None = None) -> list[PlannedSample]:
    """Every prompt x transform chain x epoch the task asks for, with its seed; ``rewriter`` is
    the model that rewrite transforms (paraphrase, translation) ask."""
    chains: list[Any] = []
    for name in task.transforms:
        if name == "none":
            chains.append(None)
        else:
            chains.append(parse_chain(name, model=rewriter))
    planned = []
    for record in dataset.records:
        base = _base_messages(task, record)
        for chain in chains:
            canonical = "none" if chain is None else chain.name
            for epoch in range(task.epochs):
                seed = derive_seed(task.seed, record.id, epoch, canonical)
                planned.append(PlannedSample(record, epoch, canonical, seed, base, chain))
    return planned


def check_helpers(task: TaskConfig, solve: Any, helpers: dict[str, Any]) -> None:
    """Every helper model the task needs is there: the roles its solver asks (``attacker``,
    ``judge``), and a ``rewriter`` for rewrite transforms. Raises ConfigError naming the option."""
    missing = sorted(helper_roles(solve) - set(helpers))
    if missing:
        raise ConfigError(f"solver '{task.solver.name}' asks the {' and '.join(missing)} model"
                          f"{'s' if len(missing) > 1 else ''}: pass "
                          + " and ".join(f"--{role} SPEC" for role in missing))
    for name in task.transforms:  # every chain parses; a rewrite needs its model
        if "rewriter" not in helpers and _rewrites(name):
            raise ConfigError(f"transform '{name}' rewrites the request through a model: pass "
                              "--rewriter SPEC (the model that paraphrases or translates)")


def needs_rewriter(task: TaskConfig) -> bool:
    """Whether any of the task's transform chains rewrites requests through a model."""
    return any(_rewrites(name) for name in task.transforms)


def _rewrites(chain: str) -> bool:
    return any(step.kind == "rewrite" for step in _steps(parse_chain(chain, model=_NoModel())))


class _NoModel:
    """Stands in for a rewrite model while a chain is only checked, never applied."""

    info = None

    def generate(self, requests: Any) -> Any:  # pragma: no cover - never called
        raise ConfigError("no rewrite model")


def _steps(chain: Any) -> list[Any]:
    return list(getattr(chain, "steps", []))


def cache_key(model: ModelBackend, request: GenerateRequest) -> str:
    """Everything that can change a reply: model, backend and all its details, settings, seed,
    messages. A server at another URL, or the same server with another extra body, is another key."""
    payload = {
        "spec": model.info.spec, "revision": model.info.revision, "backend": model.info.backend,
        "details": dict(model.info.details),
        "config": request.config.model_dump(exclude={"stop"} if not request.config.stop else None),
        "seed": request.seed,
        "messages": [m.model_dump(exclude_defaults=True) for m in request.messages],
    }
    if request.tools:
        payload["tools"] = list(request.tools)
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
             helpers: dict[str, ModelBackend] | None = None, progress: bool = True,
             parent: str | None = None, role: str | None = None) -> RunRecord:
    """Start a run of ``task`` on ``model``; every sample is committed as it completes.

    ``helpers`` are the other models a solver may ask by role (``attacker``, ``judge``, ...).
    ``parent`` and ``role`` link the run to the run it belongs to in the store (a capability
    control: ``role="capability"``, its attack run as parent).
    """
    dataset = _load_task_dataset(task)  # a malformed dataset raises here, before any run exists
    solve = get_solver(task.solver.name, **task.solver.args)  # so does an unknown solver or bad argument
    check_helpers(task, solve, helpers or {})  # and a solver or rewrite with no model to ask
    planned = plan_samples(task, dataset, rewriter=(helpers or {}).get("rewriter"))
    scorers = _build_scorers(task, dataset)
    model_json = {"backend": model.info.backend, "details": model.info.details,
                  "load_options": load_options or {},
                  "helpers": {role: m.info.spec for role, m in (helpers or {}).items()}}
    run = store.create_run(
        kind=kind, name=name, model_spec=model.info.spec, model_revision=model.info.revision,
        model=model_json, config=task.model_dump(mode="json"), versions=package_versions(),
        dataset_name=dataset.name, dataset_hash=dataset.content_hash, n_planned=len(planned),
        parent_id=parent, role=role,
    )
    return _execute(run, planned, scorers, {**(helpers or {}), "target": model}, store, progress)


def resume_run(run_id: str, store: Store, model: ModelBackend | None = None, *,
               helpers: dict[str, ModelBackend] | None = None, progress: bool = True,
               model_spec: str | None = None, load_options: dict[str, Any] | None = None) -> RunRecord:
    """Finish an interrupted run: only samples not yet completed (or failed) are generated.

    ``model_spec``, when given, must be the run's own spec (a run cannot change model half way).
    ``load_options`` override the stored ones (a server that moved: ``{"base_url": ...}``); the
    run then records the new options and backend details.
    """
    run = store.get_run(run_id)
    if run.status == "running" and run.pid != os.getpid():
        raise StoreError(f"run {run.id} is being run by process {run.pid} on {run.host}; wait for it "
                         "to finish or stop it, then resume")
    if model_spec is not None and model_spec != run.model_spec:
        raise ConfigError(f"run {run.id} used model '{run.model_spec}', not '{model_spec}'; a run "
                          "cannot change model: start a new run (or drop --model)")
    task = TaskConfig.model_validate(run.config)
    dataset = _load_task_dataset(task)
    if dataset.content_hash != run.dataset_hash:
        raise StoreError(
            f"run {run.id}: dataset '{task.dataset}' changed since the run started "
            f"(hash {dataset.content_hash[:12]} != {run.dataset_hash[:12]}); start a new run instead"
        )
    options = {**run.model.get("load_options", {}), **(load_options or {})}
    if model is None:
        model = load_model(run.model_spec, **options)
    if model.info.spec != run.model_spec:
        raise ConfigError(f"run {run.id} used model '{run.model_spec}', not '{model.info.spec}'")
    if model.info.revision != run.model_revision:
        raise ConfigError(f"run {run.id} used model revision {run.model_revision}, but '{run.model_spec}' "
                          f"now loads revision {model.info.revision}; start a new run")
    if model.info.details.get("spec") != run.model.get("details", {}).get("spec"):
        raise ConfigError(f"run {run.id}: an edit file of '{run.model_spec}' changed since the run started "
                          "(its sha256 differs); start a new run")
    if load_options or model.info.details != run.model.get("details"):
        store.set_model(run.id, {**run.model, "details": model.info.details, "load_options": options})
    helpers = dict(helpers or {})
    loaded: dict[str, ModelBackend] = {run.model_spec: model}
    for role, spec in run.model.get("helpers", {}).items():
        if role not in helpers:  # one backend per spec: the target may be its own attacker
            helpers[role] = loaded[spec] if spec in loaded else loaded.setdefault(spec, load_model(spec))
    models = {**helpers, "target": model}
    check_helpers(task, get_solver(task.solver.name, **task.solver.args), models)
    planned = plan_samples(task, dataset, rewriter=models.get("rewriter"))
    return _execute(run, planned, _build_scorers(task, dataset), models, store, progress)


@dataclass
class _Slot:
    plan: PlannedSample
    state: SampleState
    run: SolverRun
    request: GenerateRequest
    sources: set[str] = field(default_factory=set)
    truncated: bool = False


def final_status(ok: int, bad: int, planned: int) -> RunStatus:
    """The status of a run that stopped with ``ok`` completed and ``bad`` failed samples."""
    if ok + bad < planned:
        return "interrupted"
    if bad == 0:
        return "completed"
    return "failed" if ok == 0 else "completed_with_errors"


def _execute(run: RunRecord, planned: Sequence[PlannedSample], scorers: list[Scorer],
             models: dict[str, ModelBackend], store: Store, progress: bool) -> RunRecord:
    task = TaskConfig.model_validate(run.config)
    solve = get_solver(task.solver.name, **task.solver.args)
    done = store.completed_keys(run.id)
    todo = deque(p for p in planned if p.key not in done)
    store.set_status(run.id, "running")
    executor = current_executor()
    try:
        with progress_bar(f"run {run.id}", total=len(planned), done=len(planned) - len(todo),
                          enabled=progress) as bar:
            if executor.kind == "ray" and todo:
                from refute.engine._ray import run_on_ray  # deferred: _ray builds on this module

                run_on_ray(run, todo, scorers, models, store, bar, executor)
            else:
                _Engine(run.id, task, solve, models, store, scorers, bar).run(todo)
    except BaseException as exc:
        _stop(store, run.id, exc)
        raise
    ok, bad = store.sample_counts(run.id)
    store.set_status(run.id, final_status(ok, bad, len(planned)))
    return store.get_run(run.id)


def _stop(store: Store, run_id: str, exc: BaseException) -> None:
    """Leave a run that stopped on ``exc`` "interrupted" (never "running"), tagged for the caller."""
    # the store itself may be failing (disk full); the run will read as interrupted once this
    # process is gone
    with contextlib.suppress(StoreError):
        store.set_status(run_id, "interrupted")
    with contextlib.suppress(AttributeError):
        exc.refute_run_id = run_id  # type: ignore[attr-defined]
    if isinstance(exc, StoreError):
        exc.args = (f"{exc}; run {run_id} stopped: every sample stored so far is kept, finish it "
                    f"with `refute run --resume {run_id}`",)


def _cap(completion: Completion) -> tuple[Completion, bool]:
    if len(completion.text) <= MAX_REPLY_CHARS:
        return completion, False
    return replace(completion, text=completion.text[:MAX_REPLY_CHARS]), True


class EngineStore(Protocol):
    """What the engine needs of a store: the request cache, and somewhere to commit each sample
    (`Store` itself; a Ray worker's stand-in that collects them for the driver to write)."""

    def cache_get(self, key: str) -> CachedReply | None: ...

    def cache_put(self, key: str, reply: CachedReply) -> None: ...

    def record_sample(self, sample: SampleRecord, scores: Sequence[ScoreRecord] = ()) -> int: ...


@dataclass
class _Engine:
    """Drives the solvers of one run: asks the models, advances each sample, commits it."""

    run_id: str
    task: TaskConfig
    solve: Any
    models: dict[str, ModelBackend]
    store: EngineStore
    scorers: list[Scorer]
    bar: Any = None

    def run(self, todo: deque[PlannedSample]) -> None:
        """Every sample of ``todo``: streamed when every model takes concurrent calls, else batched."""
        if all(getattr(m, "concurrent", False) for m in self.models.values()):
            self.stream(todo)
        else:
            self.batches(todo)

    def _start(self, plan: PlannedSample) -> _Slot | None:
        """A new sample's first request, or None when its solver failed before asking (committed)."""
        try:
            messages = list(plan.messages)
        except RefuteError as exc:  # a rewrite model failed: the sample fails, the run goes on
            self._fail(plan, SampleState(messages=list(plan.base), config=self.task.generate, seed=plan.seed,
                                         record=plan.record),
                       f"transform failed: {exc}")
            return None
        state = SampleState(messages=messages, config=self.task.generate, seed=plan.seed, record=plan.record)
        run = self.solve(state)
        try:
            return _Slot(plan, state, run, next(run))
        except StopIteration:
            error = "the solver finished without asking the model"
        except Exception as exc:  # noqa: BLE001 - one failed sample is recorded, not raised
            error = f"solver failed: {type(exc).__name__}: {exc}"
        self._fail(plan, state, error)
        return None

    def _fail(self, plan: PlannedSample, state: SampleState, error: str) -> None:
        """Commit a sample that failed before it asked any model."""
        state.completion = Completion(text="", error=error)
        self._commit(_Slot(plan, state, iter(()), GenerateRequest((), self.task.generate, plan.seed)))  # type: ignore[arg-type]  # never advanced

    def _key(self, slot: _Slot) -> str:
        return cache_key(_model_for(self.models, slot.request), slot.request)

    def _cached(self, slot: _Slot) -> Completion | None:
        if slot.request.tools:  # the cache keeps a reply's text, not its tool calls
            return None
        hit = self.store.cache_get(self._key(slot))
        return None if hit is None else Completion(text=hit.text, input_tokens=hit.input_tokens,
                                                   output_tokens=hit.output_tokens, latency_s=hit.latency_s,
                                                   finish_reason=hit.finish_reason)

    def _advance(self, slot: _Slot, completion: Completion, cached: bool) -> bool:
        """Hand ``completion`` to the slot's solver; True while the sample asks for more."""
        if not cached:
            completion, cut = _cap(completion)
            slot.truncated = slot.truncated or cut
            if completion.ok and not slot.request.tools:  # failures (and tool calls) are never cached
                self.store.cache_put(self._key(slot), CachedReply(
                    completion.text, completion.input_tokens, completion.output_tokens, completion.latency_s,
                    completion.finish_reason))
        slot.sources.add("cache" if cached else "request")
        slot.state.cached = slot.state.cached or cached
        if completion.ok:
            try:
                slot.request = slot.run.send(completion)
                return True
            except StopIteration:
                pass
            except Exception as exc:  # noqa: BLE001 - one failed sample is recorded, not raised
                slot.state.completion = Completion(text="", error=f"solver failed: {type(exc).__name__}: {exc}")
        else:  # a failed request ends the sample with its error
            slot.state.completion = completion
            slot.run.close()
        self._commit(slot)
        return False

    def _commit(self, slot: _Slot) -> None:
        _commit(self.store, self.run_id, slot, self.scorers)
        self.bar.advance()

    # -- local batched backends: one batch per step, every slot answered once ------------------

    def batches(self, todo: deque[PlannedSample]) -> None:
        chunk = max(1, self.models["target"].preferred_batch_size)
        active: list[_Slot] = []
        while todo or active:
            while todo and len(active) < chunk:
                slot = self._start(todo.popleft())
                if slot is not None:
                    active.append(slot)
            active = self._step(active)

    def _step(self, active: list[_Slot]) -> list[_Slot]:
        """Answer every active slot's request once (cache first), advance its solver."""
        still: list[_Slot] = []
        misses: list[_Slot] = []
        for slot in active:
            hit = self._cached(slot)
            if hit is None:
                misses.append(slot)
            elif self._advance(slot, hit, True):
                still.append(slot)
        # Group by role before generating: a slot answered by one model may move on to a request
        # for another in this same step, and must not be answered twice.
        by_role = {role: [s for s in misses if s.request.role == role] for role in self.models}
        for role, mine in by_role.items():
            if mine:
                for j, completion in self.models[role].generate([s.request for s in mine]):
                    if self._advance(mine[j], completion, False):
                        still.append(mine[j])
        return still

    # -- concurrent backends (servers): a freed slot is refilled at once ------------------------

    def stream(self, todo: deque[PlannedSample]) -> None:
        window = max(1, self.models["target"].preferred_batch_size)
        in_flight: dict[Future[Completion], _Slot] = {}
        pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="refute-engine")
        try:
            while todo or in_flight:
                while todo and len(in_flight) < window:
                    slot = self._start(todo.popleft())
                    if slot is not None:
                        self._dispatch(slot, pool, in_flight)
                if not in_flight:
                    continue
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    slot = in_flight.pop(future)
                    if self._advance(slot, future.result(), False):
                        self._dispatch(slot, pool, in_flight)
        finally:  # on Ctrl-C or a store failure, do not wait for requests still in flight
            pool.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self, slot: _Slot, pool: ThreadPoolExecutor,
                  in_flight: dict[Future[Completion], _Slot]) -> None:
        """Answer from the cache while it can; send the first miss to the slot's model."""
        while (hit := self._cached(slot)) is not None:
            if not self._advance(slot, hit, True):
                return
        model = _model_for(self.models, slot.request)
        in_flight[pool.submit(_ask_one, model, slot.request)] = slot


def _ask_one(model: ModelBackend, request: GenerateRequest) -> Completion:
    for _, completion in model.generate([request]):
        return completion
    return Completion(text="", error=f"{model.info.spec}: no reply")


def _model_for(models: dict[str, ModelBackend], request: GenerateRequest) -> ModelBackend:
    if request.role not in models:
        raise ConfigError(f"a solver asked the '{request.role}' model, but the run has only "
                          f"{', '.join(sorted(models))}; pass it in helpers")
    return models[request.role]


def _commit(store: EngineStore, run_id: str, slot: _Slot, scorers: list[Scorer]) -> None:
    store.record_sample(*build_sample(run_id, slot, scorers))


def build_sample(run_id: str, slot: _Slot, scorers: list[Scorer]) -> tuple[SampleRecord, list[ScoreRecord]]:
    """The record of a finished sample and its scores (the scorers run here)."""
    plan, state = slot.plan, slot.state
    completion = state.completion
    error = completion.error if completion is not None else None
    turns = state.turns or ([completion] if completion is not None else [])
    sample = SampleRecord(
        run_id=run_id, prompt_id=plan.record.id, category=plan.record.category, epoch=plan.epoch,
        transform_chain=plan.chain, seed=plan.seed,
        messages=[m.model_dump(exclude_defaults=True) for m in state.messages],
        completion=None if error else (completion.text if completion else None),
        input_tokens=sum(t.input_tokens for t in turns), output_tokens=sum(t.output_tokens for t in turns),
        latency_s=sum(t.latency_s for t in turns),
        finish_reason=completion.finish_reason if completion else None,
        cached=state.cached, error=error, metadata=state.metadata,
        source=None if not slot.sources else slot.sources.pop() if len(slot.sources) == 1 else "mixed",
        truncated=slot.truncated,
    )
    scores: list[ScoreRecord] = []
    if error is None and completion is not None:
        item = ScoreInput(record=plan.record, messages=sample.messages, completion=completion.text,
                          metadata=state.metadata)
        for s in scorers:
            scores.append(_safe_score(s, item))
    return sample, scores


def _safe_score(s: Scorer, item: ScoreInput) -> ScoreRecord:
    try:
        return to_record(s, s.score(item))
    except RefuteError as exc:
        return to_record(s, Score(None, "error", str(exc)))
    except Exception as exc:  # noqa: BLE001 - a scorer bug must not lose the sample
        return to_record(s, Score(None, "error", f"{type(exc).__name__}: {exc}"))
