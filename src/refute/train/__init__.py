"""Fine-tuning: LoRA adapters trained on a local model (SFT or DPO), checkpointed, resumable, and saved
with a manifest that ties them to their base model. Load one with ``BASE+lora:DIR``."""

from refute.train._config import Method, TrainConfig
from refute.train._data import DPORow, SFTRow, TrainData, load_train_data
from refute.train._loop import StepLog
from refute.train._losses import dpo_loss, sequence_logprobs, sft_loss_sum
from refute.train._manifest import BaseRecord, DataRecord, TrainManifest, read_manifest
from refute.train._run import TrainResult, default_target_modules, train_lora

__all__ = [
    "BaseRecord",
    "DPORow",
    "DataRecord",
    "Method",
    "SFTRow",
    "StepLog",
    "TrainConfig",
    "TrainData",
    "TrainManifest",
    "TrainResult",
    "default_target_modules",
    "dpo_loss",
    "load_train_data",
    "read_manifest",
    "sequence_logprobs",
    "sft_loss_sum",
    "train_lora",
]
