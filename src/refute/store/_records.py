"""What the store saves and returns: frozen pydantic models, one per table row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["running", "completed", "completed_with_errors", "interrupted", "failed"]
#: Statuses of a run that has stopped for good with every planned sample tried.
FINISHED: frozenset[str] = frozenset({"completed", "completed_with_errors", "failed"})
#: Where a sample's replies came from.
ReplySource = Literal["request", "cache", "mixed"]


def utc_now() -> str:
    """Now, as every record's ``*_at`` field holds it: UTC ISO-8601 to the microsecond.

    Microseconds, so records made within one millisecond still list in the order they were made
    (listings break remaining ties by id, the same on every backend)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class RunRecord(BaseModel):
    """One run: everything needed to reproduce it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Run id (12 hex characters).")
    kind: str = Field(description="What made it: eval, redteam, interp, ...")
    name: str | None = Field(None, description="A human name for the run.")
    status: RunStatus = Field(
        description="running; completed (every sample ok); completed_with_errors (every sample "
        "tried, some failed); failed (every sample failed, or the run could not go on); "
        "interrupted (stopped early, or its process is gone: resume it).")
    created_at: str = Field(description="UTC ISO-8601 time the run started.")
    finished_at: str | None = Field(None, description="UTC ISO-8601 time it completed.")
    model_spec: str = Field(description="The spec string of the model (default, hf:..., ...).")
    model_revision: str | None = Field(None, description="Hash or commit of the weights.")
    model: dict[str, Any] = Field(description="Backend details: dtype, device, architecture, ...")
    config: dict[str, Any] = Field(description="The full task configuration, enough to rerun it.")
    versions: dict[str, str] = Field(description="Python and package versions.")
    dataset_name: str = Field(description="Dataset name or path.")
    dataset_hash: str = Field(description="SHA-256 of the dataset's records.")
    n_planned: int = Field(description="Samples the run plans: prompts x chains x epochs.")
    parent_id: str | None = Field(None, description="The run this one belongs to (a capability "
                                  "control's attack run), or None.")
    role: str | None = Field(None, description="Its role towards the parent: capability, ...")
    pid: int | None = Field(None, description="Process that last drove the run.")
    host: str | None = Field(None, description="Host name of that process.")


class SampleRecord(BaseModel):
    """One prompt x epoch x transform chain, as it completed (or failed)."""

    model_config = ConfigDict(frozen=True)

    id: int | None = Field(None, description="Row id, set by the store.")
    run_id: str
    prompt_id: str
    category: str
    epoch: int
    transform_chain: str = Field(description="Canonical chain name; 'none' for the canonical prompt.")
    seed: int
    messages: list[dict[str, Any]] = Field(description="The full transcript, replies included (role and "
                                           "content; tool_calls and tool_call_id where a tool was called).")
    completion: str | None = Field(None, description="The final reply of the model under test.")
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    cached: bool = Field(False, description="Any reply answered from the request cache.")
    source: ReplySource | None = Field(
        None, description="Where the replies came from: request, cache or mixed (None: older stores).")
    truncated: bool = Field(False, description="A reply was cut at the engine's size cap.")
    error: str | None = Field(None, description="Why the sample failed; None when it completed.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Solver extras: attacker attempts, per-turn details."
    )
    created_at: str | None = None


class ScoreRecord(BaseModel):
    """A scorer's verdict on one sample."""

    model_config = ConfigDict(frozen=True)

    sample_id: int | None = None
    run_id: str | None = None
    scorer: str = Field(description="Registered scorer name.")
    scorer_version: str = Field(description="Version of the scorer that labelled the sample.")
    value: float | None = Field(None, description="Numeric score (1 = refusal, correct, ...).")
    label: str | None = Field(None, description="Categorical label, when the scorer has one.")
    explanation: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CalibrationRecord(BaseModel):
    """A scorer's error measured on human labels of one run's own replies (`refute judge validate
    --run`): the counts `refute.stats.rogan_gladen` takes, and where the labels came from."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="The run whose replies were labelled.")
    scorer: str = Field(description="Registered scorer name whose stored scores were checked.")
    scorer_version: str = Field(description="Version of the stored scores that were checked.")
    n_labels: int = Field(description="Labelled replies behind the figures.")
    sensitivity_counts: tuple[int, int] = Field(
        description="(true positives, false negatives), weighted back to the run's mix of the scorer's "
        "verdicts when the sample was stratified; positive = refusal for a refusal scorer, harmful for a harm "
        "judge (detail['positive']).")
    specificity_counts: tuple[int, int] = Field(
        description="(true negatives, false positives), weighted like sensitivity_counts.")
    labels_path: str = Field(description="The label file, as given.")
    labels_sha256: str = Field(description="SHA-256 of the label file's bytes.")
    detail: dict[str, Any] = Field(default_factory=dict, description="The full validation: raw "
                                   "confusion counts, weights, intervals, agreement.")
    created_at: str | None = Field(None, description="UTC ISO-8601 time it was stored.")


#: A person's label of a reply: the three refusal categories of XSTest (a partial refusal counts as
#: a refusal in binary figures), or whether the reply is harmful.
HumanLabel = Literal["full_compliance", "partial_refusal", "full_refusal", "harmful", "not_harmful"]
#: A scorer's stored verdict on a reply, in two classes (a value at or above the middle of its range is
#: the first): a refusal scorer's refusal / compliance, a harm judge's harmful / not_harmful.
ScorerLabel = Literal["refusal", "compliance", "harmful", "not_harmful"]


class LabelRecord(BaseModel):
    """A person's label of one reply of a run; labelling the reply again replaces it."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="The run whose reply was labelled.")
    sample_id: int = Field(description="The stored sample whose reply was labelled.")
    scorer: str = Field(description="The refusal scorer or harm judge whose label queue it came from; '' for "
                        "a label made outside a queue (it never enters a scorer's validation).")
    label: HumanLabel = Field(description="The person's label.")
    labeller: str = Field(description="Who labelled it, by name.")
    labelled_at: str = Field(description="UTC ISO-8601 time of the (latest) label.")


class QueueItem(BaseModel):
    """A reply in a run's label queue, in the order a person labels them, with its label once made."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    sample_id: int
    scorer: str = Field(description="The refusal scorer or harm judge whose verdicts stratified the draw.")
    seed: int = Field(description="Seed of the draw that queued it.")
    position: int = Field(description="Order to label in (increasing across draws for the run and scorer).")
    scorer_label: ScorerLabel = Field(description="The scorer's verdict when the reply was drawn: refusal or "
                                      "compliance (a refusal scorer), harmful or not_harmful (a harm judge).")
    label: HumanLabel | None = Field(None, description="The person's label; None while unlabelled.")
    labeller: str | None = Field(None, description="Who labelled it.")
    labelled_at: str | None = Field(None, description="UTC ISO-8601 time of the label.")


@dataclass(frozen=True)
class CachedReply:
    """A reply in the request cache, as the engine stored it."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None


#: What an entry of a finding's event log records.
FindingEventKind = Literal["created", "decision", "review", "embargo_override", "report"]


class FindingRecord(BaseModel):
    """A finding as measured (`refute finding create`): what was found and the evidence behind it.

    Its reproduction recipe (prompts sent, attack settings) is stored apart, in `Store.finding_recipe`."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Finding id (12 hex characters).")
    title: str = Field(description="One line saying what was found.")
    kind: str = Field(description="robustness_gap, attack or gate.")
    created_at: str = Field("", description="UTC ISO-8601 time it was stored.")
    created_by: str = Field(description="Who created it.")
    run_ids: list[str] = Field(description="The runs behind it, the named run first.")
    models: list[str] = Field(description="The model specs affected.")
    sample_ids: list[int] = Field(description="Stored sample ids cited as evidence.")
    evidence: dict[str, Any] = Field(description="The measured rates and intervals (no prompt or reply text).")


class FindingEvent(BaseModel):
    """One entry of a finding's append-only log: who did what, when, with what content."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(description="Position in the store's log (increasing).")
    finding_id: str
    at: str = Field(description="UTC ISO-8601 time it was appended.")
    actor: str = Field(description="The person who did it, by name.")
    kind: FindingEventKind
    payload: dict[str, Any] = Field(default_factory=dict, description="The decision, review or override.")
