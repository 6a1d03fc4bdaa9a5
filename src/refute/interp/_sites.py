"""Activation sites of decoder-only HF models, and hooks on them that never outlive their context.

A site is named like TransformerLens's hook points, without wrapping the model:

* ``resid_pre.L``  the residual stream entering decoder layer ``L`` (a forward pre-hook on it);
* ``resid_post.L`` the residual stream leaving layer ``L`` (a forward hook on it);
* ``attn_out.L``   what attention writes into the residual stream at layer ``L``;
* ``mlp_out.L``    what the MLP writes into the residual stream at layer ``L``.

Layer discovery covers Llama, Qwen2, Mistral, Gemma 1-3 (``model.model.layers``), GPT-2 and GPT-J
(``transformer.h``), GPT-NeoX (``gpt_neox.layers``), OPT (``model.decoder.layers``) and Falcon.
For sandwich-norm layers (Gemma 2 and 3) the attention and MLP writes are the outputs of their
post-norms, because that is what is added to the residual stream.

Every hook function maps a tensor ``(B, T, D)`` to a tensor (or returns None to leave it as is).
Hooks are added by `hooks` and removed in ``finally``, so an exception leaves the model clean.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from refute.interp._errors import InterpError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HookFn",
    "Site",
    "SiteKind",
    "all_sites",
    "find_layers",
    "hooks",
    "n_layers",
    "parse_site",
    "site_module",
]

SiteKind = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]
HookFn = Callable[["torch.Tensor"], "torch.Tensor | None"]
_KINDS: tuple[SiteKind, ...] = ("resid_pre", "resid_post", "attn_out", "mlp_out")
_SITE = re.compile(r"^(resid_pre|resid_post|attn_out|mlp_out)\.(\d+)$")
# Where the list of decoder layers lives, most common first.
_LAYER_PATHS = ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers",
                "model.decoder.layers", "transformer.layers", "layers", "h")
_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")


@dataclass(frozen=True, order=True)
class Site:
    """One activation site: a kind and a layer index."""

    kind: SiteKind
    layer: int

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"

    def __str__(self) -> str:
        return self.name


# Hook functions by site, named by text, by `Site` or both (a Mapping is invariant in its key type).
_HookFns = HookFn | list[HookFn]
HookMap = Mapping[str, _HookFns] | Mapping[Site, _HookFns] | Mapping[str | Site, _HookFns]


def parse_site(site: str | Site) -> Site:
    """``"resid_pre.3"`` -> ``Site("resid_pre", 3)``."""
    if isinstance(site, Site):
        return site
    match = _SITE.match(site.strip())
    if not match:
        raise InterpError(f"unknown activation site '{site}': use resid_pre.L, resid_post.L, "
                          "attn_out.L or mlp_out.L with a layer number L")
    return Site(match.group(1), int(match.group(2)))  # type: ignore[arg-type]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_layers(model: Any) -> Any:
    """The model's list of decoder layers (an ``nn.ModuleList``)."""
    import torch

    for path in _LAYER_PATHS:
        layers = _get(model, path)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            return layers
    raise InterpError(
        f"could not find the decoder layers of {type(model).__name__}: looked for "
        f"{', '.join(_LAYER_PATHS)}. refute.interp supports decoder-only HF models (Llama, Qwen2, "
        "Gemma, GPT-2 families); open an issue with the model's architecture name"
    )


def n_layers(model: Any) -> int:
    return len(find_layers(model))


def all_sites(model: Any, kinds: tuple[SiteKind, ...] = _KINDS) -> list[Site]:
    return [Site(k, i) for i in range(n_layers(model)) for k in kinds]


def _child(layer: Any, names: tuple[str, ...], what: str) -> Any:
    for name in names:
        module = getattr(layer, name, None)
        if module is not None:
            return module
    raise InterpError(f"decoder layer {type(layer).__name__} has no {what} module (looked for "
                      f"{', '.join(names)})")


def is_sandwich_norm(layer: Any) -> bool:
    """Gemma 2/3 layers normalize attention and MLP outputs before adding them to the stream."""
    return hasattr(layer, "pre_feedforward_layernorm") and hasattr(layer, "post_feedforward_layernorm")


def site_module(model: Any, site: str | Site) -> tuple[Any, bool]:
    """The module to hook for ``site`` and whether it is a pre-hook (True) or a forward hook."""
    s = parse_site(site)
    layers = find_layers(model)
    if not 0 <= s.layer < len(layers):
        raise InterpError(f"site '{s}': layer {s.layer} does not exist; the model has layers "
                          f"0-{len(layers) - 1}")
    layer = layers[s.layer]
    if s.kind == "resid_pre":
        return layer, True
    if s.kind == "resid_post":
        return layer, False
    if is_sandwich_norm(layer):
        return (layer.post_attention_layernorm if s.kind == "attn_out" else layer.post_feedforward_layernorm), False
    if s.kind == "attn_out":
        return _child(layer, _ATTN_NAMES, "attention"), False
    return _child(layer, _MLP_NAMES, "MLP"), False


def _pre_hook(fn: HookFn) -> Callable[..., Any]:
    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        if "hidden_states" in kwargs:
            new = fn(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})
        raise InterpError(f"{type(module).__name__} was called without hidden states to hook")

    return hook


def _post_hook(fn: HookFn) -> Callable[..., Any]:
    def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
        if isinstance(output, tuple):
            new = fn(output[0])
            return None if new is None else (new, *output[1:])
        new = fn(output)
        return new

    return hook


@contextmanager
def hooks(model: Any, fns: HookMap) -> Iterator[None]:
    """Run ``fns[site]`` on each site's activation while inside the block; removed in ``finally``.

    Several functions for one site run in the order given. A function sees ``(B, T, D)`` and
    returns the replacement, or None to keep the activation unchanged (a read-only hook).
    """
    handles = []
    try:
        for site, f in fns.items():
            module, pre = site_module(model, site)
            for fn in f if isinstance(f, list) else [f]:
                if pre:
                    handles.append(module.register_forward_pre_hook(_pre_hook(fn), with_kwargs=True))
                else:
                    handles.append(module.register_forward_hook(_post_hook(fn)))
        yield
    finally:
        for handle in handles:
            handle.remove()
