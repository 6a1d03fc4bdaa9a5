"""The ``ray`` executor: a run's samples sharded across Ray actors, the store written by the driver alone.

Each actor holds one replica of every model the run uses: loaded in the actor from its spec and
the run's load options when it is one of refute's own backends, else (a backend object built in
code, such as a test's fake) the driver's object, shipped pickled. The driver hands out chunks of
samples (the target's preferred batch size) to free actors; an actor runs the engine (`_Engine`)
on its chunk against a stand-in store (`_Collector`) that streams back each finished sample (its
record, its scores, the replies to cache) instead of writing it. The driver stores each one as it
arrives, advances the bar and feeds the next chunk.

Results are those of the local executor: a sample's seed derives from its identity, and backends
sample reproducibly per request seed whatever else is in the batch.

A worker that dies, or a chunk whose task fails, loses only that chunk's samples not yet stored:
a dead actor is replaced and they are reissued, up to `TRIES` times, after which the run stops
``interrupted`` with the command that finishes it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from refute.datasets import Record
from refute.engine._executor import Executor
from refute.engine._progress import ProgressSink
from refute.engine._ray_cluster import import_ray
from refute.engine._runner import PlannedSample, _Engine
from refute.engine._solver import get_solver
from refute.engine._task import TaskConfig
from refute.errors import ConfigError, RefuteError, StoreError
from refute.models import load_model, parse_spec
from refute.models._base import Message, ModelBackend, ModelInfo
from refute.scorers import Scorer
from refute.store import CachedReply, RunRecord, SampleRecord, ScoreRecord, Store, open_store
from refute.transforms import parse_chain

__all__ = ["KEEP", "TRIES", "run_on_ray"]

#: Tries of one chunk of samples (a worker lost, or its task failed) before the run stops.
TRIES = 3
#: Models an actor keeps loaded between runs (a run's target and helpers are loaded whatever this is).
KEEP = 3
#: Load options that a helper served by an endpoint shares with the target (as on the CLI).
_ENDPOINT_OPTIONS = ("base_url", "concurrency", "timeout_s", "max_retries")


@dataclass(frozen=True)
class _Replica:
    """How an actor loads one of the run's models: ``load_model(spec, **options)``, which must
    record ``info`` as the driver's backend did. (A model that cannot be loaded by spec travels
    with the run's `_Job` instead, pickled.)"""

    info: ModelInfo
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        """Equal keys: the same model, so an actor that holds one serves the other."""
        dump = functools.partial(json.dumps, sort_keys=True, default=str)
        return (self.info.spec, self.info.revision, dump(self.info.details), dump(self.options))


@dataclass(frozen=True)
class _Job:
    """What an actor needs for one run, put in the object store once per run."""

    run_id: str
    config: dict[str, Any]
    #: role -> ("loaded", index of ``replicas``) or ("shipped", index of ``shipped``)
    roles: dict[str, tuple[str, int]]
    replicas: list[_Replica]
    scorers: list[Scorer]
    store_file: str | None  # a SQLite store the actor may read the request cache from
    shipped: list[Any] = field(default_factory=list)  # ObjectRefs of backends that cannot be loaded by spec


@dataclass(frozen=True)
class _Plan:
    """A `PlannedSample` without its transform object (rebuilt in the actor with its rewriter)."""

    record: Record
    epoch: int
    chain: str
    seed: int
    base: tuple[Message, ...]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.record.id, self.epoch, self.chain)


@dataclass(frozen=True)
class _Done:
    """One finished sample, as the actor streams it back: what the driver writes."""

    sample: SampleRecord
    scores: list[ScoreRecord]
    cache: list[tuple[str, CachedReply]]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.sample.prompt_id, self.sample.epoch, self.sample.transform_chain)


# -- the actor ------------------------------------------------------------------------------------


class _Collector:
    """The engine's store inside an actor: collects each committed sample (with the replies it
    cached) into a queue, reads the request cache from the run's SQLite store when this machine
    has it (opened in the engine's thread, which alone uses it)."""

    def __init__(self, out: queue.Queue[Any], store_file: str | None) -> None:
        self.out, self.store_file = out, store_file
        self.reader: Store | None = None
        self.mine: dict[str, CachedReply] = {}
        self.unsent: list[tuple[str, CachedReply]] = []

    def cache_get(self, key: str) -> CachedReply | None:
        hit = self.mine.get(key)
        if hit is None and self.store_file is not None:
            with contextlib.suppress(StoreError):
                if self.reader is None:
                    self.reader = open_store(self.store_file, read_only=True)
                hit = self.reader.cache_get(key)
        return hit

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def cache_put(self, key: str, reply: CachedReply) -> None:
        self.mine[key] = reply
        self.unsent.append((key, reply))

    def record_sample(self, sample: SampleRecord, scores: Sequence[ScoreRecord] = ()) -> int:
        self.out.put(_Done(sample, list(scores), self.unsent))
        self.unsent = []
        return 0


class _NoBar:
    def advance(self, n: int = 1) -> None:
        pass


_END = object()


class _Worker:
    """A Ray actor: runs chunks of any run of the session on its own replicas of the run's models.

    Models loaded by spec stay loaded for the next runs (the `KEEP` most recently used)."""

    def __init__(self) -> None:
        self.loaded: dict[tuple[Any, ...], ModelBackend] = {}
        self.run_id: str | None = None

    def pid(self) -> int:
        return os.getpid()

    def _begin(self, run_id: str, job_box: list[Any]) -> None:
        """Take up run ``run_id`` (its job is fetched once, not with every chunk)."""
        if run_id == self.run_id:
            return
        ray = import_ray()
        self.job: _Job = ray.get(job_box[0])
        self.task = TaskConfig.model_validate(self.job.config)
        self.solve = get_solver(self.task.solver.name, **self.task.solver.args)
        loaded = [self._load(r) for r in self.job.replicas]
        in_use = {r.key() for r in self.job.replicas}
        for key in [k for k in self.loaded if k not in in_use][: max(0, len(self.loaded) - KEEP)]:
            self.loaded.pop(key).close()  # the least recently used first
        shipped = [ray.get(ref) for ref in self.job.shipped]
        self.models = {role: (loaded if how == "loaded" else shipped)[i] for role, (how, i) in self.job.roles.items()}
        self.chains: dict[str, Any] = {}
        store_file = self.job.store_file
        self.store_file = store_file if store_file and os.path.isfile(store_file) else None
        self.run_id = run_id

    def _load(self, replica: _Replica) -> ModelBackend:
        key = replica.key()
        backend = self.loaded.pop(key, None) or _materialise(replica)
        self.loaded[key] = backend  # most recently used last
        return backend

    def run_chunk(self, run_id: str, job_box: list[Any], plans: list[_Plan]) -> Iterator[_Done]:
        """Run the engine on ``plans`` of run ``run_id``; yields each sample as it is committed."""
        self._begin(run_id, job_box)
        out: queue.Queue[Any] = queue.Queue()
        collector = _Collector(out, self.store_file)
        engine = _Engine(run_id, self.task, self.solve, self.models, collector, self.job.scorers, _NoBar())
        todo = deque(PlannedSample(p.record, p.epoch, p.chain, p.seed, p.base, self._chain(p.chain)) for p in plans)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                engine.run(todo)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the actor's method below
                failure.append(exc)
            finally:
                collector.close()
                out.put(_END)

        thread = threading.Thread(target=work, name="refute-ray-chunk", daemon=True)
        thread.start()
        while (item := out.get()) is not _END:
            yield item
        thread.join()
        if failure:
            raise failure[0]

    def _chain(self, name: str) -> Any:
        if name == "none":
            return None
        if name not in self.chains:
            self.chains[name] = parse_chain(name, model=self.models.get("rewriter"))
        return self.chains[name]


def _materialise(replica: _Replica) -> ModelBackend:
    """The actor's own replica of one of the run's models."""
    backend = load_model(replica.info.spec, **replica.options)
    loaded = (backend.info.revision, backend.info.details)
    if loaded != (replica.info.revision, replica.info.details):
        backend.close()
        raise ConfigError(f"a Ray worker loaded '{replica.info.spec}' as revision {loaded[0]} with "
                          f"{loaded[1]}, but the run's model is revision {replica.info.revision} with "
                          f"{replica.info.details}; run it with --executor local")
    return backend


# -- the driver -----------------------------------------------------------------------------------


def _replicas(run: RunRecord, models: dict[str, ModelBackend]
              ) -> tuple[list[_Replica], list[ModelBackend], dict[str, tuple[str, int]]]:
    """The models an actor loads by spec, those shipped pickled, and where each role finds its own
    (one per distinct backend: the target may be its own attacker)."""
    replicas: list[_Replica] = []
    shipped: list[ModelBackend] = []
    roles: dict[str, tuple[str, int]] = {}
    seen: dict[int, tuple[str, int]] = {}
    target_options = dict(run.model.get("load_options", {}))
    for role, backend in models.items():
        if id(backend) not in seen:
            replica = _replica(backend, target_options, role == "target")
            if replica is None:
                seen[id(backend)] = ("shipped", len(shipped))
                shipped.append(backend)
            else:
                seen[id(backend)] = ("loaded", len(replicas))
                replicas.append(replica)
        roles[role] = seen[id(backend)]
    return replicas, shipped, roles


def _replica(backend: ModelBackend, target_options: dict[str, Any], is_target: bool) -> _Replica | None:
    """How an actor loads ``backend`` by spec: refute's own backends; None for one built in code
    (a test's fake, an interp variant), which is shipped pickled."""
    info = backend.info
    if not type(backend).__module__.startswith("refute.models."):
        return None
    try:
        kind = parse_spec(info.spec).kind
    except ConfigError:
        return None
    if kind == "openai":  # a helper served by an endpoint shares the target's endpoint settings
        keep = target_options if is_target else {k: v for k, v in target_options.items() if k in _ENDPOINT_OPTIONS}
        return _Replica(info, dict(keep))
    options = {k: v for k, v in target_options.items() if is_target and k not in _ENDPOINT_OPTIONS}
    for name in ("dtype", "device"):  # what the driver's backend actually runs with
        if name in info.details:
            options[name] = info.details[name]
    return _Replica(info, options)


@dataclass
class _Chunk:
    plans: list[PlannedSample]
    tries: int = 0
    stored: set[tuple[str, int, str]] = field(default_factory=set)

    def left(self) -> list[PlannedSample]:
        return [p for p in self.plans if p.key not in self.stored]


def run_on_ray(run: RunRecord, todo: Sequence[PlannedSample], scorers: list[Scorer],
               models: dict[str, ModelBackend], store: Store, bar: ProgressSink, executor: Executor) -> None:
    """Run ``todo`` on the executor's Ray actors; store every sample here as it comes back."""
    ray = import_ray()
    from ray.exceptions import RayActorError, RayError

    size = max(1, models["target"].preferred_batch_size)
    plans = list(todo)
    pending = deque(_Chunk(plans[i:i + size]) for i in range(0, len(plans), size))
    replicas, shipped, roles = _replicas(run, models)
    store_file = str(store.path) if type(store) is Store else None  # SQLite (not PostgreSQL): a file to read
    job_box = [ray.put(_Job(run.id, run.config, roles, replicas, scorers, store_file,
                            [ray.put(b) for b in shipped]))]
    pool = executor.pool
    if pool is None:
        raise ConfigError("the ray executor runs inside refute.engine.use_executor('ray'), which connects to Ray")
    share = _share(ray, executor.workers, models)
    actor_class = ray.remote(max_restarts=0, **share)(_Worker)
    actors = pool.actors(max(1, min(executor.workers, len(pending))), actor_class.remote, share)
    idle = deque(range(len(actors)))
    running: dict[Any, tuple[int, _Chunk]] = {}  # a chunk's stream of results -> (actor, chunk)
    stored: set[tuple[str, int, str]] = set()
    try:
        while pending or running:
            while pending and idle:
                slot, chunk = idle.popleft(), pending.popleft()
                left = [_Plan(p.record, p.epoch, p.chain, p.seed, p.base) for p in chunk.left()]
                stream = actors[slot].run_chunk.options(num_returns="streaming").remote(run.id, job_box, left)
                running[stream] = (slot, chunk)
            ready, _ = ray.wait(list(running), num_returns=1)
            for stream in ready:
                slot, chunk = running[stream]
                try:
                    done: _Done = ray.get(next(stream))
                except StopIteration:
                    del running[stream]
                    idle.append(slot)
                    if chunk.left():  # the engine ended without some samples: never silently dropped
                        _retry(run.id, chunk, "the worker ended its chunk early", pending)
                    continue
                except RayError as exc:
                    del running[stream]
                    if isinstance(exc, RayActorError):  # the worker died: a fresh one takes its place
                        actors[slot] = pool.replace(actors[slot])
                    idle.append(slot)
                    if "ConfigError" in _cause(exc):  # a setting the worker cannot use: retrying cannot help
                        raise ConfigError(f"run {run.id}: a Ray worker could not run it: {_cause(exc)}; every "
                                          "sample stored so far is kept") from None
                    _retry(run.id, chunk, _cause(exc), pending)
                    continue
                if done.key in stored:
                    continue
                for key, reply in done.cache:
                    store.cache_put(key, reply)
                store.record_sample(done.sample, done.scores)
                stored.add(done.key)
                chunk.stored.add(done.key)
                bar.advance()
    except BaseException:
        pool.close()  # the run stops: so do the chunks still running (the next run starts new actors)
        raise


def _share(ray: Any, workers: int, models: dict[str, ModelBackend]) -> dict[str, float]:
    """Each actor's share of the cluster: CPUs, and GPUs for models on a GPU."""
    resources = ray.cluster_resources()
    share = {"num_cpus": min(1.0, float(resources.get("CPU", 1.0)) / max(1, workers))}
    if any(str(m.info.details.get("device", "")).startswith("cuda") or m.info.backend == "vllm"
           for m in models.values()):
        share["num_gpus"] = min(1.0, float(resources.get("GPU", 0.0)) / max(1, workers))
        if not share["num_gpus"]:
            raise ConfigError("the run's model is on a GPU, but the Ray cluster has none; run it with "
                              "--executor local, or on a cluster with GPUs")
    return share


def _retry(run_id: str, chunk: _Chunk, why: str, pending: deque[_Chunk]) -> None:
    chunk.tries += 1
    if chunk.tries >= TRIES:
        raise RefuteError(f"run {run_id}: {len(chunk.left())} samples failed on a Ray worker {chunk.tries} "
                          f"times (last: {why}); every sample stored so far is kept: fix the cause, then "
                          f"finish it with `refute run --resume {run_id}`")
    pending.appendleft(chunk)


def _cause(exc: BaseException) -> str:
    """What went wrong on the worker, in one line (Ray's messages carry the worker's traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:300] if lines else 'no message'}"
