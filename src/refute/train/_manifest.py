"""``refute_train.json``: what an adapter was trained on, how, and how it went.

It sits beside the adapter (and in every checkpoint). ``base.fingerprint`` is what ``BASE+lora:DIR``
checks before it merges the adapter (`refute.models._lora.check_adapter_base`): an adapter is
refused on any other base model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from refute.models._fingerprint import TRAIN_MANIFEST
from refute.train._config import Method

__all__ = ["BaseRecord", "DataRecord", "TrainManifest", "read_manifest", "write_json"]


class BaseRecord(BaseModel):
    """The base model the adapter was trained on."""

    model_config = ConfigDict(frozen=True)

    spec: str = Field(description="The base model spec as given (edits included).")
    revision: str | None = Field(None, description="Hub commit or content hash the backend reported.")
    config_sha256: str = Field(description="SHA-256 of the model config (refute.models._fingerprint).")
    weights_sha256: str = Field(description="SHA-256 of parameter names, shapes and sampled values.")
    fingerprint: str = Field(description="SHA-256 of the two: what +lora: checks.")


class DataRecord(BaseModel):
    """The training file."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="The file as given.")
    sha256: str = Field(description="SHA-256 of its bytes.")
    rows: int = Field(ge=1, description="Training rows in it.")
    method: Method = Field(description="sft or dpo.")
    truncated: int = Field(ge=0, description="Rows whose completion was cut to fit --max-length.")


class TrainManifest(BaseModel):
    """One fine-tuning run: saved with the adapter it wrote, and with each checkpoint."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = Field(1, description="Format version.")
    refute_version: str = Field(description="refute's version.")
    libraries: dict[str, str] = Field(description="torch, transformers and peft versions.")
    created: str = Field(description="When it was written (UTC, ISO 8601).")
    finished: bool = Field(description="True for the final adapter; False in a checkpoint.")
    base: BaseRecord
    data: DataRecord
    adapter_spec: str = Field(description="The model spec that loads this adapter: BASE+lora:OUT.")
    hyperparameters: dict[str, Any] = Field(description="Every training setting (TrainConfig).")
    target_modules: list[str] = Field(description="The module names LoRA adapted.")
    seed: int = Field(description="LoRA initialisation, dropout and data order derive from it.")
    steps: int = Field(ge=0, description="Optimizer steps done.")
    total_steps: int = Field(ge=1, description="Optimizer steps planned.")
    tokens: int = Field(ge=0, description="Non-padding tokens in every forward pass of the policy.")
    completion_tokens: int = Field(ge=0, description="Of which completion tokens (those with a loss).")
    first_loss: float | None = Field(None, description="The first step's loss.")
    final_loss: float | None = Field(None, description="The last step's loss.")
    wall_s: float = Field(ge=0, description="Seconds in optimizer steps (not loading, saving), summed over resumes.")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file beside ``path``, flushed, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=1, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(directory: str | Path) -> TrainManifest:
    """The manifest of an adapter (or checkpoint) folder."""
    return TrainManifest.model_validate_json((Path(directory) / TRAIN_MANIFEST).read_text(encoding="utf-8"))
