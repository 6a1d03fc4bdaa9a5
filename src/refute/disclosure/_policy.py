"""The project's disclosure policy file (``disclosure.yaml``): how many reviewers must approve a
decision before it is final, and the default embargo of a coordinated disclosure.

    reviewers_required: 2     # approvals, under distinct names, that make a decision final
    embargo_days_default: 90  # a coordinated disclosure with no date is embargoed this long

A malformed file is a `SpecFileError` naming the file, line and field.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from refute._yaml import read_yaml, validate_doc

__all__ = ["DEFAULT_POLICY_FILE", "DisclosurePolicy", "load_policy"]

#: Where the policy is read from when no path is given (relative to the working directory).
DEFAULT_POLICY_FILE = "disclosure.yaml"


class DisclosurePolicy(BaseModel):
    """How findings are reviewed before they leave the project."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reviewers_required: int = Field(2, ge=1, le=20, description="Approvals, under distinct reviewer "
                                    "names, that make a decision final.")
    embargo_days_default: int = Field(90, ge=0, le=3650, description="Days a coordinated disclosure "
                                      "is embargoed when no date is given.")
    source: str = Field("built-in default", description="The file it was read from.", exclude=True)


def load_policy(path: str | Path | None = None) -> DisclosurePolicy:
    """The policy in ``path``; with no path, ``disclosure.yaml`` in the working directory when it
    exists, else the built-in default (2 reviewers, 90 days)."""
    if path is None:
        if not Path(DEFAULT_POLICY_FILE).is_file():
            return DisclosurePolicy()
        path = DEFAULT_POLICY_FILE
    doc = read_yaml(path, what="disclosure policy")
    policy = validate_doc(doc, DisclosurePolicy, what="disclosure policy")
    return policy.model_copy(update={"source": str(path)})
