"""Measuring a stack as a whole (`refute layers`): does it hold where its layers' holes line up?

On harmful requests (plain, transformed and multi-turn) and on benign look-alikes, every layer is
measured alone and the stack together, from the same replies:

* the model answers each request twice through the engine (every sample stored, resumable):
  without the stack's system prompts and with them (and with each system prompt alone when there
  are several);
* input layers score the request; output layers score both replies; the judge (``refusal``)
  decides whether a reply written under a system prompt is a refusal;
* a layer *catches* a harmful request when it fires alone (an input or output layer above its
  threshold, on the reply without system prompts; a system prompt whose reply is a refusal);
  the stack catches it when any layer fires in the stack (output layers then read the reply
  written under the system prompts);
* the stack's miss rate measured directly is set against the product of the layers' miss rates
  (what independence predicts), with a clustered interval for the ratio (a base request and its
  variants are one cluster); above 1 means the holes line up;
* over-refusal is the same rule on benign look-alikes: each layer alone, the stack, and what each
  layer adds (the stack with it minus the stack without it, paired on the same requests);
* a Pareto sweep re-decides the stack over a grid of thresholds per layer (and the system prompts
  on or off) from the stored scores, without new generation.

A probe layer with ``fit:`` is fitted first on a seeded share of the base requests, and the stack
is measured on the others only. Replies stay in the store; the result holds ids and scores only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refute.datasets import Record, load_dataset
from refute.engine import PluginSpec, TaskConfig, run_task
from refute.errors import ConfigError
from refute.guard._layers import ProbeLayer, build_layer, fires
from refute.guard._plot import pareto_svg
from refute.guard._spec import LayerSpec, LoadedStack, ProbeFitSpec
from refute.interp import Probe, fit_probe_on_prompts
from refute.models import GenerateConfig, Message, ModelBackend
from refute.scorers import meaning_of
from refute.stats import Estimate, StackStats, paired_difference, pareto_front, rate, stack_statistics
from refute.store import Store

__all__ = ["MeasuredRow", "StackMeasurement", "measure_stack"]

#: The transform chains that make a multi-turn conversation.
MULTI_TURN = ("few_shot", "many_shot")
Say = Callable[[str], None]


def form_of(chain: str) -> str:
    if chain == "none":
        return "plain"
    return "multi-turn" if any(p in MULTI_TURN for p in chain.split("+")) else "transformed"


@dataclass
class MeasuredRow:
    """One measured request: ids and scores, never the reply."""

    key: str
    cluster: str
    harmful: bool
    chain: str
    form: str
    scores: dict[str, float | None] = field(default_factory=dict)  # input layers: on the request
    base: dict[str, float | None] = field(default_factory=dict)  # output layers + judge: reply without system prompts
    guarded: dict[str, float | None] = field(default_factory=dict)  # ... reply under all system prompts
    alone: dict[str, float | None] = field(default_factory=dict)  # judge on the reply under one system prompt alone


@dataclass
class StackMeasurement:
    """Everything `refute layers` reports, JSON-ready through `to_dict`."""

    stack: str
    stack_sha256: str
    model: str
    judge: str
    layers: list[dict[str, Any]]
    harmful: StackStats
    by_form: dict[str, Estimate]
    over_refusal_alone: dict[str, Estimate]
    over_refusal_stack: Estimate
    over_refusal_added: dict[str, dict[str, Any]]
    pareto: list[dict[str, Any]]
    runs: dict[str, str]
    probe_fits: dict[str, dict[str, Any]]
    rows: list[MeasuredRow]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "stack_sha256": self.stack_sha256, "model": self.model, "judge": self.judge,
                "layers": self.layers, "harmful": self.harmful.to_dict(),
                "by_form": {k: asdict(v) for k, v in self.by_form.items()},
                "over_refusal_alone": {k: asdict(v) for k, v in self.over_refusal_alone.items()},
                "over_refusal_stack": asdict(self.over_refusal_stack),
                "over_refusal_added": self.over_refusal_added, "pareto": self.pareto, "runs": self.runs,
                "probe_fits": self.probe_fits, "notes": self.notes, "rows": [asdict(r) for r in self.rows]}

    def measures(self) -> dict[str, Estimate]:
        """Named measures a policy can gate on: ``stack_miss``, ``stack_over_refusal``,
        ``independence_ratio``, ``catch.LAYER`` and ``over_refusal.LAYER``."""
        h = self.harmful
        out = {"stack_miss": h.stack_miss, "stack_over_refusal": self.over_refusal_stack,
               "independence_ratio": h.ratio}
        for name, est in zip(h.names, h.catch_alone, strict=True):
            out[f"catch.{name}"] = est
        out.update({f"over_refusal.{k}": v for k, v in self.over_refusal_alone.items()})
        return out

    def to_markdown(self) -> str:
        def pct(e: Estimate) -> str:
            return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"

        lines = [f"# Stack `{self.stack}` on `{self.model}`", "",
                 f"{self.harmful.n} harmful requests in {self.harmful.n_clusters} clusters; "
                 f"{self.over_refusal_stack.n_prompts} benign look-alikes. 95% intervals, clustered by base request.",
                 "", "## Each layer alone, and the stack", "",
                 "| layer | type | catch rate on harmful | over-refusal on benign | over-refusal it adds |",
                 "|---|---|---|---|---|"]
        for spec, est in zip(self.layers, self.harmful.catch_alone, strict=True):
            added = self.over_refusal_added.get(spec["name"], {})
            add = (f"{added['difference']:+.3f} [{added['low']:+.3f}, {added['high']:+.3f}]" if added else "")
            lines.append(f"| {spec['name']} | {spec['type']} | {pct(est)} | "
                         f"{pct(self.over_refusal_alone[spec['name']])} | {add} |")
        h = self.harmful
        lines += [f"| **stack** | | catch {1 - h.stack_miss.value:.3f}, miss {pct(h.stack_miss)} | "
                  f"{pct(self.over_refusal_stack)} | |", "",
                  "## Do the holes line up?", "",
                  f"- miss rate measured: {pct(h.stack_miss)}",
                  f"- miss rate if the layers failed independently: {pct(h.independent_miss)}",
                  f"- ratio measured / independent: {_ratio_text(h.ratio)} (above 1: the holes line up)", "",
                  h.to_markdown(), "", "## Stack miss rate by request form", "",
                  "| form | n | miss rate |", "|---|---|---|"]
        lines += [f"| {k} | {v.n_samples} | {pct(v)} |" for k, v in self.by_form.items()]
        front: dict[tuple[float, float], list[str]] = {}
        for p in sorted((p for p in self.pareto if p["front"]), key=lambda p: (p["miss"], p["over_refusal"])):
            front.setdefault((p["miss"], p["over_refusal"]), []).append(p["label"])
        lines += ["", f"## Pareto front ({len(front)} points of {len(self.pareto)} configurations; pareto.svg)", "",
                  "| # | stack miss | over-refusal | configuration |", "|---|---|---|---|"]
        for i, ((miss, over), labels) in enumerate(front.items(), 1):
            more = f" (and {len(labels) - 1} more)" if len(labels) > 1 else ""
            lines.append(f"| {i} | {miss:.3f} | {over:.3f} | {labels[0]}{more} |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _ratio_text(e: Estimate) -> str:
    def f(x: float) -> str:
        return "inf" if x == float("inf") else ("n/a" if x != x else f"{x:.2f}")
    return f"{f(e.value)} [{f(e.low)}, {f(e.high)}]"


# --- the prompts -----------------------------------------------------------------------------------

def _split(record_id: str, seed: int, fraction: float) -> bool:
    """True when the record is in the fitting share (seeded, stable across runs and machines)."""
    h = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def _write_jsonl(path: Path, records: Sequence[Record]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in records), encoding="utf-8")
    return str(path)


def _fit_probe(stack: LoadedStack, spec: LayerSpec, fit: ProbeFitSpec, backend: ModelBackend, *,
               refit: bool, say: Say) -> tuple[Probe, dict[str, Any]]:
    """The layer's probe, fitted on the fitting share unless the file already holds this fit."""
    path = stack.resolve(str(spec.path))
    meta_path = path.with_name(path.name + ".fit.json")
    want = {"fit": fit.model_dump(mode="json"), "model": backend.info.spec}
    if path.exists() and meta_path.exists() and not refit:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fit") == want["fit"] and meta.get("model") == want["model"]:
            say(f"probe '{spec.name}': reusing {path} (fitted on the same split)")
            return Probe.load(path), meta
    pos = [r for r in load_dataset(fit.positive).records if _split(r.id, fit.seed, fit.fraction)]
    neg = [r for r in load_dataset(fit.negative).records if _split(r.id, fit.seed, fit.fraction)]
    say(f"probe '{spec.name}': fitting on {len(pos)} + {len(neg)} requests at {', '.join(fit.sites)}")
    got = fit_probe_on_prompts(backend, [r.prompt for r in pos], [r.prompt for r in neg], fit.sites, seed=fit.seed,
                               n_boot=200)
    path.parent.mkdir(parents=True, exist_ok=True)
    got.probe.save(path)
    meta = {**want, "site": got.probe.site, "n_positive": len(pos), "n_negative": len(neg),
            "val_auroc": {k: (None if v != v else v) for k, v in got.val_auroc.items()},
            "metrics": {k: asdict(v) for k, v in got.probe.metrics.items()}}
    meta_path.write_text(json.dumps(meta, indent=2, default=_jsonable), encoding="utf-8")
    return got.probe, meta


# --- the runs ----------------------------------------------------------------------------------------

def _scorer_specs(stack: LoadedStack) -> tuple[list[PluginSpec], dict[str, str]]:
    """The engine's scorers (the judge and every output scorer layer), and the stored scorer name each
    output layer reads."""
    specs: dict[str, PluginSpec] = {}
    judge = stack.spec.measure.judge
    specs[judge] = PluginSpec(name=judge)
    reads: dict[str, str] = {}
    for layer in stack.spec.layers:
        if layer.type != "output_scorer":
            continue
        name = str(layer.scorer)
        have = specs.get(name)
        if have is not None and have.args != layer.args:
            raise ConfigError(f"{stack.path}: layer '{layer.name}': scorer '{name}' appears twice with different "
                              "args; `refute layers` scores each scorer once per reply")
        specs[name] = PluginSpec(name=name, args=dict(layer.args))
        reads[layer.name] = name
    return list(specs.values()), reads


def _system(stack: LoadedStack, names: Sequence[str]) -> str | None:
    prompts = [str(s.prompt) for s in stack.spec.layers if s.type == "system_prompt" and s.name in names]
    return "\n\n".join(prompts) if prompts else None


def _scores_by_sample(store: Store, run_id: str) -> dict[int, dict[str, float | None]]:
    out: dict[int, dict[str, float | None]] = {}
    for s in store.scores(run_id):
        out.setdefault(int(s.sample_id or 0), {})[s.scorer] = s.value
    return out


def _key(record_id: str, chain: str) -> str:
    return f"{record_id}|{chain}"


# --- the measurement ---------------------------------------------------------------------------------

def measure_stack(stack: LoadedStack, backend: ModelBackend, store: Store, *, out_dir: Path,
                  limit: int | None = None, benign_limit: int | None = None, refit: bool = False,
                  progress: bool = True, say: Say = print) -> StackMeasurement:
    """Measure ``stack`` on ``backend``; writes ``stack.json``, ``stack.md`` and ``pareto.svg`` to ``out_dir``."""
    m = stack.spec.measure
    limit = m.limit if limit is None else limit
    benign_limit = m.benign_limit if benign_limit is None else benign_limit
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    probes: dict[str, Probe] = {}
    fits: dict[str, dict[str, Any]] = {}
    held: dict[str, ProbeFitSpec] = {}
    for spec in stack.spec.layers:
        if spec.type == "probe" and spec.fit is not None:
            probes[spec.name], fits[spec.name] = _fit_probe(stack, spec, spec.fit, backend, refit=refit, say=say)
            held[spec.fit.positive] = held[spec.fit.negative] = spec.fit

    def eval_records(dataset: str, n: int | None) -> list[Record]:
        records = list(load_dataset(dataset).records)
        fit = held.get(dataset)
        if fit is not None:
            records = [r for r in records if not _split(r.id, fit.seed, fit.fraction)]
        return records[:n] if n else records

    harmful = eval_records(m.harmful, limit)
    benign = eval_records(m.benign, benign_limit)
    if len(harmful) < 2 or len(benign) < 2:
        raise ConfigError(f"{stack.path}: too few requests to measure on ({len(harmful)} harmful, {len(benign)} benign "
                          "after the probe's fitting share): raise measure.limit or lower fit.fraction")
    if held:
        notes.append(f"probe layers were fitted on a {next(iter(held.values())).fraction:.0%} share of the base "
                     "requests; the stack is measured on the rest only")
    data_h = _write_jsonl(out_dir / "harmful.jsonl", harmful)
    data_b = _write_jsonl(out_dir / "benign.jsonl", benign)

    scorers, reads = _scorer_specs(stack)
    judge = m.judge
    system_layers = [s.name for s in stack.spec.layers if s.type == "system_prompt"]
    conditions: dict[str, list[str]] = {"base": []}
    if system_layers:
        conditions["guarded"] = system_layers
        if len(system_layers) > 1:
            conditions.update({f"alone:{n}": [n] for n in system_layers})
    runs: dict[str, str] = {}
    samples: dict[tuple[str, bool], dict[str, Any]] = {}
    for cond, names in conditions.items():
        for is_harmful, path in ((True, data_h), (False, data_b)):
            task = TaskConfig(dataset=path, harmful=is_harmful, system=_system(stack, names),
                              generate=GenerateConfig(max_tokens=m.max_tokens, temperature=0.0), seed=m.seed,
                              scorers=scorers, transforms=["none", *m.transforms] if is_harmful else ["none"])
            label = f"layers:{stack.spec.name}:{cond}:{'harmful' if is_harmful else 'benign'}"
            say(f"{label}: generating")
            run = run_task(task, backend, store, name=label, kind="layers", progress=progress)
            runs[label] = run.id
            by_id = _scores_by_sample(store, run.id)
            samples[(cond, is_harmful)] = {_key(s.prompt_id, s.transform_chain): (s, by_id.get(int(s.id or 0), {}))
                                           for s in store.samples(run.id) if s.error is None}

    rows: list[MeasuredRow] = []
    for is_harmful in (True, False):
        for key, (sample, sc) in samples[("base", is_harmful)].items():
            chain = sample.transform_chain
            row = MeasuredRow(key, sample.prompt_id, is_harmful, chain, form_of(chain))
            row.base = dict(sc)
            got = samples.get(("guarded", is_harmful), {}).get(key)
            row.guarded = dict(got[1]) if got else {}
            for n in system_layers:
                alone = samples.get((f"alone:{n}", is_harmful), {}).get(key)
                row.alone[n] = (alone[1] if alone else row.guarded).get(judge)
            rows.append(row)
    missing = sum(1 for r in rows if system_layers and not r.guarded)
    if missing:
        notes.append(f"{missing} requests failed under the system prompts and count as not measured there")
        rows = [r for r in rows if not system_layers or r.guarded]

    # input layers score the request as the user sent it (no system prompt of the stack)
    def request(row: MeasuredRow) -> tuple[Message, ...]:
        msgs = samples[("base", row.harmful)][row.key][0].messages
        if msgs and msgs[-1]["role"] == "assistant":
            msgs = msgs[:-1]
        return tuple(Message(role=x["role"], content=x["content"]) for x in msgs)

    transcripts = {r.key: request(r) for r in rows}
    layers = {s.name: build_layer(stack, s, backend, probes.get(s.name)) for s in stack.spec.layers}
    for spec in stack.spec.layers:
        if spec.phase != "input" and not (spec.type == "callable" and spec.stage == "output"):
            continue
        layer = layers[spec.name]
        if isinstance(layer, ProbeLayer):
            say(f"probe '{spec.name}': scoring {len(rows)} requests")
            vals = layer.score_many([transcripts[r.key] for r in rows])
            for r, v in zip(rows, vals, strict=True):
                r.scores[spec.name] = v
        elif spec.phase == "input":
            for r in rows:
                r.scores[spec.name] = layer.score(transcripts[r.key], None)
        else:  # an output callable reads both replies
            for r in rows:
                for cond, target in (("base", r.base), ("guarded", r.guarded)):
                    got = samples.get((cond, r.harmful), {}).get(r.key)
                    if got is not None:
                        target[spec.name] = layer.score(transcripts[r.key], got[0].completion or "")

    decide = _Decider(stack, layers, reads, judge)
    harm = [r for r in rows if r.harmful]
    ben = [r for r in rows if not r.harmful]
    names = [s.name for s in stack.spec.layers]
    missed_alone = np.array([[not decide.alone(s, r) for s in stack.spec.layers] for r in harm], dtype=bool)
    missed_stack = np.array([not decide.stack(r) for r in harm], dtype=bool)
    stats = stack_statistics(missed_alone, missed_stack, names, [r.cluster for r in harm], rng=m.seed)
    by_form = {}
    for form in ("plain", "transformed", "multi-turn"):
        idx = [i for i, r in enumerate(harm) if r.form == form]
        if idx:
            by_form[form] = rate(missed_stack[idx].astype(float), [harm[i].cluster for i in idx])
    fired_b = {s.name: np.array([decide.alone(s, r) for r in ben], dtype=float) for s in stack.spec.layers}
    stack_b = np.array([decide.stack(r) for r in ben], dtype=float)
    over_alone = {n: rate(v) for n, v in fired_b.items()}
    over_stack = rate(stack_b)
    added: dict[str, dict[str, Any]] = {}
    for s in stack.spec.layers:
        without = np.array([decide.stack(r, drop=s.name) for r in ben], dtype=float)
        c = paired_difference(without, stack_b)
        added[s.name] = {"difference": c.difference, "low": c.low, "high": c.high, "p_value": c.p_value,
                         "method": c.method}
    pareto = decide.sweep(harm, ben, m.grid)
    result = StackMeasurement(stack.spec.name, stack.sha256, backend.info.spec, judge,
                              [{"name": s.name, "type": s.type, "phase": s.phase, "action": s.action,
                                "threshold": layers[s.name].threshold} for s in stack.spec.layers],
                              stats, by_form, over_alone, over_stack, added, pareto, runs, fits, rows, notes)
    (out_dir / "stack.json").write_text(json.dumps(result.to_dict(), indent=1, default=_jsonable), encoding="utf-8")
    (out_dir / "stack.md").write_text(result.to_markdown(), encoding="utf-8")
    numbers = _front_numbers(pareto)
    plotted = [{"miss": p["miss"], "over_refusal": p["over_refusal"],
                "label": numbers.get((p["miss"], p["over_refusal"]), "configured" if p["configured"] else "")}
               for p in pareto]
    (out_dir / "pareto.svg").write_text(pareto_svg(plotted, chosen=next(
        (i for i, p in enumerate(pareto) if p["configured"]), None), title=f"Stack {stack.spec.name}: "
        "miss rate against over-refusal across thresholds"), encoding="utf-8")
    return result


def _front_numbers(points: list[dict[str, Any]]) -> dict[tuple[float, float], str]:
    """1, 2, ... for the front's distinct spots, by miss rate: the plot's labels, the table's first column."""
    spots = sorted({(p["miss"], p["over_refusal"]) for p in points if p["front"]})
    return {spot: str(i) for i, spot in enumerate(spots, 1)}


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


class _Decider:
    """Whether a layer, or the stack, catches a request, from stored scores; thresholds may be
    overridden (the Pareto sweep) and system prompts turned off."""

    def __init__(self, stack: LoadedStack, layers: dict[str, Any], reads: dict[str, str], judge: str) -> None:
        self.specs = list(stack.spec.layers)
        self.layers, self.reads, self.judge = layers, reads, judge
        self.judge_threshold = meaning_of(judge).middle

    def _score(self, spec: LayerSpec, row: MeasuredRow, guarded: bool) -> float | None:
        if spec.phase == "input":
            return row.scores.get(spec.name)
        source = row.guarded if guarded else row.base
        return source.get(self.reads.get(spec.name, spec.name))

    def alone(self, spec: LayerSpec, row: MeasuredRow) -> bool:
        if spec.type == "system_prompt":
            return self._refused(row.alone.get(spec.name))
        return fires(spec, self.layers[spec.name].threshold, self._score(spec, row, guarded=False))

    def _refused(self, value: float | None) -> bool:
        return value is not None and value > self.judge_threshold

    def stack(self, row: MeasuredRow, *, drop: str | None = None, thresholds: dict[str, float | None] | None = None,
              system: bool = True) -> bool:
        specs = [s for s in self.specs if s.name != drop]
        has_system = system and any(s.type == "system_prompt" for s in specs)
        for s in specs:
            if s.type == "system_prompt":
                continue
            t = (thresholds or {}).get(s.name, self.layers[s.name].threshold)
            if fires(s, t, self._score(s, row, guarded=has_system and bool(row.guarded))):
                return True
        return has_system and self._refused(row.guarded.get(self.judge))

    def sweep(self, harm: list[MeasuredRow], ben: list[MeasuredRow], grid: int) -> list[dict[str, Any]]:
        """Stack miss rate and over-refusal for every combination of thresholds (each thresholded layer off
        or at a quantile of its scores) and system prompts on or off."""
        tunable = [s for s in self.specs if s.type != "system_prompt"]
        choices: list[list[float | None]] = []
        for s in tunable:
            vals = [self._score(s, r, g) for r in harm + ben for g in (False, True)]
            finite = np.array([v for v in vals if v is not None], dtype=float)
            qs = (sorted(set(np.quantile(finite, np.linspace(0.02, 0.98, grid)).round(6).tolist()))
                  if finite.size else [])
            configured = self.layers[s.name].threshold
            choices.append([None, *qs, *([configured] if configured is not None and configured not in qs else [])])
        while len(choices) and int(np.prod([len(c) for c in choices])) > 4096:  # keep the sweep small
            choices = [c[:: 2] if len(c) > 3 else c for c in choices]
        systems = [True, False] if any(s.type == "system_prompt" for s in self.specs) else [True]
        points: list[dict[str, Any]] = []
        for combo in itertools.product(*choices) if choices else [()]:
            th = {s.name: t for s, t in zip(tunable, combo, strict=True)}
            for sys_on in systems:
                miss = float(np.mean([not self.stack(r, thresholds=th, system=sys_on) for r in harm]))
                over = float(np.mean([self.stack(r, thresholds=th, system=sys_on) for r in ben]))
                configured = sys_on and all(th[s.name] == self.layers[s.name].threshold for s in tunable)
                parts = [f"{n}={'off' if t is None else f'{t:.3g}'}" for n, t in th.items()]
                if len(systems) > 1:
                    parts.append(f"system prompt {'on' if sys_on else 'off'}")
                points.append({"miss": miss, "over_refusal": over, "thresholds": th, "system": sys_on,
                               "configured": configured, "label": ", ".join(parts) or "no layers"})
        front = set(pareto_front([(p["miss"], p["over_refusal"]) for p in points]))
        for i, p in enumerate(points):
            p["front"] = i in front
        return points
