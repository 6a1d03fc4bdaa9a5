"""The merged weights of a trained adapter, saved as an ordinary model folder (``hf:DIR``).

``BASE+lora:ADAPTER`` merges the adapter each time it loads; a merged folder loads like any
model, in tools that know nothing of peft. ``refute_intervention.json`` beside the weights names
the adapter, its folder hash and its manifest, so a run on ``hf:DIR`` can be traced back to the
training that made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refute.errors import ConfigError
from refute.models import load_model
from refute.models._edits import file_sha256
from refute.train._checkpoint import atomic_dir
from refute.train._manifest import read_manifest

__all__ = ["merge_adapter"]


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | None = None, dtype: str = "auto") -> Path:
    """Load ``BASE+lora:ADAPTER`` (BASE from the adapter's manifest unless given), save its weights
    and tokenizer into ``out`` (written whole or not at all) and return ``out``."""
    adapter, out = Path(adapter), Path(out)
    try:
        manifest = read_manifest(adapter)
    except FileNotFoundError:
        raise ConfigError(f"--adapter {adapter}: no refute_train.json in it; point at a folder written by "
                          "`refute train`") from None
    if out.exists():
        raise ConfigError(f"--out {out}: already exists; choose another folder")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    spec = f"{base or manifest.base.spec}+lora:{adapter}"
    backend: Any = load_model(spec, dtype=dtype)  # an hf backend: it has weights and a tokenizer
    try:
        with atomic_dir(out) as tmp:
            backend.model.save_pretrained(str(tmp))
            backend.tokenizer.save_pretrained(str(tmp))
            (tmp / "refute_intervention.json").write_text(json.dumps({
                "intervention": "lora-merge", "spec": spec, "adapter": str(adapter.resolve()),
                "adapter_sha256": file_sha256(adapter), "manifest": manifest.model_dump(mode="json"),
            }, indent=1), encoding="utf-8")
    finally:
        backend.close()
    return out
