"""``BASE+noise:SCALE@SEED``: Gaussian noise added to every weight of a local model.

Tice et al. 2024 ("Noise injection reveals hidden capabilities of sandbagging language models"): noise
that should only degrade a model raises the accuracy of one that hides a capability, because it
disrupts the hiding before the capability. The noise of each parameter is drawn from its own
generator, seeded from ``SEED`` and the parameter's name, in float32 whatever the weights' dtype, so
a spec names the same weights on every machine and in any loading order.

`add_noise` edits a loaded model in place (the spec's applier); `noised` does it for the length of a
``with`` block and puts the original weights back after, so a sweep over scales and seeds loads the
model once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from refute.errors import ConfigError
from refute.models._edits import NoiseEdit
from refute.registry import registry

__all__ = ["add_noise", "apply_noise", "noised"]


def _weights_of(backend: Any) -> Any:
    model = getattr(backend, "model", None)
    owner = backend
    while model is None and hasattr(owner, "base"):  # an edited backend wraps the one with the weights
        owner = owner.base
        model = getattr(owner, "model", None)
    if model is None:
        raise ConfigError(f"noise injection needs a local model with weights; '{backend.info.spec}' has none")
    return model


def _generator(seed: int, name: str) -> Any:
    import torch

    key = int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode()).digest()[:8], "little")
    return torch.Generator().manual_seed(key)


def add_noise(model: Any, scale: float, seed: int) -> int:
    """Add N(0, scale^2) noise to every floating-point parameter of ``model`` in place; returns how
    many numbers were changed. Tied parameters (one tensor under two names) get noise once."""
    import torch

    changed, seen = 0, set()
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(remove_duplicate=False), key=lambda item: item[0]):
            if id(param) in seen or not param.is_floating_point() or scale == 0:
                continue
            seen.add(id(param))
            noise = torch.randn(param.shape, generator=_generator(seed, name), dtype=torch.float32) * scale
            param.copy_((param.float() + noise.to(param.device)).to(param.dtype))  # drawn on the CPU: same everywhere
            changed += param.numel()
    return changed


def apply_noise(backend: Any, edit: NoiseEdit) -> Any:
    """The spec's applier: noise the loaded weights (the backend records the spec)."""
    add_noise(_weights_of(backend), edit.scale, edit.seed)
    return backend


class _Noised:
    """A backend answering with its base's (noised) weights under the noised spec, so runs, caches and
    resumes tell it from the base. Closing it does not close the base."""

    def __init__(self, base: Any, edit: NoiseEdit) -> None:
        self._base = base
        # the details loading the spec would record (`_spec._apply_edits`), so a resumed run that loads
        # ``SPEC+noise:SCALE@SEED`` afresh is recognised as the same model
        spec = base.info.details.get("spec") or {"base": base.info.spec, "edits": []}
        details = {**base.info.details,
                   "spec": {"base": spec["base"], "edits": [*spec["edits"], {**edit.record(), "sha256": None}]}}
        self.info = replace(base.info, spec=f"{base.info.spec}+{edit}", details=details)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def generate(self, requests: Any) -> Any:
        return self._base.generate(requests)

    def close(self) -> None:
        pass


@contextmanager
def noised(backend: Any, scale: float, seed: int) -> Iterator[Any]:
    """``backend`` with noise in its weights for the block, under the spec ``SPEC+noise:SCALE@SEED``;
    the original weights are back when the block ends, however it ends."""
    import torch

    model = _weights_of(backend)
    saved = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}  # not a 2nd GPU copy
    try:
        add_noise(model, scale, seed)
        yield _Noised(backend, NoiseEdit(scale, seed))
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(saved[name].to(p.device))


registry("model_edit").register("noise", apply_noise)
