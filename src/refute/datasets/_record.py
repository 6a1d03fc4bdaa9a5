"""One row of a dataset, as every loader returns it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MatchKind = Literal["exact", "normalized", "includes", "regex", "numeric", "choice"]


class Record(BaseModel):
    """A prompt with its identity, category and (for capability tasks) a checkable answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Stable identifier, unique within the dataset.")
    prompt: str = Field(min_length=1, description="The request or task, as the user would send it.")
    category: str = Field("uncategorized", description="Harm category or task family.")
    target: str | None = Field(None, description="Known answer, for capability tasks.")
    match: MatchKind | None = Field(None, description="How `target` is checked against a reply.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Anything else.")

    @field_validator("category", mode="before")
    @classmethod
    def _no_category(cls, value: Any) -> Any:
        """``"category": null`` (as exported datasets often write it) means no category given."""
        return "uncategorized" if value is None else value
