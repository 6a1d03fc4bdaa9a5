"""Off-distribution variants of a request: encodings, framings, augmentations and rewrites.

Every refusal measurement is repeated under transforms of the same request, and the same
transforms are applied to benign tasks with known answers as a capability control (can't vs
won't). Build one with ``get_transform(name, **args)`` or a whole chain with
``parse_chain("rot13+roleplay")``; ``list_transforms()`` shows what is registered.
"""

from refute.redteam import _bon, _encodings, _framings, _rewrite  # noqa: F401  (registration)
from refute.redteam._base import (
    Encoding,
    Transform,
    TransformInfo,
    TransformKind,
    get_transform,
    list_transforms,
    transform,
)
from refute.redteam._chain import ChainSpec, TransformChain, TransformSpec, parse_chain

__all__ = [
    "ChainSpec",
    "Encoding",
    "Transform",
    "TransformChain",
    "TransformInfo",
    "TransformKind",
    "TransformSpec",
    "get_transform",
    "list_transforms",
    "parse_chain",
    "transform",
]
