"""The settings of one LoRA fine-tuning run: every field shapes the adapter, and is saved with it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Method", "TrainConfig"]

Method = Literal["sft", "dpo"]
#: Settings that may differ when a run is resumed: they do not change the adapter it ends with.
RESUME_FREE = frozenset({"out", "save_every"})


class TrainConfig(BaseModel):
    """A LoRA fine-tuning run: base model, data, output folder and hyperparameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="The base model spec (default, hf:DIR, ...); may carry +lora: edits.")
    data: Path = Field(description="JSONL training rows: SFT {id, prompt, completion} or DPO {id, prompt, "
                                   "chosen, rejected}.")
    out: Path = Field(description="Folder to write the adapter into; it must not exist yet.")
    method: Method = Field("sft", description="sft: cross-entropy on completions; dpo: Rafailov et al. 2023.")
    epochs: int = Field(3, ge=1, description="Passes over the data, unless `steps` is given.")
    steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides `epochs`.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW).")
    batch_size: int = Field(4, ge=1, description="Rows per forward pass (DPO: pairs).")
    grad_accum: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    max_length: int = Field(512, ge=2, description="Most tokens in prompt plus completion; the completion is "
                                                   "cut at the end.")
    warmup: float = Field(0.1, ge=0, le=1, description="Fraction of the steps the learning rate rises over "
                                                      "(linearly), before it falls linearly to 0.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradients are clipped to this global norm.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator (the update is alpha / r * BA).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] | None = Field(
        None, description="Module names to adapt; None: the attention and MLP projections the model has.")
    beta: float = Field(0.1, gt=0, description="DPO: strength of the pull towards the reference model.")
    seed: int = Field(0, ge=0, description="LoRA initialisation, dropout and data order derive from it.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Base weights: auto is bf16 where the CPU supports it; the adapter trains in fp32.")
    device: str = Field("cpu", description="torch device.")
    save_every: int = Field(50, ge=1, description="Steps between checkpoints.")

    @field_validator("lr", "beta", "weight_decay", "max_grad_norm", "warmup")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or not all(name.strip() for name in value)):
            raise ValueError("name at least one module, e.g. q_proj,v_proj")
        return value

    @model_validator(mode="after")
    def _paths(self) -> TrainConfig:
        if self.out.resolve() == self.data.resolve():
            raise ValueError("--out is the data file")
        return self

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        return self.model_dump(mode="json", exclude=set(RESUME_FREE))

    def hyperparameters(self) -> dict[str, Any]:
        """Everything but the paths and the model, as saved in the manifest."""
        return self.model_dump(mode="json", exclude={"model", "data", "out"})
