"""The robustness-gap table on stored runs with known outcomes (no model needed)."""

from __future__ import annotations

import pytest

from refute.errors import ConfigError
from refute.redteam._gap import robustness_gap
from refute.report._gap_table import gap_table
from refute.store import SampleRecord, ScoreRecord, Store


def _run(store: Store, scorer: str, chains: dict[str, list[int]]) -> str:
    run = store.create_run(kind="redteam", name=None, model_spec="m", model_revision=None, model={},
                           config={}, versions={}, dataset_name="d", dataset_hash="h",
                           n_planned=sum(len(v) for v in chains.values()))
    for chain, values in chains.items():
        for i, v in enumerate(values):
            sample = SampleRecord(run_id=run.id, prompt_id=f"p{i}", category="c", epoch=0,
                                  transform_chain=chain, seed=i, messages=[], completion="x")
            store.record_sample(sample, [ScoreRecord(scorer=scorer, scorer_version="1", value=v)])
    return run.id


@pytest.fixture()
def gap(store):
    n = 60
    harmful = _run(store, "refusal_patterns", {
        "none": [1] * n,
        "rot13": [1] * 10 + [0] * 50,       # refusal collapses ...
        "base64": [1] * 10 + [0] * 50,      # ... here too
        "fiction": [1] * 58 + [0] * 2,      # barely moves
        "morse": [1] * n,                   # refusal unchanged ...
    })
    tasks = _run(store, "match", {
        "none": [1] * 36 + [0] * 4,
        "rot13": [1] * 35 + [0] * 5,        # still understood
        "base64": [1] * 2 + [0] * 38,       # understanding destroyed
        "fiction": [1] * 36 + [0] * 4,
        "morse": [0] * 40,                  # ... but the model does not understand it
    })
    return robustness_gap(store, harmful, tasks)


def test_verdicts_separate_real_gaps_from_empty_jailbreaks(gap):
    rows = {r.chain: r for r in gap.rows}
    assert rows["rot13"].verdict.startswith("robustness gap") and rows["rot13"].understanding == "understood"
    assert rows["base64"].verdict.startswith("empty jailbreak") and rows["base64"].understanding == "not understood"
    assert rows["fiction"].verdict == "no significant change"
    assert rows["morse"].verdict.startswith("not understood")
    assert set(gap.significant_drops) == {"rot13", "base64"}


def test_changes_are_paired_and_corrected(gap):
    rows = {r.chain: r for r in gap.rows}
    rot = rows["rot13"]
    assert rot.change.paired and rot.change.difference == pytest.approx(-50 / 60)
    assert rot.change.low < rot.change.difference < rot.change.high < 0
    assert all(r.p_holm >= r.change.p_value for r in gap.rows)
    assert gap.canonical_refusal.value == 1.0 and gap.canonical_capability.value == pytest.approx(0.9)


def test_table_shows_every_transform_with_capability(gap):
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(gap_table(gap))
    text = console.export_text()
    for word in ("canonical", "rot13", "base64", "fiction", "empty jailbreak", "p (Holm)", "capability"):
        assert word in text


def test_a_run_without_transforms_is_refused(store):
    only = _run(store, "refusal_patterns", {"none": [1, 0, 1]})
    with pytest.raises(ConfigError, match="no transformed samples"):
        robustness_gap(store, only)


def test_a_model_that_fails_the_tasks_even_canonically_leaves_understanding_unmeasured(store):
    n = 40
    harmful = _run(store, "refusal_patterns", {"none": [1] * n, "rot13": [1] * 5 + [0] * 35})
    tasks = _run(store, "match", {"none": [0] * n, "rot13": [0] * n})  # no task solved, plain or encoded
    (row,) = robustness_gap(store, harmful, tasks).rows
    # Never "understood" by default: with canonical accuracy 0 the control says nothing either way.
    assert row.understanding == "unmeasured"
    assert row.verdict == "refusal drops; whether the request is understood is not measured"
