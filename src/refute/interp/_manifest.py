"""What an interp command did, saved as JSON beside what it wrote (``acts.npz`` -> ``acts.manifest.json``).

A manifest names the model (spec, revision, backend details), the dataset (name, source, content
hash, prompts used), every setting, and refute's version, so the output can be traced and rebuilt.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from refute import __version__

__all__ = ["DatasetRecord", "Manifest", "ModelRecord", "build_manifest", "manifest_path", "write_manifest"]


class ModelRecord(BaseModel):
    """The model a command ran, as the loaded backend describes itself."""

    model_config = ConfigDict(frozen=True)

    spec: str = Field(description="The model spec as given, edits included.")
    revision: str | None = Field(None, description="Hub commit or content hash of the weights, when known.")
    backend: str = Field(description="The backend that served it (hf).")
    details: dict[str, Any] = Field(default_factory=dict,
                                    description="Architecture, dtype, edit files and their hashes.")


class DatasetRecord(BaseModel):
    """The prompts a command read."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The dataset's name.")
    source: str = Field(description="builtin:NAME, a file path, or hf:REPO...")
    content_hash: str = Field(description="sha256 of the records used (after --limit).")
    n_records: int = Field(ge=0, description="How many records were used.")


class Manifest(BaseModel):
    """One command's record: what ran, on what, with which settings, and the headline results."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = Field(1, description="Manifest format version.")
    command: str = Field(description="The refute command, e.g. 'interp capture'.")
    refute_version: str = Field(description="refute's version.")
    created: str = Field(description="When it finished (UTC, ISO 8601).")
    model: ModelRecord | None = Field(None, description="The model, when one was loaded.")
    dataset: DatasetRecord | None = Field(None, description="The dataset, when one was read.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Every option that shaped the output.")
    results: dict[str, Any] = Field(default_factory=dict, description="Headline numbers (e.g. FVU).")
    outputs: list[str] = Field(default_factory=list, description="The files written beside this manifest.")


def build_manifest(command: str, *, backend: Any | None = None, dataset: Any | None = None,
                   settings: dict[str, Any] | None = None, results: dict[str, Any] | None = None,
                   outputs: list[str | Path] | None = None) -> Manifest:
    """A manifest from a loaded backend (its ``info``) and a `refute.datasets.Dataset`."""
    model = None
    if backend is not None:
        info = backend.info
        model = ModelRecord(spec=info.spec, revision=info.revision, backend=info.backend,
                            details=dict(info.details))
    data = None
    if dataset is not None:
        data = DatasetRecord(name=dataset.name, source=dataset.source, content_hash=dataset.content_hash,
                             n_records=len(dataset))
    return Manifest(version=1, command=command, refute_version=__version__,
                    created=datetime.now(UTC).isoformat(timespec="seconds"), model=model,
                    dataset=data, settings=settings or {}, results=results or {},
                    outputs=[str(p) for p in outputs or []])


def manifest_path(output: str | Path) -> Path:
    """Where the manifest of ``output`` goes: ``acts.npz`` -> ``acts.manifest.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem if output.suffix else output.name}.manifest.json")


def write_manifest(path: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest`` as indented JSON, replacing ``path`` only once it is complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
