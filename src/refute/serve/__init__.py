"""`refute serve`: an OpenAI-compatible HTTP server in front of any model spec, with a stack of
guard layers (`refute.guard`), logging every exchange to the store (`refute monitor` reads it).
Needs ``pip install 'refute[serve]'`` (Starlette and uvicorn)."""

from refute.serve._app import MAX_BODY_BYTES, ServeConfig, create_app, pass_through
from refute.serve._log import ExchangeLog, HarmMode, is_harmful, outcome_of, redaction_marker
from refute.serve._protocol import ApiError
from refute.serve._server import check_binding, free_port, is_loopback, serve, serving

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "ExchangeLog",
    "HarmMode",
    "ServeConfig",
    "check_binding",
    "create_app",
    "free_port",
    "is_harmful",
    "is_loopback",
    "outcome_of",
    "pass_through",
    "redaction_marker",
    "serve",
    "serving",
]
