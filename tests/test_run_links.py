"""Runs are linked through the store (a parent run and a role), never through their names."""

from __future__ import annotations

import pytest
from test_study_gate import ScriptedModel

from refute.errors import RunNotFoundError
from refute.redteam._campaign import run_campaign
from refute.report._document import run_report
from refute.store import Store


def test_a_redteam_campaign_links_its_capability_control_and_the_run_report_finds_it(tmp_path):
    with Store(tmp_path / "s.db") as store:
        campaign = run_campaign(store, ScriptedModel(), transforms=["base64", "roleplay"], limit=6,
                                capability_limit=5, progress=False)
        control = campaign.capability
        assert control is not None
        assert (control.parent_id, control.role) == (campaign.harmful.id, "capability")
        assert [r.id for r in store.children(campaign.harmful.id, role="capability")] == [control.id]
        doc = run_report(store, campaign.harmful.id)
        assert [v.run.id for v in doc.runs] == [campaign.harmful.id, control.id]
        assert doc.runs[1].role == "capability"
        # The names play no part: renaming either run changes nothing.
        store._db.execute("UPDATE runs SET name='something else'")
        assert [v.run.id for v in run_report(store, campaign.harmful.id).runs] == [campaign.harmful.id, control.id]


def test_a_link_to_a_run_that_does_not_exist_is_refused(tmp_path):
    with Store(tmp_path / "s.db") as store, pytest.raises(RunNotFoundError):
        store.create_run(kind="capability", name=None, model_spec="x", model_revision=None, model={}, config={},
                         versions={}, dataset_name="d", dataset_hash="h", n_planned=1, parent_id="nope1234",
                         role="capability")
