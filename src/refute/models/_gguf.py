"""GGUF checkpoints, dequantized through transformers and converted once to safetensors.

Loading a GGUF through transformers takes about a minute on 2 CPU cores (tokenizer conversion
included); the converted copy in the user cache reloads in about a second.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from refute._paths import cache_dir
from refute.errors import ModelError, ModelNotInstalledError

__all__ = ["converted_dir", "ensure_converted"]

_DONE = "refute-converted.json"


def _key_for(gguf: Path) -> str:
    st = gguf.stat()
    ident = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return f"{gguf.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def converted_dir(gguf: Path, key: str | None = None) -> Path:
    """Where the safetensors copy of ``gguf`` lives (whether or not it exists yet)."""
    return cache_dir() / "converted" / (key or _key_for(gguf))


def is_converted(directory: Path) -> bool:
    return (directory / _DONE).exists()


def ensure_converted(gguf: Path, *, key: str | None = None, source_sha256: str | None = None) -> Path:
    """Return a directory holding an ordinary safetensors checkpoint of ``gguf``.

    The conversion is written to a temporary folder and renamed into place, so an interrupted
    conversion never leaves a half checkpoint behind.
    """
    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelError(f"GGUF file not found: {gguf}")
    out = converted_dir(gguf, key)
    if is_converted(out):
        return out
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelNotInstalledError(
            "local models need torch and transformers: pip install 'refute[local]'"
        ) from exc
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:  # pragma: no cover
        raise ModelNotInstalledError("reading GGUF files needs: pip install 'refute[local]'") from exc

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:
        raise ModelError(f"transformers could not load the GGUF file {gguf}: {exc}") from exc
    # The layers are plain nn.Linear with dequantized weights: drop the GGUF quantization entry
    # so the cache holds an ordinary checkpoint (otherwise a reload warns that weights stay packed).
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module types attributes as Tensor | Module
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE).write_text(
        json.dumps({"source": str(gguf), "source_sha256": source_sha256}, indent=2) + "\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
