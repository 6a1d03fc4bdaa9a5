"""Cue families: the same conversation marked as an evaluation or as real use, and the ``cue`` transform.

A family states one thing two ways (``evaluation`` and ``deployment`` phrasings) in one place of the
conversation (``kind``): the system prompt, a preamble line before the request, or a metadata-like
tag. The built-in families ship in ``data/cues.yaml``; a user's file in the same format adds
families (or replaces one of the same name). ``held_out`` families are kept out of any fitting (the
awareness probe is fitted on the others and scored on these).

The ``cue(family=NAME, side=evaluation|deployment)`` transform applies one phrasing, drawn from the
sample's seed, so one engine run holds both sides of every family for the same prompts and epochs:
the comparison is paired by prompt, like a robustness gap.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from refute._yaml import located, read_yaml, validate_doc
from refute.errors import ConfigError
from refute.models import Message
from refute.transforms import TransformKind, transform

__all__ = ["BUILTIN_CUES", "SIDES", "CueFamily", "CueFile", "Side", "cue_chain", "load_cues", "place_cue"]

Side = Literal["evaluation", "deployment"]
CueKind = Literal["system", "preamble", "tag"]

#: Both sides of a family, evaluation first.
SIDES: tuple[Side, Side] = ("evaluation", "deployment")
BUILTIN_CUES = Path(__file__).parent / "data" / "cues.yaml"
_WHAT = "cue file"


class CueFamily(BaseModel):
    """One way of saying "this is a test" and its matching "this is real use"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", description="Family name (letters, digits, _ . -).")
    kind: CueKind = Field(description="Where the cue goes: system prompt, preamble line, or metadata tag.")
    description: str = Field("", description="What the family says, for reports.")
    held_out: bool = Field(False, description="Never used to fit a probe or direction; only to test one.")
    evaluation: list[str] = Field(min_length=1, description="Phrasings that mark the conversation as a test.")
    deployment: list[str] = Field(min_length=1, description="Phrasings that mark it as real use.")

    def phrasings(self, side: Side) -> list[str]:
        return self.evaluation if side == "evaluation" else self.deployment


class CueFile(BaseModel):
    """A file of cue families."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = Field(1, description="File format version.")
    families: list[CueFamily] = Field(min_length=1, description="The families.")


def _read(path: Path) -> CueFile:
    doc = read_yaml(path, what=_WHAT)
    parsed = validate_doc(doc, CueFile, what=_WHAT)
    seen: dict[str, int] = {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, fam in enumerate(parsed.families):
        if fam.name in seen:
            problems.append((("families", i, "name"), f"family '{fam.name}' is already defined as "
                             f"families[{seen[fam.name]}]; give each family its own name"))
        seen.setdefault(fam.name, i)
        for side in SIDES:
            for j, text in enumerate(fam.phrasings(side)):
                if not text.strip():
                    problems.append((("families", i, side, j), "an empty phrasing cues nothing; remove it"))
    located(doc, problems, what=_WHAT)
    return parsed


@cache
def _read_cached(path: str, mtime_ns: int) -> CueFile:
    return _read(Path(path))


def load_cues(path: str | Path | None = None) -> dict[str, CueFamily]:
    """The built-in families, with those of ``path`` added (a family of the same name replaces the
    built-in one), by name in file order. A bad file raises `SpecFileError` naming its line and field."""
    families = {f.name: f for f in _file(BUILTIN_CUES).families}
    if path is not None:
        families |= {f.name: f for f in _file(Path(path)).families}
    return families


def _file(path: Path) -> CueFile:
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {_WHAT} ({exc.strerror or exc}); check the path") from None
    return _read_cached(str(path.resolve()), stamp)


def cue_chain(family: str, side: Side, cues: str | None = None) -> str:
    """The transform chain that applies ``family``'s ``side`` cue (``cues``: a user's cue file)."""
    extra = "" if cues is None else f", cues={_quoted(str(cues))}"
    return f"cue(family={family}, side={side}{extra})"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def place_cue(family: CueFamily, text: str, messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """``messages`` with cue ``text`` where ``family`` puts it: before the system prompt (or as one), or
    before the last user message (a preamble: a blank line after it; a tag: a line break)."""
    if family.kind == "system":
        if messages and messages[0].role == "system":
            return (Message(role="system", content=f"{text}\n\n{messages[0].content}"), *messages[1:])
        return (Message(role="system", content=text), *messages)
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            joint = "\n\n" if family.kind == "preamble" else "\n"
            cued = Message(role="user", content=f"{text}{joint}{messages[i].content}")
            return (*messages[:i], cued, *messages[i + 1:])
    raise ConfigError(f"transform 'cue': the conversation has no user message to cue (roles "
                      f"{[m.role for m in messages]})")


@transform("cue")
class Cue:
    """An evaluation or deployment cue of one family, in the system prompt, a preamble or a tag."""

    kind: ClassVar[TransformKind] = "framing"
    name: ClassVar[str]

    def __init__(self, family: str, side: str = "evaluation", cues: str | None = None) -> None:
        if side not in ("evaluation", "deployment"):
            raise ConfigError(f"transform 'cue': side must be evaluation or deployment, got {side!r}")
        families = load_cues(cues)
        if family not in families:
            raise ConfigError(f"transform 'cue': no cue family '{family}'"
                              + ("" if cues is None else f" in {cues} or the built-in ones")
                              + f"; choose one of: {', '.join(families)}")
        self.family = families[family]
        self.side: Side = side  # type: ignore[assignment]
        self.args = {"family": family, "side": side, "cues": cues}

    def apply(self, messages: tuple[Message, ...], rng: random.Random) -> tuple[Message, ...]:
        return place_cue(self.family, rng.choice(self.family.phrasings(self.side)), messages)

    def __repr__(self) -> str:
        return f"Cue(family={self.family.name!r}, side={self.side!r})"
