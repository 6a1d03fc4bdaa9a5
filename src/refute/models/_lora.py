"""``BASE+lora:DIR``: a peft LoRA adapter merged into a local model's weights when it loads.

An adapter `refute train` wrote carries ``refute_train.json``, which names the base it was trained
on by fingerprint (`refute.models._fingerprint`); it is refused on any other base.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from refute.errors import ConfigError, ModelNotInstalledError
from refute.models._edits import LoraEdit
from refute.models._fingerprint import TRAIN_MANIFEST, base_fingerprint
from refute.registry import registry

__all__ = ["apply_lora", "check_adapter_base"]


def apply_lora(backend: Any, edit: LoraEdit) -> Any:
    """Load the adapter with peft and merge it, so hooks and generation see plain modules."""
    model = getattr(backend, "model", None)
    if model is None:
        raise ConfigError(f"LoRA adapters need a local model with weights; '{backend.info.spec}' has none")
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelNotInstalledError(
            "LoRA adapters need peft: pip install peft (or pip install 'refute[lora]')") from exc
    check_adapter_base(model, edit.path)
    try:
        with warnings.catch_warnings():  # peft asks transformers a question it has deprecated
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            merged = PeftModel.from_pretrained(model, str(edit.path)).merge_and_unload()
    except Exception as exc:  # peft raises many types for an adapter that does not fit the model
        raise ConfigError(f"could not apply the LoRA adapter in {edit.path}: {exc}") from exc
    owner = backend
    while hasattr(owner, "base"):  # an edited backend wraps the one that owns the weights
        owner = owner.base
    # peft leaves every weight frozen (requires_grad False). Left so, torch computes the last-position
    # logits of a left-sliced hidden state as a batched matmul over an expanded copy of the whole output
    # matrix (151k x 896 for the default model): measured 15x slower prefill and several GB more per
    # batch than the same weights as `from_pretrained` leaves them. Generation runs without grad anyway.
    owner.model = merged.requires_grad_(True).eval()
    return backend


def check_adapter_base(model: Any, directory: Path) -> None:
    """Refuse an adapter whose ``refute_train.json`` names another base model (by fingerprint).

    An adapter without that file (trained elsewhere) is not checked.
    """
    path = directory / TRAIN_MANIFEST
    if not path.is_file():
        return
    try:
        base = json.loads(path.read_text(encoding="utf-8"))["base"]
        want, trained_on = str(base["fingerprint"]), str(base.get("spec", "?"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable ({type(exc).__name__}: {exc}); it should name the base model "
                          "the adapter was trained on; delete it to skip the check") from exc
    got = base_fingerprint(model)["fingerprint"]
    if got != want:
        raise ConfigError(
            f"the adapter in {directory} was trained on another base model: '{trained_on}' (fingerprint "
            f"{want[:16]}), but this model's fingerprint is {got[:16]}; apply it to the model it was trained on")


registry("model_edit").register("lora", apply_lora)
