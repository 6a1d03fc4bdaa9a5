"""A task: a dataset, a prompt template, a solver and scorers, sampled for N epochs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from refute.models._base import GenerateConfig

__all__ = ["PluginSpec", "TaskConfig"]


class PluginSpec(BaseModel):
    """A registered plug-in by name, with the arguments it was built with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Registered name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")


class TaskConfig(BaseModel):
    """Everything that defines an eval; stored whole with the run so it can be rebuilt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(description="Built-in dataset name or a path to a JSONL/CSV file.")
    dataset_adapter: str | None = Field(None, description="Named adapter for public formats.")
    dataset_columns: dict[str, str] | None = Field(None, description="Column mapping for files.")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    epochs: int = Field(1, ge=1, description="Samples per prompt, each with its own seed.")
    system: str | None = Field(None, description="System prompt; None keeps the model's default.")
    template: str = Field("{prompt}", description="User message; {prompt} is the record's prompt.")
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    seed: int = Field(0, description="Run seed; every sample's seed derives from it.")
    solver: PluginSpec = Field(default_factory=lambda: PluginSpec(name="single_turn"))
    scorers: list[PluginSpec] | None = Field(
        None, description="Scorers; None picks match for tasks with targets, else refusal."
    )
    harmful: bool | None = Field(
        None, description="Declared harm label of the dataset (decides report redaction); None takes "
        "the built-in dataset's declaration and treats any other dataset as harmful.",
    )
    transforms: list[str] = Field(
        default_factory=lambda: ["none"],
        description="Transform chains, each applied to every prompt ('none' = canonical).",
    )

    @field_validator("template")
    @classmethod
    def _template_has_prompt(cls, value: str) -> str:
        if "{prompt}" not in value:
            raise ValueError("the template must contain {prompt}")
        return value
