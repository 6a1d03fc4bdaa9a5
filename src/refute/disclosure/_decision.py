"""The dual-use decision of a finding and its review, kept as an append-only event log.

A `Decision` weighs the uplift a finding gives a motivated bad actor beyond public knowledge
against its benefit to defenders, and chooses a path: publish, coordinated disclosure (an embargo
until a date) or withhold. It is final once the number of reviewers the `DisclosurePolicy` asks for
have approved it under their own names. Nothing is edited: a changed decision is a new ``decision``
event that supersedes the earlier one and voids its approvals (the event says whose), and the store
refuses UPDATE and DELETE on the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from refute.disclosure._policy import DisclosurePolicy
from refute.errors import ConfigError, DisclosureError
from refute.store import FindingEvent, FindingRecord, Store

__all__ = ["Decision", "FindingState", "DisclosurePath", "Severity", "Status", "Uplift", "decide", "finding_state",
           "review"]

Uplift = Literal["none", "marginal", "substantial"]
Severity = Literal["low", "medium", "high", "critical"]
DisclosurePath = Literal["publish", "coordinated", "withhold"]
Status = Literal["draft", "under review", "rejected", "final"]


class Decision(BaseModel):
    """What to disclose about a finding, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uplift: Uplift = Field(description="Uplift over public knowledge for a motivated bad actor.")
    uplift_reasoning: str = Field(min_length=1, description="Why: what is already public, what is new.")
    harm_domain: str = Field(min_length=1, description="cyber, bio, fraud, ...")
    severity: Severity = Field(description="How bad the worst realistic misuse would be.")
    breadth: int = Field(ge=0, description="How many models are affected.")
    defender_benefit: str = Field(min_length=1, description="What defenders gain from disclosure.")
    path: DisclosurePath = Field(description="publish, coordinated (embargo until a date) or withhold.")
    embargo_until: date | None = Field(None, description="coordinated only: no public report before it.")

    @model_validator(mode="after")
    def _embargo_goes_with_coordinated(self) -> Decision:
        if self.path == "coordinated" and self.embargo_until is None:
            raise ValueError("a coordinated disclosure needs embargo_until (a date)")
        if self.path != "coordinated" and self.embargo_until is not None:
            raise ValueError(f"embargo_until is for a coordinated disclosure, not '{self.path}'")
        return self


@dataclass(frozen=True)
class FindingState:
    """A finding as its log leaves it: the current decision and who has reviewed it."""

    finding: FindingRecord
    events: list[FindingEvent]
    decision: Decision | None
    decision_seq: int | None  # the event that holds the current decision
    approvals: list[str]  # reviewers who approved the current decision, in order
    rejections: list[str]
    required: int

    @property
    def status(self) -> Status:
        if self.decision is None:
            return "draft"
        if len(self.approvals) >= self.required:
            return "final"
        return "rejected" if self.rejections else "under review"

    def embargoed(self, today: date) -> bool:
        d = self.decision
        return d is not None and d.path == "coordinated" and d.embargo_until is not None and today < d.embargo_until


def finding_state(store: Store, finding_id: str, policy: DisclosurePolicy) -> FindingState:
    """Replay a finding's log: the last decision counts, with the reviews appended after it."""
    finding = store.get_finding(finding_id)
    events = store.finding_events(finding.id)
    decision: Decision | None = None
    seq: int | None = None
    approvals: list[str] = []
    rejections: list[str] = []
    for event in events:
        if event.kind == "decision":
            decision, seq = Decision.model_validate(event.payload["decision"]), event.seq
            approvals, rejections = [], []
        elif event.kind == "review" and event.payload.get("decision_seq") == seq:
            (approvals if event.payload.get("approve") else rejections).append(event.actor)
    return FindingState(finding, events, decision, seq, approvals, rejections, policy.reviewers_required)


def _name(who: str, option: str) -> str:
    name = " ".join(who.split())
    if not name:
        raise ConfigError(f"{option}: give a person's name")
    return name


def decide(store: Store, finding_id: str, decision: Decision, *, by: str,
           policy: DisclosurePolicy) -> FindingEvent:
    """Append ``decision`` as the finding's current one; an earlier decision is superseded and its
    approvals are voided (the event names them)."""
    before = finding_state(store, finding_id, policy)
    payload = {"decision": decision.model_dump(mode="json"), "supersedes": before.decision_seq,
               "voids_approvals": before.approvals, "was_final": before.status == "final"}
    return store.append_finding_event(before.finding.id, "decision", _name(by, "--by"), payload)


def review(store: Store, finding_id: str, *, reviewer: str, approve: bool, comment: str | None,
           policy: DisclosurePolicy) -> FindingState:
    """Sign the current decision off (or reject it) as ``reviewer``; returns the new state.

    Refused: no decision yet, a decision that is already final, or a reviewer who already reviewed
    this decision (a second approval under one name counts once, so it is an error)."""
    name = _name(reviewer, "--reviewer")
    state = finding_state(store, finding_id, policy)
    if state.decision is None or state.decision_seq is None:
        raise DisclosureError(f"finding {state.finding.id} has no decision to review yet; record one "
                              f"with `refute finding decide {state.finding.id} ...`")
    if state.status == "final":
        raise DisclosureError(f"finding {state.finding.id}: the decision is already final "
                              f"({len(state.approvals)}/{state.required} approvals); to change it, "
                              "record a new decision")
    if name in state.approvals or name in state.rejections:
        raise DisclosureError(f"finding {state.finding.id}: {name} has already reviewed this decision "
                              f"(event log: `refute finding show {state.finding.id}`); each reviewer "
                              "signs once")
    store.append_finding_event(state.finding.id, "review", name,
                               {"decision_seq": state.decision_seq, "approve": approve, "comment": comment})
    return finding_state(store, state.finding.id, policy)
