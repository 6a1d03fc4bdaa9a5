"""Fine-tuning: LoRA adapters trained on a local model (SFT or DPO), checkpointed, resumable, and saved
with a manifest that ties them to their base model. Load one with ``BASE+lora:DIR``. Training rows can be
built from measurements (`build_train_data`): refusals for the variants a model complied with, and its
own answers to benign look-alikes and tasks, on a seeded train/held-out split of the prompts."""

from refute.train._check import CheckPlan, CheckResult, check_generalisation, plan_check, read_held_out
from refute.train._config import Method, TrainConfig
from refute.train._data import DPORow, SFTRow, TrainData, load_train_data
from refute.train._from_runs import (
    DEFAULT_REFUSALS,
    KindSummary,
    TrainDataPlan,
    TrainDataSummary,
    TrainSplit,
    build_train_data,
    is_held_out,
    prepare_train_data,
    read_refusals,
    read_split,
    split_path,
)
from refute.train._loop import StepLog
from refute.train._losses import dpo_loss, sequence_logprobs, sft_loss_sum
from refute.train._manifest import BaseRecord, DataRecord, TrainManifest, read_manifest
from refute.train._merge import merge_adapter
from refute.train._run import TrainResult, default_target_modules, train_lora

__all__ = [
    "DEFAULT_REFUSALS",
    "BaseRecord",
    "CheckPlan",
    "CheckResult",
    "DPORow",
    "DataRecord",
    "KindSummary",
    "Method",
    "SFTRow",
    "StepLog",
    "TrainConfig",
    "TrainData",
    "TrainDataPlan",
    "TrainDataSummary",
    "TrainManifest",
    "TrainResult",
    "TrainSplit",
    "build_train_data",
    "check_generalisation",
    "default_target_modules",
    "dpo_loss",
    "is_held_out",
    "load_train_data",
    "merge_adapter",
    "plan_check",
    "prepare_train_data",
    "read_held_out",
    "read_manifest",
    "read_refusals",
    "read_split",
    "sequence_logprobs",
    "sft_loss_sum",
    "split_path",
    "train_lora",
]
