"""Turn a spec string into a backend: ``default``, ``gemma3-270m``, ``hf:``, ``gguf:``, ``openai:``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from refute.errors import ConfigError
from refute.models._base import ModelBackend
from refute.models._embedded import EMBEDDED

__all__ = ["ModelSpec", "parse_spec", "load_model", "prepare_embedded"]

SPEC_HELP = (
    "use 'default', 'gemma3-270m', 'hf:<repo id or dir>', 'gguf:<file>' "
    "or 'openai:<model>' (with --base-url)"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec string."""

    kind: Literal["embedded", "hf", "gguf", "openai"]
    target: str
    raw: str


def parse_spec(spec: str) -> ModelSpec:
    spec = spec.strip()
    if spec in EMBEDDED:
        return ModelSpec("embedded", spec, spec)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in ("hf", "gguf", "openai") and rest:
        return ModelSpec(prefix, rest, spec)  # type: ignore[arg-type]
    raise ConfigError(f"unknown model spec '{spec}': {SPEC_HELP}")


def prepare_embedded(name: str, on_progress: Any = None) -> Path:
    """Assemble, verify and convert an embedded model; return its safetensors directory."""
    from refute.models._embedded import assemble
    from refute.models._gguf import ensure_converted

    model = EMBEDDED[name]
    gguf = assemble(model, on_progress=on_progress)
    return ensure_converted(gguf, key=f"{model.name}-{model.sha256[:12]}", source_sha256=model.sha256)


def load_model(
    spec: str,
    *,
    base_url: str | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    batch_size: int | None = None,
    concurrency: int = 8,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> ModelBackend:
    """Load the backend a spec names. Heavy libraries are imported here, not at import time."""
    parsed = parse_spec(spec)
    if parsed.kind == "openai":
        from refute.models._openai import OpenAIBackend

        kwargs: dict[str, Any] = {"concurrency": concurrency}
        if base_url:
            kwargs["base_url"] = base_url
        if timeout_s is not None:
            kwargs["timeout_s"] = timeout_s
        if max_retries is not None:
            kwargs["max_retries"] = max_retries
        return OpenAIBackend(parsed.target, **kwargs)
    if base_url:
        raise ConfigError(f"--base-url only applies to openai:<model> specs, not '{spec}'")
    if timeout_s is not None or max_retries is not None:
        raise ConfigError(f"--timeout and --retries only apply to openai:<model> specs, not '{spec}'")
    from refute.models._hf import HFBackend

    local: dict[str, Any] = {"dtype": dtype, "device": device}
    if batch_size:
        local["batch_size"] = batch_size
    if parsed.kind == "embedded":
        directory = prepare_embedded(parsed.target)
        return HFBackend(directory, spec=spec, recorded_revision=f"sha256:{EMBEDDED[spec].sha256[:16]}",
                         **local)
    if parsed.kind == "gguf":
        from refute.models._gguf import ensure_converted

        path = Path(parsed.target).expanduser()
        if not path.is_file():
            raise ConfigError(f"model spec '{spec}': no GGUF file at {path}")
        converted = ensure_converted(path)
        return HFBackend(converted, spec=spec, recorded_revision=f"gguf:{converted.name}", **local)
    target = Path(parsed.target).expanduser()
    if target.exists() and not (target / "config.json").is_file():
        raise ConfigError(f"model spec '{spec}': {target} is not a model directory (no config.json); "
                          "point hf: at a directory saved with save_pretrained, or at a hub id")
    return HFBackend(parsed.target, spec=spec, **local)
