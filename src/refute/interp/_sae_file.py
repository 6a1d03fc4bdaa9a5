"""A trained TopK SAE as one ``.safetensors`` file: its four tensors, and `SAEFile` (k, the site it
was trained on) as JSON in the metadata header. ``BASE+sae:FILE#FEATURES`` specs read these files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refute.interp._errors import InterpError
from refute.interp._sae import TopKSAE
from refute.interp._sites import Site, parse_site

__all__ = ["SAEFile", "load_sae", "save_sae"]

_TENSORS = ("W_enc", "W_dec", "b_enc", "b_dec")


class SAEFile(BaseModel):
    """What a saved SAE records beside its tensors (the ``refute_sae`` metadata header)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    """Format version; a file of another version is refused."""
    site: str = Field(description="The activation site it was trained on, e.g. resid_pre.6.")
    k: int = Field(ge=1, description="Active features per token (TopK).")
    model: str | None = Field(None, description="The model spec whose activations trained it.")


def save_sae(sae: Any, path: str | Path, *, site: str | Site, model: str | None = None) -> Path:
    """Write ``sae`` (from `train_sae`) with the site it reads, so a spec can apply it."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise InterpError(f"{path}: save an SAE as a .safetensors file")
    meta = SAEFile(site=str(parse_site(site)), k=int(sae.k), model=model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(sae, name).detach().float().cpu().contiguous() for name in _TENSORS}
    save_file(tensors, str(path), metadata={"refute_sae": meta.model_dump_json()})
    return path


def load_sae(path: str | Path) -> tuple[Any, Site]:
    """The SAE saved at ``path`` (in eval mode) and the site it was trained on."""
    import torch
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get("refute_sae")
            missing = [n for n in _TENSORS if n not in f.keys()]  # noqa: SIM118 (safe_open is no dict)
            tensors = {n: f.get_tensor(n) for n in _TENSORS if n not in missing}
    except Exception as exc:  # safetensors raises its own error type for a malformed file
        raise InterpError(f"{path} is not a safetensors file ({exc})") from exc
    if header is None or missing:
        raise InterpError(f"{path} is not a refute SAE (no 'refute_sae' metadata or no "
                          f"{', '.join(missing) or 'tensors'}); save one with refute.interp.save_sae")
    try:
        meta = SAEFile.model_validate_json(header)
    except ValidationError as exc:
        raise InterpError(f"{path}: bad 'refute_sae' metadata: {exc.errors()[0]['msg']}") from exc
    n_features, d_model = tensors["W_dec"].shape
    if tensors["W_enc"].shape != (d_model, n_features):
        raise InterpError(f"{path}: W_enc is {tuple(tensors['W_enc'].shape)}, expected {(d_model, n_features)}")
    sae = TopKSAE(d_model, n_features, meta.k)
    try:
        with torch.no_grad():
            sae.load_state_dict(tensors)
    except RuntimeError as exc:  # a bias of the wrong shape
        raise InterpError(f"{path}: tensors do not fit together: {exc}") from exc
    return sae.eval(), parse_site(meta.site)
