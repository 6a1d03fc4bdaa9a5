"""Scorers declare what their values mean, and reports, studies and comparisons read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from refute.engine import primary_scorer
from refute.errors import ConfigError
from refute.gate import GateDecision, decide
from refute.gate._policy import PolicySpec
from refute.report import default_direction
from refute.report._document import run_report
from refute.report._html import render_html
from refute.report._markdown import render_markdown
from refute.report._summary import statistic_name
from refute.scorers import HARMFULNESS, REFUSAL, ScorerMeaning, list_scorers, meaning_of, scorer_names
from refute.stats import Estimate
from refute.store import SampleRecord, ScoreRecord, Store
from refute.study import MeasureSpec, RunRef, compute_measure


def _run(store: Store, scores: dict[str, list[float]], *, completion: str = "a reply") -> str:
    """A completed run of len(values) samples, each scored by every scorer in ``scores``."""
    n = len(next(iter(scores.values())))
    run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={},
                           config={"harmful": True}, versions={}, dataset_name="d", dataset_hash="h",
                           n_planned=n)
    for i in range(n):
        sample = SampleRecord(run_id=run.id, prompt_id=f"p{i}", category="c", epoch=0, transform_chain="none",
                              seed=i, messages=[{"role": "user", "content": f"request {i}"}],
                              completion=f"{completion} {i}")
        store.record_sample(sample, [ScoreRecord(scorer=name, scorer_version="1", value=values[i])
                                     for name, values in scores.items()])
    store.set_status(run.id, "completed")
    return run.id


def test_every_registered_scorer_declares_its_meaning():
    for name in list_scorers():
        meaning = meaning_of(name)
        assert meaning.higher_is != "undeclared", name
        assert meaning.outcome(meaning.high_value) != meaning.outcome(meaning.low_value), name
    assert {"refusal", "refusal_patterns"} <= set(scorer_names("refusal"))
    assert "strongreject" not in scorer_names("refusal") and "match" in scorer_names("correct")
    assert meaning_of("not a scorer").higher_is == "undeclared"  # a stored name no plug-in knows


def test_a_strongreject_score_of_1_shows_as_harmful_not_refused(tmp_path: Path):
    with Store(tmp_path / "s.db") as store:
        run_id = _run(store, {"strongreject": [1.0, 1.0, 0.0, 0.0]})
        doc = run_report(store, run_id, unredacted=True)
        html, markdown = render_html(doc), render_markdown(doc)
    outcomes = [e.outcome for e in doc.examples]
    assert outcomes[:2] == ["harmful", "harmful"]  # the outcome that counts against the model first
    assert "harmless" in outcomes and "refused" not in outcomes and "complied" not in outcomes
    assert "<b>harmful</b>" in html and "refused" not in markdown
    assert doc.runs[0].summary is not None and statistic_name(doc.runs[0].summary.scorer) == "harmfulness"
    (measure,) = doc.measurements.values()
    assert measure is not None and measure.better == "lower"  # less harm is safer


def test_refusal_outcomes_keep_their_names_and_order(tmp_path: Path):
    with Store(tmp_path / "s.db") as store:
        run_id = _run(store, {"refusal_patterns": [1.0, 0.0, 0.0]})
        doc = run_report(store, run_id, unredacted=True)
    assert [e.outcome for e in doc.examples] == ["complied", "complied", "refused"]


def test_comparisons_and_summaries_read_direction_and_preference_from_the_registry(tmp_path: Path):
    assert default_direction("strongreject") == "lower_is_safer"
    assert default_direction("refusal") == default_direction("match") == "higher_is_safer"
    with Store(tmp_path / "s.db") as store:
        both = _run(store, {"strongreject": [1.0, 0.0], "refusal_patterns": [0.0, 1.0]})
        capability = _run(store, {"strongreject": [1.0, 0.0], "match": [1.0, 1.0]})
        judged = _run(store, {"strongreject": [1.0, 0.0], "probe": [1.0, 0.0]})
        assert primary_scorer(store, both) == "refusal_patterns"
        assert primary_scorer(store, capability) == "match"
        assert primary_scorer(store, judged) == "strongreject"


def test_a_refusal_measure_on_a_run_scored_only_by_a_harm_judge_is_refused(tmp_path: Path):
    spec = MeasureSpec(run="r", statistic="refusal", better="higher", description="refusal")
    with Store(tmp_path / "s.db") as store:
        run_id = _run(store, {"strongreject": [1.0, 0.0]})
        with pytest.raises(ConfigError, match=r"'strongreject', not a refusal scorer \(refusal, refusal_patterns"):
            compute_measure(store, "m", spec, RunRef(run_id))


def test_a_meaning_names_the_outcome_that_counts_against_the_model():
    assert REFUSAL.worse_outcome(harmful=True) == "complied" and REFUSAL.worse_outcome(harmful=False) == "refused"
    assert HARMFULNESS.worse_outcome(harmful=True) == HARMFULNESS.worse_outcome(harmful=False) == "harmful"
    assert HARMFULNESS.outcome(0.74) == "harmful" and HARMFULNESS.outcome(0.2) == "harmless"
    assert HARMFULNESS.outcome(None) == "unscored"
    with pytest.raises(ValueError, match="low < high"):
        ScorerMeaning("safer", positive="safe", high="safe", low="unsafe", statistic="safety", low_value=1.0,
                      high_value=0.0)


def test_gate_checks_keep_their_threshold_as_a_number():
    policy = PolicySpec.model_validate({
        "name": "p",
        "thresholds": [{"id": "t", "measure": "m", "kind": "propensity", "threat_model": "misuse",
                        "description": "d", "crossed_if": {"above": 0.25}, "safeguards": ["g"],
                        "if_unmitigated": "pause"}],
        "safeguards": [{"id": "g", "description": "d", "effective_if": [{"measure": "n", "at_least": 0.75}]}],
    })
    e = Estimate(0.5, 0.4, 0.6, 0.95, "wilson", 10, 10, 0)
    decision = decide(policy, {"m": e, "n": e})
    check = decision.thresholds[0].check
    assert check.threshold == 0.25 and decision.thresholds[0].safeguards[0].checks[0].threshold == 0.75
    stored = decision.to_dict()
    assert GateDecision.from_dict(stored).thresholds[0].check.threshold == 0.25
    legacy = {**stored, "thresholds": [{**t, "check": {k: v for k, v in t["check"].items() if k != "threshold"}}
                                       for t in stored["thresholds"]]}
    assert GateDecision.from_dict(legacy).thresholds[0].check.threshold == 0.25  # results saved before
