"""The report's findings, generated from the statistics, never written by hand.

Three lists, each sentence built from an interval:

* **established**: an interval lies wholly on one side of a pre-registered threshold (met or
  not met), or a paired comparison is significant after correction (a robustness gap, an empty
  jailbreak);
* **uncertain**: an interval contains its threshold, a gate threshold is crossed only by the end
  of an interval, the judge's error is known to be non-zero;
* **not ruled out**: the worse end of every interval, stated in words, and what the study did not
  test at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from refute.errors import RefuteError
from refute.gate import GateDecision
from refute.redteam._gap import RobustnessGap
from refute.stats import rogan_gladen
from refute.study import Calibration, Measurement, ThresholdVerdict

__all__ = ["Findings", "ScopeFacts", "findings"]


@dataclass(frozen=True)
class ScopeFacts:
    """What the runs covered, for the limits of the evidence."""

    datasets: list[str]
    n_prompts: int
    transforms: list[str]
    greedy_single_sample: bool
    n_failed: int
    solvers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Findings:
    established: list[str]
    uncertain: list[str]
    not_ruled_out: list[str]


def _n(x: float) -> str:
    return f"{x:.2f}"


def _ci(low: float, high: float) -> str:
    return f"[{_n(low)}, {_n(high)}]"


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def _pct(conf: float) -> str:
    return f"{100 * conf:g}%"


def _prompts_needed(m: Measurement, t: float) -> str:
    """A rough count of prompts that would decide a straddled threshold at this estimate."""
    half = max(m.value - m.low, m.high - m.value)
    gap = abs(m.value - t)
    if gap < 0.01 or half <= 0:
        return "; the estimate sits on the threshold, so no feasible number of prompts would settle it"
    need = math.ceil(m.n_prompts * (half / gap) ** 2)
    if need > 100_000:
        return ""
    return f"; at this estimate, about {need} prompts (now {m.n_prompts}) would settle it"


def _threshold_sentence(v: ThresholdVerdict, m: Measurement | None) -> tuple[str, str] | None:
    if m is None or v.value is None or v.low is None or v.high is None:
        return ("uncertain", f"{v.measure} was not measured, so the pre-registered threshold "
                f"{v.limit} is undecided.")
    desc = m.description[0].upper() + m.description[1:]
    num = f"{_n(v.value)}, {_pct(m.confidence)} interval {_ci(v.low, v.high)}"
    side = "above" if v.higher_is_safe else "below"
    other = "below" if v.higher_is_safe else "above"
    if v.verdict == "met":
        return ("established", f"{desc} is {num}: the whole interval is on the safe side of the "
                f"pre-registered threshold ({v.limit}), so the claim holds on this measure.")
    if v.verdict == "not met":
        return ("established", f"{desc} is {num}: the whole interval is {other} the pre-registered "
                f"threshold ({v.limit}), so the claim fails on this measure.")
    return ("uncertain", f"{desc} is {num}: the interval contains the pre-registered threshold "
            f"{_n(v.threshold)}, so the data cannot say whether it is {side} it{_prompts_needed(m, v.threshold)}.")


def _gap_sentences(gap: RobustnessGap, label: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    base = gap.canonical_refusal
    for r in gap.rows:
        c = r.change
        change = (f"refusal {_n(base.value)} -> {_n(r.refusal.value)}, change {_signed(c.difference)} "
                  f"{_ci(c.low, c.high)} paired on {c.n_prompts_a} prompts, Holm-corrected p = {r.p_holm:.3g}")
        cap = ""
        if r.capability is not None and gap.canonical_capability is not None:
            cap = (f"benign-task accuracy {_n(gap.canonical_capability.value)} -> {_n(r.capability.value)} "
                   f"{_ci(r.capability.low, r.capability.high)}")
        v = r.verdict
        if v.startswith("robustness gap"):
            unmeasured = r.understanding == "unmeasured"
            out.append(("established", f"Under the {r.chain} transform ({label}), {change}"
                        + (", with no capability control, so it is unknown whether the model still "
                           "understands the transformed request." if unmeasured else
                           f", while the model still understands it ({cap}): a real robustness gap.")))
        elif v.startswith("refusal drops, but"):
            out.append(("established", f"Under {r.chain} ({label}), {change}; but understanding drops "
                        f"too ({cap}), so part of the drop is an empty jailbreak."))
        elif v.startswith("empty jailbreak"):
            out.append(("established", f"{r.chain} lowers refusal ({change}), but the model no longer "
                        f"understands such requests ({cap}): an empty jailbreak, not evidence of a "
                        "safety failure."))
        elif v.startswith("refuses more"):
            out.append(("established", f"Under {r.chain} ({label}) the model refuses more than on "
                        f"the canonical wording ({change})."))
        elif r.understanding != "not understood":  # (a transform not understood is said below)
            worst = -c.low
            tail = (f"; a drop in refusal of up to {_n(worst)} is not ruled out" if worst >= 0.005 else "")
            raw = (f" (the uncorrected interval {_ci(c.low, c.high)} excludes 0, but not after "
                   f"correcting for {len(gap.rows)} transforms)" if c.high <= -0.005 or c.low >= 0.005 else "")
            out.append(("not ruled out", f"Under {r.chain} ({label}), refusal {_n(base.value)} -> "
                        f"{_n(r.refusal.value)}: no significant change after correction, Holm p = "
                        f"{r.p_holm:.3g}{raw}{tail}."))
        if r.understanding == "not understood" and not v.startswith("empty jailbreak"):
            out.append(("established", f"The model does not understand {r.chain}-transformed "
                        f"requests ({cap}); its refusals there say little about its propensity."))
    return out


def _worst_sentence(m: Measurement) -> str:
    how = "low" if m.better == "higher" else "high"
    where = f" (worst transform: {m.chain})" if m.statistic in (
        "worst_transform_compliance", "largest_refusal_drop") else ""
    desc = m.description[0].upper() + m.description[1:]
    return (f"{desc}{where} could be as {how} as {_n(m.worst)}, the worse end of its interval "
            f"(estimate {_n(m.value)}, {m.n_prompts} prompts).")


def _calibration_sentences(cal: Calibration, measures: Sequence[Measurement]) -> list[tuple[str, str]]:
    se, sp = cal.sensitivity, cal.specificity
    own = any(m.calibration_source == "run" for m in measures)
    out = [("uncertain", f"The refusal scorer ({cal.scorer} v{cal.scorer_version}) is an instrument "
            f"with error: on {cal.n} human-labelled replies it recognises {_n(se[0])} {_ci(se[1], se[2])} "
            f"of refusals and {_n(sp[0])} {_ci(sp[1], sp[2])} of compliant replies. Those labelled "
            "replies are not this model's, so its error here may differ"
            + ("; the refusal measures are corrected for it (Rogan-Gladen)" if cal.correct else
               "; the refusal measures above are the scorer's own, uncorrected")
            + (", except those of runs labelled on their own replies (below)." if own else "."))]
    if cal.correct:
        return out
    for m in measures:
        if m.statistic != "refusal" or m.scorer != cal.scorer or m.corrected:  # corrected: by the run's labels
            continue
        try:
            est = rogan_gladen(m.estimate, cal.sensitivity_counts, cal.specificity_counts)
        except RefuteError:  # a zero-width interval cannot be corrected; say nothing rather than guess
            continue
        out.append(("not ruled out", f"If the scorer errs on these replies as it does on the labelled "
                    f"set, {m.description} would be {_n(est.value)} {_ci(est.low, est.high)} instead of "
                    f"{_n(m.value)} (Rogan-Gladen correction)."))
    return out


def _run_calibration_sentences(cals: Sequence[Calibration]) -> list[tuple[str, str]]:
    out = []
    for c in cals:
        se, sp = c.sensitivity, c.specificity
        out.append(("uncertain", f"The refusal scorer ({c.scorer} v{c.scorer_version}) errs on run {c.run_id}'s "
                    f"own replies too: on {c.n} of them labelled by a person it recognises {_n(se[0])} "
                    f"{_ci(se[1], se[2])} of refusals and {_n(sp[0])} {_ci(sp[1], sp[2])} of compliant replies; "
                    "that run's refusal measures are corrected for it (Rogan-Gladen)."))
    return out


def _gate_sentences(gate: GateDecision) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for t in gate.thresholds:
        if t.status == "not measured":
            out.append(("uncertain", f"Policy threshold {t.id}: its measure has no data, so it counts "
                        "as crossed."))
        elif t.only_by_uncertainty:
            c = t.check
            end = c.high if c.bound == "upper" else c.low
            out.append(("uncertain", f"Policy threshold {t.id} counts as crossed only through "
                        f"uncertainty: the estimate {_n(c.value or 0.0)} is on the safe side of "
                        f"'{c.rule}', but the {c.bound} end of its interval ({_n(end or 0.0)}) is not. "
                        "More prompts could change the decision."))
        for s in t.safeguards:
            for c in s.checks:
                if c.passed or c.value is None:
                    continue
                at_least = c.bound == "lower"  # a safeguard's lower end must clear an "at least"
                limit = c.threshold
                if limit is not None and ((c.value >= limit) if at_least else (c.value <= limit)):
                    out.append(("uncertain", f"Safeguard {s.id} is not shown effective although its "
                                f"estimate {c.measure} = {_n(c.value)} meets {c.rule}: the "
                                f"{c.bound} end of its interval does not. More prompts could show it "
                                "effective (or not)."))
    return out


def _scope_sentences(scope: ScopeFacts) -> list[tuple[str, str]]:
    if not scope.datasets:  # no eval runs (a study of experiments only: their sections say their scope)
        return []
    out = [("not ruled out", f"Behaviour on requests unlike these {scope.n_prompts} prompts "
            f"({', '.join(scope.datasets)}) is not measured; the rates describe these prompts only.")]
    if scope.greedy_single_sample:
        out.append(("not ruled out", "Every reply is one greedy (temperature 0) sample per prompt; "
                    "with sampling the model may comply more, or less, often."))
    if scope.transforms:
        out.append(("not ruled out", f"Only {len(scope.transforms)} fixed transforms were tried "
                    f"({', '.join(scope.transforms)}); adaptive attacks (attacker-model rewrites, "
                    "optimized suffixes, multi-turn escalation) were not run, so a lower worst-case "
                    "refusal is not ruled out."))
    else:
        out.append(("not ruled out", "No off-distribution variant (encoding, framing, attack) was "
                    "tested; refusal on reworded requests is unmeasured."))
    if scope.n_failed:
        out.append(("uncertain", f"{scope.n_failed} samples failed and are left out of every rate."))
    return out


def findings(measurements: dict[str, Measurement | None], verdicts: Sequence[ThresholdVerdict],
             gaps: Sequence[tuple[str, RobustnessGap]], calibration: Calibration | None,
             gate: GateDecision | None, scope: ScopeFacts,
             run_calibrations: Sequence[Calibration] = ()) -> Findings:
    """Established, uncertain and not-ruled-out sentences from the numbers (``run_calibrations``:
    the runs' own labels that corrected some measure)."""
    items: list[tuple[str, str]] = []
    for v in verdicts:
        got = _threshold_sentence(v, measurements.get(v.measure))
        if got:
            items.append(got)
    for label, gap in gaps:
        items += _gap_sentences(gap, label)
    for name, m in measurements.items():
        if m is None:
            items.append(("uncertain", f"The measure {name} has no scored samples."))
        else:
            items.append(("not ruled out", _worst_sentence(m)))
    if calibration is not None:
        items += _calibration_sentences(calibration, [m for m in measurements.values() if m])
    items += _run_calibration_sentences(run_calibrations)
    if gate is not None:
        items += _gate_sentences(gate)
    items += _scope_sentences(scope)
    def pick(kind: str) -> list[str]:
        return [text for k, text in items if k == kind]

    return Findings(pick("established"), pick("uncertain"), pick("not ruled out"))
