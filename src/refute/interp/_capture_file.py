"""Activations of a dataset's prompts at named sites, saved as one compressed ``.npz``.

Prompts are rendered and encoded by `render_prompts` and `capture`, exactly as the probes and the
causal tests see them. Two layouts, named in the file's ``layout`` entry:

* ``positions`` (``--positions last`` or a list such as ``-1,-2``): ``SITE`` is ``(N, D)`` for one
  position, ``(N, P, D)`` for several; row ``i`` is ``prompt_ids[i]``.
* ``tokens`` (``--positions all``): ``SITE`` is ``(sum of prompt lengths, D)``, every real token of
  every prompt in order; ``token_counts[i]`` tokens belong to ``prompt_ids[i]``.

The file also holds ``prompt_ids``, ``positions`` and ``manifest`` (the command's `Manifest` as a
JSON string), and loads with ``numpy.load(path)`` (no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from refute.interp._capture import (
    _forward,
    capture,
    encode_batch,
    render_prompts,
)
from refute.interp._errors import InterpError
from refute.interp._sites import hooks, parse_site

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["CaptureResult", "TokenActivations", "capture_prompts", "capture_tokens", "load_capture", "save_capture"]

Layout = Literal["positions", "tokens"]
#: Entries of the file that are not sites.
_RESERVED = ("prompt_ids", "positions", "token_counts", "layout", "manifest")


@dataclass
class TokenActivations:
    """Every real token's activation: ``data[site]`` is ``(sum of lengths, D)`` float32 on the CPU."""

    data: dict[str, torch.Tensor]
    counts: list[int]  # tokens per prompt
    token_ids: list[list[int]]  # each prompt's token ids, in order

    def rows(self, index: int) -> slice:
        """The rows of prompt ``index``."""
        start = sum(self.counts[:index])
        return slice(start, start + self.counts[index])


def capture_tokens(model: Any, tokenizer: Any, texts: Sequence[str], sites: Sequence[str], *,
                   batch_size: int = 16) -> TokenActivations:
    """Activations of every real token of ``texts`` (already rendered) at ``sites``; padding dropped."""
    import torch

    if not texts:
        raise InterpError("capture needs at least one prompt")
    names = sorted({parse_site(s) for s in sites})
    device = str(next(model.parameters()).device)
    chunks: dict[str, list[torch.Tensor]] = {s.name: [] for s in names}
    counts: list[int] = []
    token_ids: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        enc = encode_batch(tokenizer, texts[start : start + batch_size], device)
        mask = enc["attention_mask"].bool()  # (B, T); left-padded, so each row's tokens stay in order
        got: dict[str, torch.Tensor] = {}

        def grab(name: str, got: dict[str, torch.Tensor] = got, mask: torch.Tensor = mask) -> Any:
            def fn(x: torch.Tensor) -> None:
                got[name] = x[mask].detach().float().cpu()  # (sum T_b, D)

            return fn

        with torch.inference_mode(), hooks(model, {s: grab(s.name) for s in names}):
            _forward(model, enc)
        for name, parts in chunks.items():
            parts.append(got[name])
        counts += [int(n) for n in mask.sum(dim=1).tolist()]
        token_ids += [row[m].tolist() for row, m in zip(enc["input_ids"].cpu(), mask.cpu(), strict=True)]
    return TokenActivations({k: torch.cat(v) for k, v in chunks.items()}, counts, token_ids)


@dataclass
class CaptureResult:
    """Captured activations as NumPy arrays, in the file's layout (see the module docstring)."""

    arrays: dict[str, np.ndarray]  # site -> activations
    prompt_ids: list[str]
    layout: Layout
    positions: tuple[int, ...] = ()  # empty for the tokens layout
    token_counts: list[int] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        return list(self.arrays)

    def summary(self) -> list[tuple[str, tuple[int, ...], float]]:
        """(site, shape, mean L2 norm of one activation vector) per site."""
        import numpy as np

        return [(site, tuple(a.shape), float(np.linalg.norm(a, axis=-1).mean()) if a.size else float("nan"))
                for site, a in self.arrays.items()]

    def to_markdown(self) -> str:
        lines = ["| site | shape | mean norm |", "|---|---|---|"]
        lines += [f"| {site} | {' x '.join(map(str, shape))} | {norm:.4g} |" for site, shape, norm in self.summary()]
        return "\n".join(lines)


def capture_prompts(backend: Any, prompts: Sequence[str], prompt_ids: Sequence[str], sites: Sequence[str], *,
                    positions: Sequence[int] | Literal["all"] = (-1,), batch_size: int = 16) -> CaptureResult:
    """Render ``prompts`` as generation does and capture ``sites`` at ``positions`` (or every token)."""
    if len(prompts) != len(prompt_ids):
        raise InterpError(f"{len(prompts)} prompts but {len(prompt_ids)} ids")
    names = [str(parse_site(s)) for s in dict.fromkeys(sites)]
    texts = render_prompts(backend.tokenizer, prompts)
    if positions == "all":
        got = capture_tokens(backend.model, backend.tokenizer, texts, names, batch_size=batch_size)
        arrays = {s: got.data[s].numpy() for s in names}
        return CaptureResult(arrays, list(prompt_ids), "tokens", (), got.counts)
    pos = tuple(int(p) for p in positions)
    if not pos:
        raise InterpError("name at least one position, such as -1 (the last prompt token)")
    acts = capture(backend.model, backend.tokenizer, texts, names, positions=pos,
                   batch_size=batch_size)  # in memory: no store given
    arrays = {s: (acts[s][:, 0] if len(pos) == 1 else acts[s]).numpy() for s in names}  # (N, D) or (N, P, D)
    return CaptureResult(arrays, list(prompt_ids), "positions", pos)


def save_capture(path: str | Path, result: CaptureResult, manifest: dict[str, Any]) -> Path:
    """Write ``result`` and ``manifest`` as a compressed ``.npz``, replacing ``path`` once complete."""
    import numpy as np

    path = Path(path)
    clash = [s for s in result.arrays if s in _RESERVED]
    if clash:
        raise InterpError(f"site names {clash} clash with the file's own entries")
    entries: dict[str, np.ndarray] = {
        **{site: np.ascontiguousarray(a, dtype=np.float32) for site, a in result.arrays.items()},
        "prompt_ids": np.array(result.prompt_ids, dtype=str),
        "positions": np.array(result.positions, dtype=np.int64),
        "layout": np.array(result.layout),
        "manifest": np.array(json.dumps(manifest, default=str)),
    }
    if result.token_counts is not None:
        entries["token_counts"] = np.array(result.token_counts, dtype=np.int64)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, **entries)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_capture(path: str | Path) -> CaptureResult:
    """Read a file written by `save_capture`."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {name: data[name] for name in data.files}
    except Exception as exc:  # numpy and zipfile raise their own errors for a file that is no npz
        raise InterpError(f"cannot read {path} as captured activations: {exc}") from exc
    missing = [n for n in ("prompt_ids", "layout", "manifest") if n not in entries]
    if missing:
        raise InterpError(f"{path} was not written by `refute interp capture` (no {', '.join(missing)})")
    counts = entries.get("token_counts")
    return CaptureResult(
        {k: v for k, v in entries.items() if k not in _RESERVED},
        [str(i) for i in entries["prompt_ids"].tolist()],
        str(entries["layout"]),  # type: ignore[arg-type]
        tuple(int(p) for p in entries.get("positions", np.zeros(0, dtype=np.int64)).tolist()),
        None if counts is None else [int(c) for c in counts.tolist()],
        json.loads(str(entries["manifest"])),
    )
