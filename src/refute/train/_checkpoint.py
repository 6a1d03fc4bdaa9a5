"""Checkpoints that survive ``kill -9``, and an output folder that appears whole or not at all.

Training into ``adapters/fix1`` keeps its work in ``adapters/fix1.checkpoints/``: ``run.json``
(the settings a resumed run must share), ``log.jsonl`` (one line a step) and ``step-NNNNNN/``
folders. Each checkpoint is written into a hidden temporary folder and renamed into place once
every file is flushed, so a folder named ``step-*`` is always complete. It holds the adapter
(peft's ``save_pretrained``, loadable with ``BASE+lora:DIR``), ``state.pt`` (optimizer,
scheduler, RNG state, step and data position) and ``refute_train.json``. The final adapter is
written the same way, into a temporary folder beside ``out`` that is renamed to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refute.models._fingerprint import TRAIN_MANIFEST

__all__ = ["atomic_dir", "checkpoints", "clean_partial", "latest_checkpoint", "load_state", "save_checkpoint",
           "work_dir"]

_STEP = re.compile(r"step-(\d+)")
STATE = "state.pt"


def work_dir(out: Path) -> Path:
    """Where training into ``out`` keeps its checkpoints and log."""
    return out.with_name(out.name + ".checkpoints")


def checkpoints(work: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``work``, by step."""
    if not work.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in work.iterdir() if (m := _STEP.fullmatch(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(work: Path) -> tuple[int, Path] | None:
    """The last complete checkpoint, or None."""
    found = checkpoints(work)
    return found[-1] if found else None


def clean_partial(folder: Path, name: str) -> None:
    """Remove temporary folders an interrupted `atomic_dir` for ``folder / name`` left behind."""
    if folder.is_dir():
        for stale in folder.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final``, renamed to ``final`` once the block succeeds and every
    file in it is on disk; removed if the block fails. ``final`` must not exist."""
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir(parents=False)
    try:
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
        os.rename(tmp, final)  # atomic on one file system; fails if final is a non-empty folder
        _fsync(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(work: Path, step: int, peft_model: Any, state: dict[str, Any], manifest_json: str) -> Path:
    """Write checkpoint ``step`` atomically, then drop the older ones. Returns its folder."""
    import torch

    final = work / f"step-{step:06d}"
    with atomic_dir(final) as tmp:
        peft_model.save_pretrained(str(tmp))
        torch.save(state, tmp / STATE)
        (tmp / TRAIN_MANIFEST).write_text(manifest_json, encoding="utf-8")
    for older, path in checkpoints(work):
        if older < step:
            shutil.rmtree(path, ignore_errors=True)
    return final


def load_state(checkpoint: Path) -> dict[str, Any]:
    """``state.pt`` of a checkpoint (tensors and plain values only)."""
    import torch

    state: dict[str, Any] = torch.load(checkpoint / STATE, weights_only=True)
    return state
