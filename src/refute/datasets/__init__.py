"""Datasets: the built-in prompt sets, JSONL/CSV/Hub loaders and adapters for published formats."""

from refute.datasets._adapters import ADAPTER_NAMES
from refute.datasets._loaders import (
    Dataset,
    declared_harmful,
    list_datasets,
    load_dataset,
    run_harmful,
)
from refute.datasets._record import MatchKind, Record

__all__ = [
    "ADAPTER_NAMES",
    "Dataset",
    "MatchKind",
    "Record",
    "declared_harmful",
    "list_datasets",
    "load_dataset",
    "run_harmful",
]
