"""The activation edits of model specs: ``+ablate:FILE``, ``+steer:FILE@LAYER*COEF``, ``+sae:FILE#FEATURES``.

`refute.models.load_model` parses a spec and finds these appliers in the plug-in registry (kind
``model_edit``), where this module registers them; models sits below interp and imports this
module only when a spec asks for one of its kinds. Each wraps the loaded backend in an `EditedBackend`
whose hooks (the same `ablation_hooks`, `addition_hooks` and `feature_hooks` that `Variant`
uses) stay in the model from load until `close`: everything that uses the model (generation,
capture, probes, GCG) sees the edited model, and a `Variant` built on it adds its hooks on top.
Edits compose left to right: at a site two edits share, the earlier one's hook runs first.

Direction files: what `Direction.save` writes (``.safetensors`` with a ``vector`` tensor), or
NumPy (``.npy``, or ``.npz`` holding ``vector``, ``direction`` or a single array). SAE files:
what `save_sae` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refute.interp._directions import ablation_hooks, addition_hooks
from refute.interp._errors import InterpError
from refute.interp._sae import feature_hooks
from refute.interp._sae_file import load_sae
from refute.interp._sites import HookFn, Site, hooks
from refute.interp._variant import Variant
from refute.models._base import Completion, GenerateRequest
from refute.models._edits import AblateEdit, SAEEdit, SteerEdit
from refute.registry import registry

if TYPE_CHECKING:
    import torch

__all__ = ["EditedBackend", "apply_ablate", "apply_sae", "apply_steer", "load_direction"]


class EditedBackend(Variant):
    """``base`` with hooks that stay in its model until `close` (which also closes ``base``).

    Unlike a `Variant`, which installs its hooks only while it generates so that several variants
    can share one set of weights, an edited backend owns its base: `load_model` built it for this
    spec alone.
    """

    def __init__(self, base: Any, name: str, make_hooks: Callable[[Any], dict[Site, HookFn]]) -> None:
        super().__init__(base, name, make_hooks)
        self._stack = ExitStack()
        fns: dict[str | Site, HookFn] = {site: fn for site, fn in make_hooks(base.model).items()}
        self._stack.enter_context(hooks(base.model, fns))

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        return self.base.generate(requests)  # the hooks are already in

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.base.close()


def _d_model(model: Any) -> int:
    return int(model.get_input_embeddings().weight.shape[-1])


def load_direction(path: str | Path) -> torch.Tensor:
    """A direction file as a ``(D,)`` float32 vector."""
    import numpy as np
    import torch

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                names = list(f.keys())
                name = "vector" if "vector" in names else names[0] if len(names) == 1 else None
                if name is None:
                    raise InterpError(f"{path} has no 'vector' tensor (it has {', '.join(names) or 'none'}); "
                                      "save directions with refute.interp.Direction.save")
                vec = f.get_tensor(name)
        else:
            loaded = np.load(path, allow_pickle=False)
            if suffix == ".npz":
                with loaded:
                    names = list(loaded.files)
                    name = next((n for n in ("vector", "direction") if n in names),
                                names[0] if len(names) == 1 else None)
                    if name is None:
                        raise InterpError(f"{path} has no 'vector' or 'direction' array (it has "
                                          f"{', '.join(names) or 'none'})")
                    loaded = loaded[name]
            vec = torch.from_numpy(np.array(loaded, dtype=np.float32))
    except InterpError:
        raise
    except Exception as exc:  # numpy, zipfile and safetensors each raise their own errors
        raise InterpError(f"cannot read {path} as a direction: {exc}") from exc
    vec = vec.float()
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1:
        raise InterpError(f"{path}: a direction is one vector, but this array has shape {tuple(vec.shape)}")
    if not bool(torch.isfinite(vec).all()):
        raise InterpError(f"{path}: the direction has NaN or infinite values")
    return vec


def _direction_for(backend: Any, path: Path) -> torch.Tensor:
    vec = load_direction(path)
    d = _d_model(backend.model)
    if vec.shape[0] != d:
        raise InterpError(f"the direction in {path} has {vec.shape[0]} values; this model's residual "
                          f"stream has {d}")
    return vec


def _check_local(backend: Any) -> None:
    if getattr(backend, "model", None) is None or getattr(backend, "tokenizer", None) is None:
        raise InterpError(f"edits need a local model with weights; '{backend.info.spec}' is served by "
                          f"the {backend.info.backend} backend (use default, hf:..., gguf:...)")


def apply_ablate(backend: Any, edit: AblateEdit) -> EditedBackend:
    """Directional ablation of the file's direction at every layer and position."""
    _check_local(backend)
    vec = _direction_for(backend, edit.path)
    if float(vec.norm()) == 0.0:
        raise InterpError(f"the direction in {edit.path} is all zeros; ablation needs a direction")
    return EditedBackend(backend, str(edit), lambda model: ablation_hooks(model, vec))


def apply_steer(backend: Any, edit: SteerEdit) -> EditedBackend:
    """Activation addition: ``coefficient * vector`` into the residual stream entering ``layer``."""
    _check_local(backend)
    vec = _direction_for(backend, edit.path)
    return EditedBackend(backend, str(edit), lambda model: addition_hooks(vec, edit.layer, edit.coefficient))


def apply_sae(backend: Any, edit: SAEEdit) -> EditedBackend:
    """Ablate (``i``) or clamp (``i=VALUE``) features of the file's SAE at the site it was trained on."""
    _check_local(backend)
    sae, site = load_sae(edit.path)
    n_features, d_sae = sae.W_dec.shape
    d = _d_model(backend.model)
    if d_sae != d:
        raise InterpError(f"the SAE in {edit.path} reads {d_sae}-dimensional activations; this model's "
                          f"residual stream has {d}")
    too_big = [f.index for f in edit.features if f.index >= n_features]
    if too_big:
        raise InterpError(f"feature {too_big[0]} does not exist; the SAE has {n_features} features "
                          f"(0-{n_features - 1})")
    sae.to(next(backend.model.parameters()).device)
    ids, values = [f.index for f in edit.features], [f.value for f in edit.features]
    return EditedBackend(backend, str(edit), lambda model: feature_hooks(sae, site, ids, values))


_EDITS = registry("model_edit")
_EDITS.register("ablate", apply_ablate)
_EDITS.register("steer", apply_steer)
_EDITS.register("sae", apply_sae)
