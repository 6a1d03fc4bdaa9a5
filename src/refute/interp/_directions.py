"""Directions in the residual stream and the interventions built on them (Arditi et al. 2024).

"Refusal in Language Models Is Mediated by a Single Direction" (Arditi, Obeso, Syed, Paleka,
Panickssery, Gurnee, Nanda; NeurIPS 2024):

* a direction is the difference in means of the residual stream between two prompt sets, at one
  layer and one (post-instruction) token position;
* directional ablation projects the unit direction ``r`` out of every layer's residual input and
  out of every attention and MLP write, at every position: ``x <- x - (x . r) r``;
* activation addition adds ``coefficient * v`` (``v`` the un-normalized difference) to the
  residual stream entering one layer, at every position;
* weight orthogonalization edits the weights that write to the residual stream (embeddings,
  attention and MLP output projections) so that the model never writes along ``r``: the same
  model as directional ablation, with no hooks, saved as a new model directory.

Every intervention has a control: `random_like` draws a direction of the same norm from a seeded
``torch.Generator``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refute.interp._errors import InterpError
from refute.interp._sites import HookFn, Site, find_layers, hooks, is_sandwich_norm

if TYPE_CHECKING:
    import torch

__all__ = [
    "Direction",
    "ablate",
    "ablation_hooks",
    "add_direction",
    "addition_hooks",
    "diff_in_means",
    "every_write",
    "orthogonalize_weights",
    "random_like",
    "save_orthogonalized",
]


@dataclass(frozen=True)
class Direction:
    """A direction in the residual stream, with where it came from.

    ``vector`` is ``(D,)`` float32, un-normalized (for a difference in means, its norm is the
    distance between the two means, the natural scale for activation addition).
    """

    vector: torch.Tensor
    layer: int
    position: int
    label: str = "diff-in-means"

    @property
    def norm(self) -> float:
        return float(self.vector.norm())

    @property
    def unit(self) -> torch.Tensor:
        return self.vector / self.vector.norm().clamp_min(1e-12)

    @property
    def digest(self) -> str:
        """A short content hash: what model-variant specs and cache keys carry."""
        data = self.vector.detach().float().cpu().contiguous().numpy().tobytes()
        return hashlib.sha256(data).hexdigest()[:10]

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"layer": str(self.layer), "position": str(self.position), "label": self.label}
        save_file({"vector": self.vector.detach().float().cpu().contiguous()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            vector = f.get_tensor("vector")
        return cls(vector, int(meta.get("layer", -1)), int(meta.get("position", -1)),
                   meta.get("label", "diff-in-means"))


def diff_in_means(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean(a) - mean(b)`` over prompts: ``(N, ..., D)`` inputs give a ``(..., D)`` result."""
    if a.shape[1:] != b.shape[1:]:
        raise InterpError(f"diff_in_means: shapes {tuple(a.shape)} and {tuple(b.shape)} differ "
                          "beyond the prompt axis")
    return a.float().mean(dim=0) - b.float().mean(dim=0)


def random_like(direction: Direction, seed: int) -> Direction:
    """A uniformly random direction with the same norm, from a ``torch.Generator`` seeded ``seed``."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(direction.vector.shape, generator=g, dtype=torch.float32)
    v = v / v.norm() * direction.vector.float().norm()
    return Direction(v, direction.layer, direction.position, f"random(seed={seed})")


def _project_out(unit: torch.Tensor) -> HookFn:
    cache: dict[tuple[Any, Any], torch.Tensor] = {}

    def fn(x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = unit.to(device=x.device, dtype=x.dtype)
        r = cache[key]
        proj = (x.float() @ r.float()).unsqueeze(-1)  # (B, T, 1), in float32 for precision
        return x - (proj * r.float()).to(x.dtype)

    return fn


def ablation_hooks(model: Any, direction: Direction | torch.Tensor) -> dict[Site, HookFn]:
    """Directional ablation: project ``r`` out of resid_pre, attn_out and mlp_out of every layer."""
    vec = direction.vector if isinstance(direction, Direction) else direction
    unit = vec.float() / vec.float().norm().clamp_min(1e-12)
    return every_write(model, _project_out(unit))


def every_write(model: Any, fn: HookFn) -> dict[Site, HookFn]:
    """``fn`` on the residual stream entering every layer and on every attention and MLP write:
    the sites of directional ablation."""
    return {Site(kind, i): fn for i in range(len(find_layers(model))) for kind in ("resid_pre", "attn_out", "mlp_out")}


def addition_hooks(direction: Direction | torch.Tensor, layer: int, coefficient: float = 1.0) -> dict[Site, HookFn]:
    """Activation addition: ``x + coefficient * v`` on the residual stream entering ``layer``."""
    vec = (direction.vector if isinstance(direction, Direction) else direction).float() * float(coefficient)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return x + vec.to(device=x.device, dtype=x.dtype)

    return {Site("resid_pre", int(layer)): fn}


@contextmanager
def ablate(model: Any, direction: Direction | torch.Tensor) -> Iterator[None]:
    """Directional ablation while inside the block."""
    with hooks(model, ablation_hooks(model, direction)):
        yield


@contextmanager
def add_direction(model: Any, direction: Direction | torch.Tensor, layer: int,
                  coefficient: float = 1.0) -> Iterator[None]:
    """Activation addition at one layer while inside the block."""
    with hooks(model, addition_hooks(direction, layer, coefficient)):
        yield


# --- weight orthogonalization ------------------------------------------------------------------

_ATTN_OUT = ("o_proj", "c_proj", "dense", "out_proj")
_MLP_OUT = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "fc_out")


def _writer(parent: Any, names: tuple[str, ...], what: str) -> Any:
    for name in names:
        module = getattr(parent, name, None)
        if module is not None and hasattr(module, "weight"):
            return module
    raise InterpError(f"weight orthogonalization: no {what} output projection in "
                      f"{type(parent).__name__} (looked for {', '.join(names)})")


def _orthogonalize_writer(module: Any, r: torch.Tensor) -> None:
    """Make a projection that writes into the residual stream write nothing along ``r``."""
    import torch

    w = module.weight.data
    rr = r.to(device=w.device, dtype=torch.float32)
    if isinstance(module, torch.nn.Linear):  # weight (D_out, D_in): y = W x
        wf = w.float()
        module.weight.data = (wf - torch.outer(rr, rr @ wf)).to(w.dtype)
    else:  # GPT-2 Conv1D, weight (D_in, D_out): y = x W
        wf = w.float()
        module.weight.data = (wf - torch.outer(wf @ rr, rr)).to(w.dtype)
    bias = getattr(module, "bias", None)
    if bias is not None:
        bf = bias.data.float()
        bias.data = (bf - (bf @ rr) * rr).to(bias.dtype)


def _orthogonalize_rows(weight: torch.Tensor, r: torch.Tensor) -> None:
    import torch

    rr = r.to(device=weight.device, dtype=torch.float32)
    wf = weight.data.float()  # (V, D)
    weight.data = (wf - torch.outer(wf @ rr, rr)).to(weight.dtype)


def orthogonalize_weights(model: Any, direction: Direction | torch.Tensor) -> Any:
    """Edit ``model`` in place so that nothing writes along the direction; returns the model.

    Unties tied input/output embeddings first (only the input side is edited). Raises for
    sandwich-norm layers (Gemma 2/3), where a norm after each write makes the edit inexact: use
    the `ablate` hooks there. Use `save_orthogonalized` to keep the original model untouched.
    """
    import torch

    vec = direction.vector if isinstance(direction, Direction) else direction
    r = vec.float() / vec.float().norm().clamp_min(1e-12)
    layers = find_layers(model)
    if any(is_sandwich_norm(layer) for layer in layers):
        raise InterpError(f"{type(model).__name__} normalizes each attention/MLP output before adding "
                          "it to the residual stream, so orthogonalizing weights is not equivalent to "
                          "directional ablation; use refute.interp.ablate (hooks) for this model")
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    if out is not None and out.weight is emb.weight:
        out.weight = torch.nn.Parameter(emb.weight.detach().clone())
        model.config.tie_word_embeddings = False
        if hasattr(model.config, "get_text_config"):
            model.config.get_text_config().tie_word_embeddings = False
    _orthogonalize_rows(emb.weight, r)
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)  # GPT-2 learned positions
    if wpe is not None:
        _orthogonalize_rows(wpe.weight, r)
    for layer in layers:
        attn = next((getattr(layer, n) for n in ("self_attn", "attn", "attention") if hasattr(layer, n)), None)
        mlp = next((getattr(layer, n) for n in ("mlp", "feed_forward") if hasattr(layer, n)), None)
        if attn is None or mlp is None:
            raise InterpError(f"weight orthogonalization: {type(layer).__name__} has no attention or MLP")
        _orthogonalize_writer(_writer(attn, _ATTN_OUT, "attention"), r)
        _orthogonalize_writer(_writer(mlp, _MLP_OUT, "MLP"), r)
    return model


def save_orthogonalized(model: Any, tokenizer: Any, direction: Direction, directory: str | Path) -> Path:
    """Save a weight-orthogonalized copy of ``model`` (the original stays as it was).

    The directory loads with ``hf:DIR`` like any model; ``refute_intervention.json`` records the
    direction's digest, layer and position.
    """
    directory = Path(directory)
    edited = orthogonalize_weights(copy.deepcopy(model), direction)
    edited.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "refute_intervention.json").write_text(json.dumps({
        "intervention": "weight-orthogonalization", "direction": direction.digest,
        "layer": direction.layer, "position": direction.position, "label": direction.label,
    }, indent=1))
    return directory
