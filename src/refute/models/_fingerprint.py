"""Which base model a LoRA adapter belongs to: a fingerprint of a loaded model's config and weights.

`refute.train` writes it into ``refute_train.json`` beside the adapter it saves; ``BASE+lora:DIR``
(`refute.models._lora`) recomputes it on the model the adapter is about to be merged into and
refuses an adapter trained on another base.

* ``config_sha256``: SHA-256 of the model config as sorted JSON, less what changes with where and
  how it was loaded (its path, dtype, the transformers version);
* ``weights_sha256``: SHA-256 of every parameter's name and shape, and of up to 4,096 evenly
  strided values from each of 8 parameters spread through the model. Values are rounded to
  bfloat16 first, so the same weights loaded in float32 or bfloat16 give the same fingerprint;
* ``fingerprint``: SHA-256 of the two.

Cheap (a few milliseconds for a 0.5B model) and dtype-independent, but a sample: two bases that
differ only in parameters it does not read would share it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["TRAIN_MANIFEST", "base_fingerprint"]

#: The file `refute.train` writes beside an adapter (and in every checkpoint): what it was trained on.
TRAIN_MANIFEST = "refute_train.json"
_VOLATILE = ("_name_or_path", "name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash",
             "use_cache")
_SAMPLED_TENSORS = 8
_VALUES_PER_TENSOR = 4096


def base_fingerprint(model: Any) -> dict[str, str]:
    """``{"config_sha256", "weights_sha256", "fingerprint"}`` of a transformers model (see the module doc)."""
    import torch

    config = {k: v for k, v in model.config.to_dict().items() if k not in _VOLATILE}
    config_sha = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    params = list(model.named_parameters())  # tied weights once
    weights = hashlib.sha256()
    for name, param in params:
        weights.update(f"{name}\0{tuple(param.shape)}\0".encode())
    picks = sorted({round(i * (len(params) - 1) / max(1, _SAMPLED_TENSORS - 1)) for i in range(_SAMPLED_TENSORS)})
    with torch.no_grad():
        for i in picks if params else []:
            flat = params[i][1].detach().reshape(-1)
            values = flat[:: max(1, flat.numel() // _VALUES_PER_TENSOR)][:_VALUES_PER_TENSOR]
            weights.update(values.to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes())
    weights_sha = weights.hexdigest()
    combined = hashlib.sha256(f"{config_sha}\0{weights_sha}".encode()).hexdigest()
    return {"config_sha256": config_sha, "weights_sha256": weights_sha, "fingerprint": combined}
