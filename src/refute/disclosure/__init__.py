"""Responsible disclosure: findings built from measured results, a reviewed dual-use decision kept
as an append-only log, and reports at two levels (vendor: full reproduction; public: defensive
findings only, checked for leaks and held back by an embargo).

    finding = create_finding(store, run_id, title="...")
    decide(store, finding.id, Decision(...), by="alice", policy=policy)
    review(store, finding.id, reviewer="bob", approve=True, comment=None, policy=policy)
    text = build_report(store, finding.id, "public", policy=policy)
"""

from refute.disclosure._create import FindingKind, create_finding, default_actor
from refute.disclosure._decision import (
    Decision,
    DisclosurePath,
    FindingState,
    Severity,
    Status,
    Uplift,
    decide,
    finding_state,
    review,
)
from refute.disclosure._policy import DEFAULT_POLICY_FILE, DisclosurePolicy, load_policy
from refute.disclosure._report import (
    EmbargoOverride,
    ReportLevel,
    build_report,
    public_leaks,
    render_public,
    render_vendor,
    reproduction_strings,
)

__all__ = [
    "DEFAULT_POLICY_FILE",
    "Decision",
    "DisclosurePath",
    "DisclosurePolicy",
    "EmbargoOverride",
    "FindingKind",
    "FindingState",
    "ReportLevel",
    "Severity",
    "Status",
    "Uplift",
    "build_report",
    "create_finding",
    "decide",
    "default_actor",
    "finding_state",
    "load_policy",
    "public_leaks",
    "render_public",
    "render_vendor",
    "reproduction_strings",
    "review",
]
