"""Edits a model spec can carry after its base: ``BASE+ablate:FILE``, ``+steer:FILE@LAYER*COEF``,
``+sae:FILE#FEATURES`` and ``+lora:DIR``, composed left to right.

This module parses and validates the edits (no torch) and finds the *applier* of each kind, a
function that turns a loaded backend into the edited one, in the plug-in registry (kind
``model_edit``). The activation edits are applied by `refute.interp`, a higher layer: models names
the module that registers them and imports it only when a spec asks for that kind.

Grammar::

    spec    := BASE ("+" EDIT)*
    EDIT    := "ablate:" FILE                  directional ablation at every layer and position
             | "steer:" FILE "@" LAYER "*" COEF  add COEF * vector to the residual entering LAYER
             | "sae:" FILE "#" FEATURES         ablate (i) or clamp (i=VALUE) SAE features
             | "lora:" DIR                      a peft LoRA adapter, merged into the weights
             | "noise:" SCALE "@" SEED          Gaussian noise (std SCALE) added to every weight
    FEATURES := INDEX ["=" VALUE] ("," INDEX ["=" VALUE])*
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from refute.errors import ConfigError
from refute.registry import registry

__all__ = [
    "DIRECTION_SUFFIXES",
    "EDIT_HELP",
    "AblateEdit",
    "Edit",
    "EditApplier",
    "LoraEdit",
    "NoiseEdit",
    "SAEEdit",
    "SAEFeature",
    "SteerEdit",
    "edit_applier",
    "file_sha256",
    "parse_edit",
    "split_spec",
]

EDIT_HELP = ("edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES (e.g. #12,40=3.5), "
             "+lora:DIR, +noise:SCALE@SEED")
#: Files a direction (ablate, steer) may come from: what `Direction.save` writes, or a NumPy array.
DIRECTION_SUFFIXES = (".safetensors", ".npz", ".npy")


def _file(text: str, what: str, suffixes: tuple[str, ...]) -> str:
    if not text:
        raise ConfigError(f"{what} is empty; give a file path")
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"no file {path}" + (" (it is a folder)" if path.is_dir() else ""))
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{path}: expected a {' or '.join(suffixes)} file")
    return text


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got '{text}'")
    return value


def _index(text: str, what: str) -> int:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        raise ConfigError(f"{what} must be an integer, got '{text}'")
    value = int(text)
    if value < 0:
        raise ConfigError(f"{what} must be 0 or more, got {value}")
    return value


def _g(x: float) -> str:
    return repr(x) if x != float(f"{x:g}") else f"{x:g}"  # short, and exact when that needs digits


@dataclass(frozen=True)
class AblateEdit:
    """Project a direction out of every layer's residual input and writes, at every position."""

    kind: ClassVar[str] = "ablate"
    file: str

    @property
    def path(self) -> Path:
        return Path(self.file).expanduser().resolve()

    def __str__(self) -> str:
        return f"ablate:{self.file}"

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.path)}


@dataclass(frozen=True)
class SteerEdit:
    """Add ``coefficient * vector`` to the residual stream entering ``layer``, at every position."""

    kind: ClassVar[str] = "steer"
    file: str
    layer: int
    coefficient: float

    @property
    def path(self) -> Path:
        return Path(self.file).expanduser().resolve()

    def __str__(self) -> str:
        return f"steer:{self.file}@{self.layer}*{_g(self.coefficient)}"

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.path), "layer": self.layer,
                "coefficient": self.coefficient}


@dataclass(frozen=True)
class SAEFeature:
    """One SAE feature to edit: ablated (``value`` None, i.e. set to 0) or clamped to ``value``."""

    index: int
    value: float | None = None

    def __str__(self) -> str:
        return str(self.index) if self.value is None else f"{self.index}={_g(self.value)}"


@dataclass(frozen=True)
class SAEEdit:
    """Ablate or clamp features of a saved SAE at the site it was trained on (its file says which)."""

    kind: ClassVar[str] = "sae"
    file: str
    features: tuple[SAEFeature, ...]

    @property
    def path(self) -> Path:
        return Path(self.file).expanduser().resolve()

    def __str__(self) -> str:
        return f"sae:{self.file}#{','.join(map(str, self.features))}"

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.path),
                "features": [{"index": f.index, "value": f.value} for f in self.features]}


@dataclass(frozen=True)
class LoraEdit:
    """A peft LoRA adapter directory, merged into the base model's weights when it loads."""

    kind: ClassVar[str] = "lora"
    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory).expanduser().resolve()

    def __str__(self) -> str:
        return f"lora:{self.directory}"

    def record(self) -> dict[str, Any]:
        manifest = self.path / "refute_train.json"  # written by `refute train`: the run names its training
        extra = {"manifest_sha256": file_sha256(manifest)} if manifest.is_file() else {}
        return {"kind": self.kind, "directory": str(self.path), **extra}


@dataclass(frozen=True)
class NoiseEdit:
    """Gaussian noise of standard deviation ``scale`` added to every weight, drawn from ``seed`` (Tice et
    al. 2024: noise that should only hurt a model reveals a capability it hides when accuracy rises)."""

    kind: ClassVar[str] = "noise"
    scale: float
    seed: int

    @property
    def path(self) -> None:
        return None  # nothing on disk: the scale and the seed say it all

    def __str__(self) -> str:
        return f"noise:{_g(self.scale)}@{self.seed}"

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": self.scale, "seed": self.seed}


Edit = AblateEdit | SteerEdit | SAEEdit | LoraEdit | NoiseEdit
#: ``applier(backend, edit) -> backend``: the edited backend, which owns (and closes) ``backend``.
EditApplier = Callable[[Any, Any], Any]


def _parse_steer(body: str) -> SteerEdit:
    usage = "expected steer:FILE@LAYER*COEF, e.g. steer:direction.safetensors@6*4"
    rest, star, coef = body.rpartition("*")
    file, at, layer = rest.rpartition("@")
    if not star or not at:
        raise ConfigError(usage)
    layer_n = _index(layer, "LAYER")
    coefficient = _number(coef, "COEF")
    return SteerEdit(_file(file, "FILE", DIRECTION_SUFFIXES), layer_n, coefficient)


def _parse_sae(body: str) -> SAEEdit:
    file, hash_, text = body.rpartition("#")
    if not hash_:
        raise ConfigError("expected sae:FILE#FEATURES, e.g. sae:sae.safetensors#12,40=3.5")
    if not text.strip():
        raise ConfigError("FEATURES is empty; list feature indices to ablate, or INDEX=VALUE to clamp, "
                          "e.g. #12,40=3.5")
    features: list[SAEFeature] = []
    for item in text.split(","):
        index, eq, value = item.partition("=")
        if not index.strip():
            raise ConfigError(f"FEATURES '{text}' has an empty entry; e.g. #12,40=3.5")
        feature = SAEFeature(_index(index, "a feature index"),
                             _number(value, f"the value of feature {index.strip()}") if eq else None)
        if any(f.index == feature.index for f in features):
            raise ConfigError(f"feature {feature.index} is listed twice")
        features.append(feature)
    return SAEEdit(_file(file, "FILE", (".safetensors",)), tuple(features))


def _parse_lora(body: str) -> LoraEdit:
    if not body:
        raise ConfigError("expected lora:DIR, a folder written by peft's save_pretrained")
    path = Path(body).expanduser()
    if not (path / "adapter_config.json").is_file():
        what = "no folder" if not path.exists() else "no adapter_config.json in" if path.is_dir() else "not a folder:"
        raise ConfigError(f"{what} {path}; a LoRA adapter is a folder written by peft's save_pretrained")
    return LoraEdit(body)


def _parse_noise(body: str) -> NoiseEdit:
    scale, at, seed = body.rpartition("@")
    if not at:
        raise ConfigError("expected noise:SCALE@SEED, e.g. noise:0.001@0")
    value = _number(scale, "SCALE")
    if value < 0:
        raise ConfigError(f"SCALE is a standard deviation, 0 or more; got {value:g}")
    return NoiseEdit(value, _index(seed, "SEED"))


_PARSERS: dict[str, Callable[[str], Edit]] = {
    "ablate": lambda body: AblateEdit(_file(body, "FILE", DIRECTION_SUFFIXES)),
    "steer": _parse_steer,
    "sae": _parse_sae,
    "lora": _parse_lora,
    "noise": _parse_noise,
}
_EDIT_START = re.compile(rf"^\s*(?:[a-z][a-z0-9_-]*[:(]|(?:{'|'.join(_PARSERS)})\s*$|\s*$)")


def split_spec(spec: str) -> list[str]:
    """``BASE+EDIT+EDIT`` -> its parts. A ``+`` starts an edit only when a word and ``:`` (or an edit
    kind, or nothing) follow it, so a path holding ``+`` (``hf:/m/a+b``) stays in one part."""
    parts: list[str] = []
    for piece in spec.split("+"):
        if parts and not _EDIT_START.match(piece):
            parts[-1] += "+" + piece
        else:
            parts.append(piece)
    return parts


def parse_edit(part: str) -> Edit:
    """One edit part (``steer:d.npz@6*4``); a `ConfigError` says what in it is wrong."""
    kind, colon, body = part.partition(":")
    if not part.strip():
        raise ConfigError(f"empty edit (a '+' with nothing after it); {EDIT_HELP}")
    if "(" in kind:
        raise ConfigError("this names a variant built in Python, which cannot be rebuilt from its "
                          "name; save its direction and use ablate:FILE or steer:FILE@LAYER*COEF")
    if kind not in _PARSERS:
        raise ConfigError(f"unknown edit kind '{kind}'; {EDIT_HELP}")
    if not colon:
        raise ConfigError(f"'{kind}' needs a file: {EDIT_HELP}")
    return _PARSERS[kind](body.strip())


# --- appliers ------------------------------------------------------------------------------------

#: Appliers live in the one plug-in registry, kind ``model_edit``, under the edit's kind.
_APPLIERS = registry("model_edit")
#: The module that registers each of refute's own kinds. interp applies activation edits; LoRA
#: needs no hooks and stays in models.
_BUILTIN: dict[str, str] = {
    "ablate": "refute.interp._model_edits",
    "steer": "refute.interp._model_edits",
    "sae": "refute.interp._model_edits",
    "lora": "refute.models._lora",
    "noise": "refute.models._noise",
}


def edit_applier(kind: str) -> EditApplier:
    """The function that applies edits of ``kind``: from the registry, its module imported on first use."""
    entry = _APPLIERS.find(kind)  # registered already, or by a `refute` entry-point plug-in
    if entry is None and kind in _BUILTIN:
        # deferred: a plug-in load. interp sits above models in the layers, so models names the
        # module that registers an edit kind and imports it only when a spec asks for that kind.
        importlib.import_module(_BUILTIN[kind])
    return _APPLIERS.get(kind).factory


def file_sha256(path: Path) -> str:
    """SHA-256 of a file; of a folder, over its files' relative names and contents in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            digest.update(f"{p.relative_to(path).as_posix()}\0{p.stat().st_size}\0".encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
