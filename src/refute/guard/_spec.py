"""A guard-stack file: the safeguard layers `refute serve` applies in order, and what `refute layers`
measures them on.

A layer has a type, a threshold and an action:

* ``probe``: a saved linear probe (`refute interp probe`) on the served model's activations at the
  prompt; fires when its score is above the threshold (default: the probe's own). ``fit:`` lets
  `refute layers` fit it on part of the prompts first (it is then measured on the rest only).
* ``input_scorer``: any registered scorer applied to the request (its text is the scored reply).
* ``system_prompt``: a safety system prompt, put before the request's own system message.
* ``output_scorer``: any registered scorer (``refusal``, ``strongreject``, ...) on the reply.
* ``callable``: a Python function registered with `refute.guard.guard_layer`, at ``stage``
  input or output.

A layer *fires* when its score is above its threshold (``fires_when: below`` turns that round).
Then its action: ``block`` answers with the layer's message instead (the request never reaches the
model, or the reply never reaches the client), ``flag`` only records it, ``rewrite`` replaces the
request's last user message (input) or the reply (output) with ``rewrite`` (``{text}`` is the
original). A system prompt does not fire while serving; when measured, it *catches* a harmful
request when the reply written under it is a refusal (by the stack's ``measure.judge``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from refute._yaml import Loc, located, read_yaml, validate_doc
from refute.errors import ConfigError

__all__ = ["Action", "LayerSpec", "LayerType", "LoadedStack", "MeasureSettings", "ProbeFitSpec", "StackSpec",
           "load_stack", "parse_stack"]

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
LayerType = Literal["probe", "input_scorer", "system_prompt", "output_scorer", "callable"]
Action = Literal["block", "flag", "rewrite"]

#: Which side of the model each layer type sits on (a callable says so itself).
STAGE_OF: dict[str, str] = {"probe": "input", "input_scorer": "input", "system_prompt": "system",
                            "output_scorer": "output"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProbeFitSpec(_Frozen):
    """Fit the probe before measuring: on a seeded share of the base requests of both sets; the
    stack is then measured on the other requests only (held out)."""

    positive: Text = Field("harmful", description="Requests the probe should fire on (dataset name or file).")
    negative: Text = Field("benign-lookalike", description="Requests it should not fire on.")
    sites: list[Text] = Field(default_factory=lambda: ["resid_pre.8", "resid_pre.12", "resid_pre.16"],
                              min_length=1, description="Sites to fit at; the best on validation is kept.")
    fraction: float = Field(0.5, gt=0.0, lt=1.0, description="Share of base requests used to fit.")
    seed: int = Field(0, description="Seed of the split and the fit.")


class LayerSpec(_Frozen):
    """One safeguard layer."""

    name: Slug = Field(description="Name of the layer in logs, tables and plots.")
    type: LayerType = Field(description="probe, input_scorer, system_prompt, output_scorer or callable.")
    action: Action = Field("block", description="What happens when it fires: block, flag or rewrite.")
    threshold: float | None = Field(None, description="Fires when the score is above this (default: the "
                                    "probe's own threshold, or the middle of the scorer's range).")
    fires_when: Literal["above", "below"] = Field("above", description="above: score > threshold "
                                                  "fires; below: score < threshold fires.")
    path: str | None = Field(None, description="probe: the probe file (relative to the stack file).")
    fit: ProbeFitSpec | None = Field(None, description="probe: fit it first when measuring (refute layers).")
    scorer: Slug | None = Field(None, description="input_scorer / output_scorer: a registered scorer name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Arguments of the scorer or callable.")
    prompt: Text | None = Field(None, description="system_prompt: its text.")
    layer: Slug | None = Field(None, description="callable: the name it was registered under.")
    stage: Literal["input", "output"] | None = Field(None, description="callable: input or output.")
    message: Text | None = Field(None, description="Reply sent when this layer blocks (default: the "
                                 "stack's refusal_message).")
    rewrite: Text | None = Field(None, description="rewrite: the new request or reply; {text} is the old one.")

    @model_validator(mode="after")
    def _by_type(self) -> LayerSpec:
        need = {"probe": ["path"], "input_scorer": ["scorer"], "output_scorer": ["scorer"],
                "system_prompt": ["prompt"], "callable": ["layer", "stage"]}[self.type]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.type} layer needs '{missing[0]}'")
        allowed = {"probe": {"path", "fit"}, "input_scorer": {"scorer", "args"}, "output_scorer": {"scorer", "args"},
                   "system_prompt": {"prompt"}, "callable": {"layer", "stage", "args"}}[self.type]
        extra = [k for k in ("path", "fit", "scorer", "prompt", "layer", "stage") if getattr(self, k) is not None
                 and k not in allowed]
        if self.args and "args" not in allowed:
            extra.append("args")
        if extra:
            raise ValueError(f"'{extra[0]}' does not apply to a {self.type} layer")
        if self.type == "system_prompt" and (self.threshold is not None or self.rewrite is not None):
            raise ValueError("a system_prompt layer has no threshold or rewrite: it is always applied")
        if self.action == "rewrite" and self.rewrite is None and self.type != "system_prompt":
            raise ValueError("action rewrite needs 'rewrite': the new text ({text} is the old one)")
        return self

    @property
    def phase(self) -> str:
        """input, system or output: where the layer acts."""
        return STAGE_OF.get(self.type) or str(self.stage)


class MeasureSettings(_Frozen):
    """What `refute layers` measures the stack on."""

    harmful: Text = Field("harmful", description="Harmful requests (dataset name or JSONL/CSV file).")
    benign: Text = Field("benign-lookalike", description="Benign look-alikes, for over-refusal.")
    limit: int | None = Field(40, ge=2, description="Harmful base requests measured (after any probe fit split).")
    benign_limit: int | None = Field(40, ge=2, description="Benign requests measured.")
    transforms: list[Text] = Field(default_factory=lambda: ["roleplay", "few_shot"],
                                   description="Transform chains besides the plain request; few_shot and "
                                   "many_shot make multi-turn conversations.")
    max_tokens: int = Field(32, ge=1, description="Most new tokens per reply.")
    judge: Slug = Field("refusal", description="Scorer deciding whether a reply is a refusal (for "
                        "system_prompt layers).")
    seed: int = Field(0, description="Run seed.")
    grid: int = Field(7, ge=2, le=50, description="Thresholds tried per thresholded layer in the Pareto sweep.")


class StackSpec(_Frozen):
    """A guard-stack file (version 1)."""

    version: Literal[1] = Field(1, description="Schema version of the stack file.")
    name: Slug = Field(description="Name of the stack.")
    description: str | None = Field(None, description="What the stack is for, in words.")
    refusal_message: Text = Field("I can't help with that request.", description="Reply sent when a "
                                  "layer blocks (unless the layer has its own message).")
    on_error: Literal["block", "pass"] = Field("block", description="When a layer raises: block the "
                                               "request (fail closed) or go on without the layer.")
    layers: list[LayerSpec] = Field(default_factory=list, description="Layers, applied in order.")
    measure: MeasureSettings = Field(default_factory=MeasureSettings,
                                     description="What refute layers measures it on.")


@dataclass(frozen=True)
class LoadedStack:
    """A validated stack and where it came from (relative probe paths resolve against ``base``)."""

    spec: StackSpec
    path: str
    base: Path
    sha256: str = ""

    def resolve(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.base / q


_ORDER = {"input": 0, "system": 1, "output": 2}


def _check(spec: StackSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    seen: dict[str, int] = {}
    last = 0
    for i, layer in enumerate(spec.layers):
        if layer.name in seen:
            problems.append((("layers", i, "name"),
                             f"layer name '{layer.name}' is used twice (also layers[{seen[layer.name]}])"))
        seen.setdefault(layer.name, i)
        order = _ORDER[layer.phase]
        if order < last:
            problems.append((("layers", i, "type"), f"layer '{layer.name}' ({layer.phase}) comes after a later "
                             "stage: list input layers, then system prompts, then output layers"))
        last = max(last, order)
    return problems


def parse_stack(data: Any, *, path: str = "<stack>", base: Path | None = None) -> LoadedStack:
    """A stack from already-parsed data (a test, a study's inline stack)."""
    spec = StackSpec.model_validate(data)
    problems = _check(spec)
    if problems:
        raise ConfigError(f"{path}: {problems[0][1]}")
    return LoadedStack(spec, path, base or Path.cwd())


def load_stack(path: str | Path) -> LoadedStack:
    """Read and validate a stack file; a `SpecFileError` names the file, line and field."""
    doc = read_yaml(path, what="guard stack")
    spec = validate_doc(doc, StackSpec, what="guard stack")
    located(doc, _check(spec), what="guard stack")
    return LoadedStack(spec, str(path), Path(path).resolve().parent, doc.sha256)
