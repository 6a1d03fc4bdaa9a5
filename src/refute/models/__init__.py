"""Model backends behind one interface, chosen by a spec string (``default``, ``hf:...``, ...)."""

from refute.models._base import (
    Completion,
    GenerateConfig,
    GenerateRequest,
    Message,
    ModelBackend,
    ModelInfo,
)
from refute.models._embedded import EMBEDDED, EmbeddedModel
from refute.models._spec import ModelSpec, load_model, parse_spec, prepare_embedded

__all__ = [
    "EMBEDDED",
    "Completion",
    "EmbeddedModel",
    "GenerateConfig",
    "GenerateRequest",
    "Message",
    "ModelBackend",
    "ModelInfo",
    "ModelSpec",
    "load_model",
    "parse_spec",
    "prepare_embedded",
]
