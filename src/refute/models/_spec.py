"""Turn a spec string into a backend: ``default``, ``gemma3-270m``, ``hf:``, ``gguf:``, ``openai:``,
``vllm:``, each optionally followed by edits (``+ablate:FILE``, ``+steer:FILE@LAYER*COEF``,
``+sae:FILE#FEATURES``, ``+lora:DIR``; see `refute.models._edits`), applied left to right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from refute.errors import ConfigError, ModelNotInstalledError, RefuteError
from refute.models._base import ModelBackend, ModelInfo
from refute.models._edits import Edit, edit_applier, file_sha256, parse_edit, split_spec
from refute.models._embedded import EMBEDDED, assemble
from refute.models._gguf import ensure_converted
from refute.models._hf import HFBackend
from refute.models._openai import OpenAIBackend
from refute.models._vllm import VLLMBackend

__all__ = ["ModelSpec", "load_model", "parse_spec", "prepare_embedded"]

SPEC_HELP = (
    "use 'default', 'gemma3-270m', 'hf:<repo id or dir>', 'gguf:<file>', "
    "'openai:<model>' (with --base-url) or 'vllm:<repo id or dir>' (vLLM on this machine's GPU), "
    "optionally followed by "
    "+ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES or +lora:DIR"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec string: a base model (``kind`` and ``target``) and the edits applied to it."""

    kind: Literal["embedded", "hf", "gguf", "openai", "vllm"]
    target: str
    raw: str
    edits: tuple[Edit, ...] = ()

    @property
    def base(self) -> str:
        """The base model's own spec (``hf:dir``, ``default``)."""
        return self.target if self.kind == "embedded" else f"{self.kind}:{self.target}"

    def __str__(self) -> str:
        return "+".join([self.base, *map(str, self.edits)])


def _parse_base(text: str) -> tuple[str, str] | None:
    if text in EMBEDDED:
        return "embedded", text
    prefix, sep, rest = text.partition(":")
    if sep and prefix in ("hf", "gguf", "openai", "vllm") and rest:
        return prefix, rest
    return None


def parse_spec(spec: str) -> ModelSpec:
    """Parse ``BASE(+EDIT)*``; a `ConfigError` names the part that is wrong and why.

    Edit files must exist (they are read when the model loads); an edit on an ``openai:`` base is
    refused, since a remote model has no weights or activations to edit here, and so is one on a
    ``vllm:`` base (edits run on the transformers backend).
    """
    spec = spec.strip()
    parts = split_spec(spec)
    base = _parse_base(parts[0].strip())
    if base is None:
        if len(parts) == 1:
            raise ConfigError(f"unknown model spec '{spec}': {SPEC_HELP}")
        raise ConfigError(f"model spec '{spec}': part 1 '{parts[0]}': unknown base model; {SPEC_HELP}")
    edits: list[Edit] = []
    for i, part in enumerate(parts[1:], start=2):
        where = f"model spec '{spec}': part {i} '{part}'"
        if base[0] == "openai":
            raise ConfigError(f"{where}: edits need local weights, and '{parts[0]}' is a remote model; "
                              "use default, gemma3-270m, hf:<repo id or dir> or gguf:<file> as the base")
        if base[0] == "vllm":
            raise ConfigError(f"{where}: edits run on the transformers backend, and vLLM serves the weights "
                              f"as they are; use hf:{base[1]} as the base")
        try:
            edits.append(parse_edit(part.strip()))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return ModelSpec(base[0], base[1], spec, tuple(edits))  # type: ignore[arg-type]


def prepare_embedded(name: str, on_progress: Any = None) -> Path:
    """Assemble, verify and convert an embedded model; return its safetensors directory."""
    model = EMBEDDED[name]
    gguf = assemble(model, on_progress=on_progress)
    return ensure_converted(gguf, key=f"{model.name}-{model.sha256[:12]}", source_sha256=model.sha256)


def load_model(
    spec: str,
    *,
    base_url: str | Sequence[str] | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    batch_size: int | None = None,
    concurrency: int = 8,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> ModelBackend:
    """Load the backend a spec names, with its edits. Heavy libraries are imported here, not at
    import time."""
    parsed = parse_spec(spec)
    backend = _load_base(parsed, base_url=base_url, dtype=dtype, device=device, batch_size=batch_size,
                         concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries)
    return _apply_edits(backend, parsed) if parsed.edits else backend


def _load_base(parsed: ModelSpec, *, base_url: str | Sequence[str] | None, dtype: str, device: str,
               batch_size: int | None, concurrency: int, timeout_s: float | None,
               max_retries: int | None) -> ModelBackend:
    spec = parsed.raw
    if parsed.kind == "openai":
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

    local: dict[str, Any] = {"dtype": dtype, "device": device}
    if batch_size:
        local["batch_size"] = batch_size
    if parsed.kind == "vllm":
        return VLLMBackend(parsed.target, dtype=dtype, max_num_seqs=batch_size)
    if parsed.kind == "embedded":
        directory = prepare_embedded(parsed.target)
        return HFBackend(directory, spec=parsed.base,
                         recorded_revision=f"sha256:{EMBEDDED[parsed.target].sha256[:16]}", **local)
    if parsed.kind == "gguf":
        path = Path(parsed.target).expanduser()
        if not path.is_file():
            raise ConfigError(f"model spec '{spec}': no GGUF file at {path}")
        converted = ensure_converted(path)
        return HFBackend(converted, spec=parsed.base, recorded_revision=f"gguf:{converted.name}", **local)
    target = Path(parsed.target).expanduser()
    if target.exists() and not (target / "config.json").is_file():
        raise ConfigError(f"model spec '{spec}': {target} is not a model directory (no config.json); "
                          "point hf: at a directory saved with save_pretrained, or at a hub id")
    return HFBackend(parsed.target, spec=parsed.base, **local)


def _apply_edits(backend: ModelBackend, parsed: ModelSpec) -> ModelBackend:
    """Apply each edit in order; the result records the full spec, its structure and file hashes.

    An edit that cannot apply (a file that is not a direction, a layer the model lacks) is a
    `ConfigError` naming the part; a missing optional package stays a `ModelNotInstalledError`.
    """
    base_info = backend.info
    records = []
    try:
        for i, edit in enumerate(parsed.edits, start=2):
            where = f"model spec '{parsed.raw}': part {i} '{edit}'"
            sha256 = None if edit.path is None else file_sha256(edit.path)
            try:
                backend = edit_applier(edit.kind)(backend, edit)
            except ModelNotInstalledError as exc:
                raise ModelNotInstalledError(f"{where}: {exc}") from exc
            except RefuteError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            records.append({**edit.record(), "sha256": sha256})
    except BaseException:
        backend.close()
        raise
    details = {**base_info.details, "spec": {"base": parsed.base, "edits": records}}
    backend.info = ModelInfo(spec=parsed.raw, backend=base_info.backend, revision=base_info.revision,
                             details=details)
    return backend
