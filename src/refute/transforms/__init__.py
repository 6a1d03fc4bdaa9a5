"""Off-distribution variants of a request: encodings, framings, augmentations and model rewrites.

Every refusal measurement is repeated under transforms of the same request, and the same
transforms are applied to benign tasks with known answers as a capability control (can't vs
won't). Build one with ``get_transform(name, **args)`` or a whole chain with
``parse_chain("rot13+roleplay")``; ``list_transforms()`` shows what is registered. A transform
is a plug-in of the one `refute.registry`: register a new one with ``@transform("name")``.

This package sits below scorers and the engine (a scorer decodes encoded replies with the same
codecs; the engine applies chains); the attacks that use transforms live in `refute.redteam`.
"""

from refute.transforms import _bon, _encodings, _framings, _rewrite  # noqa: F401  (registers the built-ins)
from refute.transforms._base import (
    ArgValue,
    Encoding,
    TextTransform,
    Transform,
    TransformInfo,
    TransformKind,
    check_int,
    check_number,
    get_transform,
    list_transforms,
    transform,
    transform_kind,
)
from refute.transforms._bon import BestOfN
from refute.transforms._chain import (
    IDENTITY_NAME,
    ChainSpec,
    TransformChain,
    TransformSpec,
    parse_chain,
    step_seed,
)
from refute.transforms._encodings import Morse
from refute.transforms._rewrite import model_spec

__all__ = [
    "IDENTITY_NAME",
    "ArgValue",
    "BestOfN",
    "ChainSpec",
    "Encoding",
    "Morse",
    "TextTransform",
    "Transform",
    "TransformChain",
    "TransformInfo",
    "TransformKind",
    "TransformSpec",
    "check_int",
    "check_number",
    "get_transform",
    "list_transforms",
    "model_spec",
    "parse_chain",
    "step_seed",
    "transform",
    "transform_kind",
]
