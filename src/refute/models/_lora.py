"""``BASE+lora:DIR``: a peft LoRA adapter merged into a local model's weights when it loads."""

from __future__ import annotations

from typing import Any

from refute.errors import ConfigError, ModelNotInstalledError
from refute.models._edits import LoraEdit
from refute.registry import registry

__all__ = ["apply_lora"]


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
    try:
        merged = PeftModel.from_pretrained(model, str(edit.path)).merge_and_unload()
    except Exception as exc:  # peft raises many types for an adapter that does not fit the model
        raise ConfigError(f"could not apply the LoRA adapter in {edit.path}: {exc}") from exc
    owner = backend
    while hasattr(owner, "base"):  # an edited backend wraps the one that owns the weights
        owner = owner.base
    owner.model = merged.eval()
    return backend


registry("model_edit").register("lora", apply_lora)
