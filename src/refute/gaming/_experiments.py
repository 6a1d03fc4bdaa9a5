"""The experiments' registry and the one way to run any of them.

An experiment is a settings model (frozen pydantic, every field with a default and a description:
the CLI's options and a study run's ``settings:`` come from it) and a function
``run(settings, ctx) -> ExperimentResult``. `run_experiment` validates the settings, runs it,
stamps the runtime and saves ``result.json`` (and the report is written by the caller, one layer up).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from refute.errors import ConfigError
from refute.gaming._result import ExperimentResult
from refute.registry import load_plugins

if TYPE_CHECKING:
    from refute.models import ModelBackend
    from refute.store import Store

__all__ = ["EXPERIMENTS", "Context", "Experiment", "experiment", "experiment_names", "get_experiment",
           "parse_settings", "run_experiment", "settings_digest"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class Context:
    """What an experiment may use: the store for its samples, a folder for its files, models by spec
    (each loaded once and shared by everyone who asks for it), progress bars and a line printer."""

    store: Store
    out_dir: Path
    models: Callable[[str], ModelBackend]
    progress: bool = True
    say: Say = print


S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    summary: str  # one sentence, for --help and listings
    settings: type[BaseModel]
    run: Callable[[Any, Context], ExperimentResult]
    #: Settings fields that name model specs (loaded through ``Context.models``).
    model_fields: tuple[str, ...] = ()
    #: The CLI group the experiment's command sits in (``refute gaming NAME``, ``refute awareness NAME``).
    group: str = "gaming"
    #: The command's name within its group (default: the experiment's name).
    command: str | None = None

    @property
    def command_name(self) -> str:
        return self.command or self.name


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, *, title: str, summary: str, settings: type[S], model_fields: tuple[str, ...] = (),
               group: str = "gaming", command: str | None = None,
               ) -> Callable[[Callable[[S, Context], ExperimentResult]], Callable[[S, Context], ExperimentResult]]:
    """Register ``run(settings, ctx)`` as the experiment ``name`` (the command ``refute GROUP COMMAND``)."""
    def register(run: Callable[[S, Context], ExperimentResult]) -> Callable[[S, Context], ExperimentResult]:
        if name in EXPERIMENTS:
            raise ConfigError(f"experiment '{name}' is registered twice")
        EXPERIMENTS[name] = Experiment(name, title, summary, settings, run, model_fields, group, command)
        return run
    return register


def experiment_names(group: str | None = None) -> list[str]:
    """Registered experiments (of ``group`` only, when given), by name."""
    return sorted(n for n, e in EXPERIMENTS.items() if group is None or e.group == group)


def get_experiment(name: str) -> Experiment:
    """The experiment ``name``; plug-ins (refute's own upper packages among them) are loaded on a miss."""
    if name not in EXPERIMENTS:
        load_plugins()
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment '{name}'; choose one of: {', '.join(experiment_names())}") from None


def parse_settings(name: str, values: Mapping[str, Any] | BaseModel | None, *, where: str = "settings") -> BaseModel:
    """``values`` validated as experiment ``name``'s settings; a `ConfigError` names each bad field."""
    exp = get_experiment(name)
    if isinstance(values, exp.settings):
        return values
    raw = values.model_dump() if isinstance(values, BaseModel) else dict(values or {})
    try:
        return exp.settings.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        fields = ", ".join(exp.settings.model_fields)
        raise ConfigError(f"experiment '{name}': {problems} (its settings: {fields})") from None


def settings_digest(name: str, settings: BaseModel) -> str:
    """12 hex digits naming these settings of this experiment (result folders, reuse in studies)."""
    text = json.dumps({"experiment": name, "settings": settings.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_experiment(name: str, settings: Mapping[str, Any] | BaseModel | None, ctx: Context) -> ExperimentResult:
    """Run experiment ``name`` with ``settings`` (defaults where missing); saves ``ctx.out_dir/result.json``."""
    exp = get_experiment(name)
    parsed = parse_settings(name, settings)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = exp.run(parsed, ctx)
    result = replace(result, experiment=name, settings=parsed.model_dump(mode="json"),
                     runtime_s=time.perf_counter() - start)
    result.save(ctx.out_dir)
    return result
