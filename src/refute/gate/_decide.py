"""The gate: a deployment decision from a policy and measured intervals, with every reason.

Every interval is read at its conservative end:

* a threshold counts as **crossed** when the dangerous end of its interval crosses it (the upper
  bound for ``above``, the lower bound for ``below``), so a measurement too imprecise to exclude
  the danger counts as danger;
* a safeguard counts as **effective** only when the safe end clears each of its conditions (the
  lower bound for ``at_least``, the upper bound for ``at_most``);
* a measure with no data counts as crossed, and a safeguard without data as not effective.

A crossed threshold whose required safeguards are all effective gives ``deploy_with_safeguards``;
otherwise its ``if_unmitigated`` decision (``restrict`` or ``pause``). The policy's decision is
the most restrictive of its thresholds'. ``restrict`` and ``pause`` block a deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from refute.gate._policy import (
    DECISIONS,
    Decision,
    LoadedPolicy,
    PolicySpec,
    Requirement,
)
from refute.stats import conservative_end

__all__ = ["Check", "GateDecision", "Interval", "SafeguardOutcome", "ThresholdOutcome", "decide"]

Status = Literal["not crossed", "crossed", "not measured"]


class Interval(Protocol):
    """What the gate reads of a measurement (an estimate and its interval)."""

    @property
    def value(self) -> float: ...

    @property
    def low(self) -> float: ...

    @property
    def high(self) -> float: ...

    @property
    def confidence(self) -> float: ...


@dataclass(frozen=True)
class Check:
    """One comparison of an interval's conservative end with a limit."""

    measure: str
    rule: str  # "above 0.1", ">= 0.9"
    bound: Literal["lower", "upper"] | None  # the end that was compared; None when not measured
    value: float | None
    low: float | None
    high: float | None
    passed: bool  # for a threshold: crossed; for a safeguard condition: met
    text: str
    threshold: float | None = None  # the number in ``rule``; None only in results stored before it was kept


@dataclass(frozen=True)
class SafeguardOutcome:
    id: str
    description: str
    effective: bool
    checks: list[Check]


@dataclass(frozen=True)
class ThresholdOutcome:
    id: str
    kind: str
    threat_model: str
    description: str
    status: Status
    check: Check
    safeguards: list[SafeguardOutcome]
    decision: Decision
    reason: str
    only_by_uncertainty: bool = False  # crossed by the interval's end, not by the estimate


@dataclass(frozen=True)
class GateDecision:
    """The decision, whether it blocks, and one outcome (with its reason) per threshold."""

    policy: str
    policy_sha256: str | None
    decision: Decision
    thresholds: list[ThresholdOutcome]
    confidence: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.decision in ("restrict", "pause")

    @property
    def reasons(self) -> list[str]:
        return [f"{t.id}: {t.reason}" for t in self.thresholds]

    @property
    def required_safeguards(self) -> list[str]:
        return [s.id for t in self.thresholds if t.status != "not crossed" for s in t.safeguards]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "blocked": self.blocked}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateDecision:
        outcomes = []
        for t in d["thresholds"]:
            guards = [SafeguardOutcome(s["id"], s["description"], s["effective"],
                                       [_check(c) for c in s["checks"]]) for s in t["safeguards"]]
            outcomes.append(ThresholdOutcome(**{**t, "check": _check(t["check"]), "safeguards": guards}))
        return cls(d["policy"], d.get("policy_sha256"), d["decision"], outcomes, d.get("confidence"),
                   list(d.get("notes", [])))


def _check(d: dict[str, Any]) -> Check:
    """A stored check; one stored before thresholds were kept as numbers gets its number from the
    rule text it was written with ("above 0.1", ">= 0.9")."""
    if d.get("threshold") is None:
        d = {**d, "threshold": float(d["rule"].split()[-1])}
    return Check(**d)


def _fmt(m: Interval) -> str:
    return f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"


def _threshold_check(measure: str, m: Interval | None, above: bool, t: float) -> Check:
    rule = f"{'above' if above else 'below'} {t:g}"
    if m is None:
        return Check(measure, rule, None, None, None, None, True,
                     f"{measure} was not measured, so it counts as crossed", threshold=t)
    bound, end = conservative_end(m, "lower" if above else "higher")  # the dangerous end
    crossed = end > t if above else end < t
    side = ">" if above else "<"
    text = (f"{measure} = {_fmt(m)}; {bound} bound {end:.3f} {side if crossed else ('<=' if above else '>=')} "
            f"{t:g}: {'crossed' if crossed else 'not crossed'}")
    return Check(measure, rule, bound, m.value, m.low, m.high, crossed, text, threshold=t)


def _requirement_check(r: Requirement, m: Interval | None) -> Check:
    rule = str(r)
    if m is None:
        return Check(r.measure, rule, None, None, None, None, False,
                     f"{r.measure} was not measured, so the safeguard is not shown effective",
                     threshold=r.value)
    bound, end = conservative_end(m, "higher" if r.higher_is_safe else "lower")  # its conservative end must clear
    ok = end >= r.value if r.higher_is_safe else end <= r.value
    text = (f"{r.measure} = {_fmt(m)}; {bound} bound {end:.3f} "
            f"{'clears' if ok else 'does not clear'} {rule}")
    return Check(r.measure, rule, bound, m.value, m.low, m.high, ok, text, threshold=r.value)


def _most(decisions: list[Decision]) -> Decision:
    return max(decisions, key=DECISIONS.index, default="deploy")


def decide(policy: PolicySpec | LoadedPolicy, measurements: Mapping[str, Interval | None]) -> GateDecision:
    """The decision of ``policy`` on ``measurements`` (measure name -> interval, or None)."""
    spec = policy.spec if isinstance(policy, LoadedPolicy) else policy
    sha = policy.sha256 if isinstance(policy, LoadedPolicy) else None
    guards = {s.id: s for s in spec.safeguards}
    outcomes: list[ThresholdOutcome] = []
    confs = {m.confidence for m in measurements.values() if m is not None}
    for t in spec.thresholds:
        m = measurements.get(t.measure)
        above = t.crossed_if.above is not None
        check = _threshold_check(t.measure, m, above, t.crossed_if.value)
        status: Status = "not measured" if m is None else ("crossed" if check.passed else "not crossed")
        only = m is not None and check.passed and not (m.value > t.crossed_if.value if above
                                                        else m.value < t.crossed_if.value)
        if status == "not crossed":
            outcomes.append(ThresholdOutcome(t.id, t.kind, t.threat_model, t.description, status, check,
                                             [], "deploy", f"not crossed ({check.text})"))
            continue
        results = []
        for name in t.safeguards:
            g = guards[name]
            checks = [_requirement_check(r, measurements.get(r.measure)) for r in g.effective_if]
            results.append(SafeguardOutcome(g.id, g.description, all(c.passed for c in checks), checks))
        why = check.text + (" (the estimate itself is on the safe side; the interval's end is not)"
                            if only else "")
        if results and all(s.effective for s in results):
            decision: Decision = "deploy_with_safeguards"
            reason = (f"crossed ({why}); required safeguards shown effective: "
                      f"{', '.join(s.id for s in results)}")
        elif results:
            decision = t.if_unmitigated
            failing = [s.id for s in results if not s.effective]
            reason = (f"crossed ({why}); safeguard{'s' if len(failing) > 1 else ''} not shown "
                      f"effective: {', '.join(failing)} -> {decision}")
        else:
            decision = t.if_unmitigated
            reason = f"crossed ({why}); the policy names no safeguard for it -> {decision}"
        outcomes.append(ThresholdOutcome(t.id, t.kind, t.threat_model, t.description, status, check,
                                         results, decision, reason, only))
    notes = ["Conservative reading: a threshold is crossed when the dangerous end of its interval "
             "crosses; a safeguard is effective only when the safe end of each interval clears."]
    return GateDecision(spec.name, sha, _most([o.decision for o in outcomes]), outcomes,
                        confs.pop() if len(confs) == 1 else None, notes)
