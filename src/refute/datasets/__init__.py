"""Datasets: the built-in prompt sets, JSONL/CSV/Hub loaders and adapters for published formats."""

from refute.datasets._adapters import ADAPTER_NAMES
from refute.datasets._loaders import Dataset, list_datasets, load_dataset
from refute.datasets._record import MatchKind, Record

__all__ = [
    "ADAPTER_NAMES",
    "Dataset",
    "MatchKind",
    "Record",
    "list_datasets",
    "load_dataset",
]
