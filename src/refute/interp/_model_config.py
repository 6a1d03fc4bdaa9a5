"""A model's layer count and width read from its ``config.json``, without loading its weights.

Commands check their sites (``resid_pre.40`` on a 24-layer model) and SAE widths before a model
loads, so a typo fails in a second rather than after minutes of loading. The config is found for
an ``hf:`` directory, an ``hf:`` hub id already in the local Hugging Face cache, and an embedded or
``gguf:`` model that has been converted before. Anywhere else `peek_model_shape` returns None and
the check happens when the model is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refute.interp._errors import InterpError
from refute.interp._sites import Site, n_layers, parse_site
from refute.models import EMBEDDED, parse_spec
from refute.models._gguf import converted_dir, is_converted

__all__ = ["ModelShape", "check_sites", "model_shape", "peek_model_shape"]

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")


@dataclass(frozen=True)
class ModelShape:
    """What a site or an SAE has to fit: the number of decoder layers and the residual width."""

    n_layers: int
    d_model: int


def _from_config(config: dict[str, Any]) -> ModelShape | None:
    text = config.get("text_config")  # multimodal wrappers (Gemma 3) keep the LM's numbers here
    for cfg in (text, config) if isinstance(text, dict) else (config,):
        layers = next((cfg[k] for k in _LAYER_KEYS if isinstance(cfg.get(k), int)), None)
        width = next((cfg[k] for k in _WIDTH_KEYS if isinstance(cfg.get(k), int)), None)
        if layers and width:
            return ModelShape(int(layers), int(width))
    return None


def _config_path(spec: str) -> Path | None:
    parsed = parse_spec(spec)
    if parsed.kind == "hf":
        local = Path(parsed.target).expanduser()
        if local.is_dir():
            return local / "config.json"
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(parsed.target, "config.json")
        except Exception:  # noqa: BLE001 (a malformed repo id, a missing hub library: the loader will say)
            return None
        return Path(cached) if isinstance(cached, str) else None
    if parsed.kind == "embedded":
        model = EMBEDDED[parsed.target]
        directory = converted_dir(model.gguf_path(), f"{model.name}-{model.sha256[:12]}")
    elif parsed.kind == "gguf" and Path(parsed.target).expanduser().is_file():
        directory = converted_dir(Path(parsed.target).expanduser())
    else:
        return None
    return directory / "config.json" if is_converted(directory) else None


def peek_model_shape(spec: str) -> ModelShape | None:
    """Layers and width of the base model ``spec`` names, or None when its config is not at hand."""
    path = _config_path(spec)
    if path is None or not path.is_file():
        return None
    try:
        return _from_config(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def model_shape(model: Any) -> ModelShape:
    """Layers and width of a loaded HF model."""
    return ModelShape(n_layers(model), int(model.get_input_embeddings().weight.shape[-1]))


def check_sites(sites: Iterable[str | Site], shape: ModelShape) -> list[Site]:
    """Parse ``sites`` and refuse any whose layer the model lacks (an `InterpError` naming it)."""
    parsed = [parse_site(s) for s in sites]
    for site in parsed:
        if site.layer >= shape.n_layers:
            raise InterpError(f"site '{site}': layer {site.layer} does not exist; the model has layers "
                              f"0-{shape.n_layers - 1}")
    return parsed
