"""Model backends behind one interface, chosen by a spec string (``default``, ``hf:...``, ...),
with edits (``+ablate:``, ``+steer:``, ``+sae:``, ``+lora:``, ``+noise:``) composed left to right."""

from refute.models._base import (
    Completion,
    GenerateConfig,
    GenerateRequest,
    Message,
    ModelBackend,
    ModelInfo,
)
from refute.models._cache import ModelCache
from refute.models._edits import (
    AblateEdit,
    Edit,
    LoraEdit,
    NoiseEdit,
    SAEEdit,
    SAEFeature,
    SteerEdit,
)
from refute.models._embedded import EMBEDDED, EmbeddedModel
from refute.models._encode import encode, render
from refute.models._noise import noised
from refute.models._spec import ModelSpec, load_model, parse_spec, prepare_embedded

__all__ = [
    "EMBEDDED",
    "AblateEdit",
    "Completion",
    "Edit",
    "EmbeddedModel",
    "GenerateConfig",
    "GenerateRequest",
    "LoraEdit",
    "ModelCache",
    "Message",
    "ModelBackend",
    "ModelInfo",
    "ModelSpec",
    "NoiseEdit",
    "SAEEdit",
    "SAEFeature",
    "SteerEdit",
    "encode",
    "load_model",
    "noised",
    "parse_spec",
    "prepare_embedded",
    "render",
]
