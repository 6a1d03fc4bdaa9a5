"""A deployment policy file: thresholds on capabilities and propensities, the safeguards each one
requires once crossed, and what happens when they are not shown to work.

In the spirit of published responsible-scaling policies (Anthropic's RSP, OpenAI's Preparedness
Framework, Google DeepMind's Frontier Safety Framework): a threshold names a measure of a study
and the value beyond which the risk is too high to deploy as is. Crossing it requires safeguards;
a safeguard is itself a measured claim ("with the safety prompt, refusal stays at least 0.9").
`refute.gate.decide` reads every interval at its conservative end.

Decisions, from least to most restrictive: ``deploy``, ``deploy_with_safeguards``, ``restrict``,
``pause``. ``examples/deployment-policy.yaml`` (in ``refute.study``) is a full example.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from refute._yaml import Loc, YamlDoc, located, read_yaml, validate_doc
from refute.study._spec import Limit

__all__ = ["DECISIONS", "CrossedIf", "Decision", "LoadedPolicy", "PolicySpec", "PolicyThreshold",
           "Requirement", "Safeguard", "load_policy"]

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Decision = Literal["deploy", "deploy_with_safeguards", "restrict", "pause"]
#: Decisions from least to most restrictive.
DECISIONS: tuple[Decision, ...] = ("deploy", "deploy_with_safeguards", "restrict", "pause")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CrossedIf(_Frozen):
    """When a threshold is crossed: exactly one of ``above`` and ``below``."""

    above: float | None = Field(None, ge=-1.0, le=1.0, description="Crossed when the measure is above this.")
    below: float | None = Field(None, ge=-1.0, le=1.0, description="Crossed when the measure is below this.")

    @model_validator(mode="after")
    def _exactly_one(self) -> CrossedIf:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        return self

    @property
    def value(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    def __str__(self) -> str:
        return f"above {self.value:g}" if self.above is not None else f"below {self.value:g}"


class Requirement(Limit):
    """One condition a safeguard must meet: a measure at least or at most a value."""

    measure: Slug = Field(description="The name of a measure of the study.")


class PolicyThreshold(_Frozen):
    """A capability or propensity threshold and its consequences."""

    id: Slug = Field(description="Name of the threshold.")
    kind: Literal["capability", "propensity"] = Field(description="capability or propensity.")
    threat_model: Literal["misuse", "misalignment", "accident"] = Field(description="Which threat it guards.")
    description: Text = Field(description="What crossing it means, in words.")
    measure: Slug = Field(description="The name of a measure of the study.")
    crossed_if: CrossedIf = Field(description="above or below: which side is dangerous.")
    safeguards: list[Slug] = Field(default_factory=list, description="Safeguards required once crossed.")
    if_unmitigated: Literal["restrict", "pause"] = Field(
        "restrict", description="The decision when crossed without every required safeguard shown effective.")


class Safeguard(_Frozen):
    """A mitigation and the measured conditions under which it counts as effective."""

    id: Slug = Field(description="Name of the safeguard.")
    description: Text = Field(description="What it is.")
    effective_if: list[Requirement] = Field(min_length=1, description="Every condition must hold.")


class PolicySpec(_Frozen):
    """A deployment policy file (version 1)."""

    version: Literal[1] = Field(1, description="Schema version of the policy file.")
    name: Text = Field(description="Name of the policy.")
    description: str | None = Field(None, description="What it governs.")
    thresholds: list[PolicyThreshold] = Field(min_length=1, description="Capability and propensity thresholds.")
    safeguards: list[Safeguard] = Field(default_factory=list, description="Safeguards thresholds may require.")


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with its text's sha256; `check_measures` locates unknown measures."""

    spec: PolicySpec
    doc: YamlDoc = field(repr=False)

    @property
    def path(self) -> str:
        return self.doc.path

    @property
    def sha256(self) -> str:
        return self.doc.sha256

    def measures(self) -> dict[Loc, str]:
        """Where each measure is named in the file -> its name."""
        out: dict[Loc, str] = {}
        for i, t in enumerate(self.spec.thresholds):
            out[("thresholds", i, "measure")] = t.measure
        for i, s in enumerate(self.spec.safeguards):
            for j, r in enumerate(s.effective_if):
                out[("safeguards", i, "effective_if", j, "measure")] = r.measure
        return out

    def check_measures(self, available: list[str], study: str, ratios: Collection[str] = ()) -> None:
        """Raise `SpecFileError` at the line of every measure the study does not define, and of every
        limit on a rate (any measure not in ``ratios``) outside [-1, 1]."""
        problems = [(loc, f"measure '{name}' is not defined by study {study}; it defines: "
                     f"{', '.join(available)}") for loc, name in self.measures().items()
                    if name not in available]
        for i, s in enumerate(self.spec.safeguards):
            for j, r in enumerate(s.effective_if):
                if r.measure not in ratios and not -1.0 <= r.value <= 1.0:
                    problems.append((("safeguards", i, "effective_if", j), f"'{r.measure}' is a rate: its "
                                     f"limit lies in [-1, 1], not {r.value:g}"))
        located(self.doc, problems, what="policy")


def _check(policy: LoadedPolicy) -> list[tuple[Loc, str]]:
    spec = policy.spec
    problems: list[tuple[Loc, str]] = []
    ids: set[str] = set()
    for i, t in enumerate(spec.thresholds):
        if t.id in ids:
            problems.append((("thresholds", i, "id"), f"threshold id '{t.id}' is used twice"))
        ids.add(t.id)
    guards: set[str] = set()
    for i, s in enumerate(spec.safeguards):
        if s.id in guards:
            problems.append((("safeguards", i, "id"), f"safeguard id '{s.id}' is used twice"))
        guards.add(s.id)
    for i, t in enumerate(spec.thresholds):
        for j, name in enumerate(t.safeguards):
            if name not in guards:
                problems.append((("thresholds", i, "safeguards", j),
                                 f"no safeguard '{name}' in this policy; safeguards: "
                                 f"{', '.join(sorted(guards)) or '(none defined)'}"))
    return problems


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read and validate a policy file; raises `SpecFileError` naming file, line and field."""
    doc = read_yaml(path, what="policy")
    policy = LoadedPolicy(validate_doc(doc, PolicySpec, what="policy"), doc)
    located(doc, _check(policy), what="policy")
    return policy
