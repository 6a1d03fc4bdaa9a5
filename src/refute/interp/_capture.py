"""Capture activations at named sites and token positions, into memory or a disk-backed store.

Prompts are rendered and tokenised exactly as the `hf` backend does for generation
(`refute.models.render` and `encode`: the chat template with the model's default system prompt,
or a base model's plain transcript after its BOS token), so what is captured is what the engine
later measures. Batches are left-padded; positions are counted within each row's own
tokens (``-1`` = last prompt token, ``0`` = first), never in padded coordinates. The forward
pass stops as soon as every site is captured.

The disk store writes one safetensors shard per batch and site plus ``index.json``::

    DIR/index.json                      {"sites": {...: {"shape": [N, P, D], "shards": [...]}}, ...}
    DIR/resid_pre.12/00000.safetensors  {"activations": (B, P, D)}
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from refute.interp._errors import InterpError
from refute.interp._sites import Site, hooks, parse_site
from refute.models._base import Message
from refute.models._encode import encode_texts, render

if TYPE_CHECKING:
    import torch

__all__ = [
    "ActivationStore",
    "Activations",
    "capture",
    "encode_batch",
    "position_index",
    "render_prompts",
]

_INDEX_VERSION = 1


def render_prompts(tokenizer: Any, prompts: Sequence[str], *, system: str | None = None,
                   chat: bool = True) -> list[str]:
    """The text the model sees for each user prompt (`refute.models.render`), or the prompts
    as they are with ``chat=False``."""
    if not chat:
        return list(prompts)
    head = (Message(role="system", content=system),) if system is not None else ()
    return [render(tokenizer, (*head, Message(role="user", content=p))) for p in prompts]


def encode_batch(tokenizer: Any, texts: Sequence[str], device: str = "cpu") -> dict[str, torch.Tensor]:
    """Left-padded token ids, attention mask and position ids for rendered ``texts``.

    Each row is `refute.models.encode_texts` of its text: the ids generation gives the model (a
    base model's BOS token first), so position 0 is that BOS token where there is one.
    """
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer.pad({"input_ids": encode_texts(tokenizer, texts)}, padding=True, return_tensors="pt")
    out = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    # Positions count real tokens only, as in generation; otherwise left padding shifts them.
    out["position_ids"] = (out["attention_mask"].cumsum(dim=-1) - 1).clamp(min=0)
    return out


def position_index(attention_mask: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
    """Padded column of each requested position per row: ``(B, P)``; rows are left-padded."""
    import torch

    B, T = attention_mask.shape
    lengths = attention_mask.sum(dim=1)  # (B,)
    cols = []
    for p in positions:
        if p >= 0:
            if bool((lengths <= p).any()):
                raise InterpError(f"position {p} is past the end of a prompt of {int(lengths.min())} tokens")
            cols.append(T - lengths + p)
        else:
            if bool((lengths < -p).any()):
                raise InterpError(f"position {p} is before the start of a prompt of {int(lengths.min())} tokens")
            cols.append(torch.full((B,), T + p, dtype=torch.long, device=attention_mask.device))
    return torch.stack(cols, dim=1)  # (B, P)


class _Stop(Exception):
    """Raised by the deepest capture hook: nothing after it is needed."""


@dataclass
class Activations:
    """Captured activations in memory: ``data[site]`` is ``(N, P, D)`` float32 on the CPU."""

    data: dict[str, torch.Tensor]
    positions: tuple[int, ...]
    prompts: list[str] = field(default_factory=list)

    def __getitem__(self, site: str | Site) -> torch.Tensor:
        name = str(parse_site(site))
        if name not in self.data:
            raise InterpError(f"site '{name}' was not captured; captured: {', '.join(self.data)}")
        return self.data[name]

    @property
    def sites(self) -> list[str]:
        return list(self.data)


class ActivationStore:
    """A disk-backed activation store: sharded safetensors plus a JSON index."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.index_path = self.dir / "index.json"
        if self.index_path.exists():
            self.index = json.loads(self.index_path.read_text())
            if self.index.get("version") != _INDEX_VERSION:
                raise InterpError(f"{self.index_path}: index version {self.index.get('version')} is "
                                  f"not {_INDEX_VERSION}; capture again into a new directory")
        else:
            self.index = {"version": _INDEX_VERSION, "positions": None, "sites": {}}

    def append(self, site: str, batch: torch.Tensor, positions: Sequence[int]) -> None:
        from safetensors.torch import save_file

        entry = self.index["sites"].setdefault(site, {"shape": [0, *batch.shape[1:]], "shards": []})
        if list(batch.shape[1:]) != entry["shape"][1:]:
            raise InterpError(f"site {site}: batch shape {tuple(batch.shape)} does not match the "
                              f"stored shape {entry['shape']}")
        self.index["positions"] = list(positions)
        name = f"{site}/{len(entry['shards']):05d}.safetensors"
        (self.dir / site).mkdir(parents=True, exist_ok=True)
        save_file({"activations": batch.contiguous()}, str(self.dir / name))
        entry["shards"].append({"file": name, "rows": int(batch.shape[0])})
        entry["shape"][0] += int(batch.shape[0])

    def flush(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.index, indent=1))
        tmp.replace(self.index_path)

    @property
    def sites(self) -> list[str]:
        return list(self.index["sites"])

    def shape(self, site: str) -> tuple[int, ...]:
        return tuple(self._entry(site)["shape"])

    def _entry(self, site: str | Site) -> dict[str, Any]:
        name = str(parse_site(site))
        if name not in self.index["sites"]:
            raise InterpError(f"{self.dir}: no activations for '{name}'; stored: {', '.join(self.sites)}")
        return self.index["sites"][name]

    def iter_batches(self, site: str | Site) -> Iterator[torch.Tensor]:
        """Stream one shard at a time (for training on more than fits in memory)."""
        from safetensors.torch import load_file

        for shard in self._entry(site)["shards"]:
            yield load_file(str(self.dir / shard["file"]))["activations"]

    def load(self, site: str | Site) -> torch.Tensor:
        import torch

        return torch.cat(list(self.iter_batches(site)), dim=0)


@overload
def capture(model: Any, tokenizer: Any, texts: Sequence[str], sites: Sequence[str | Site], *,
            positions: Sequence[int] = ..., batch_size: int = ..., store: None = None,
            device: str | None = None, progress: Callable[[int], None] | None = None) -> Activations: ...


@overload
def capture(model: Any, tokenizer: Any, texts: Sequence[str], sites: Sequence[str | Site], *,
            positions: Sequence[int] = ..., batch_size: int = ..., store: ActivationStore | str | Path,
            device: str | None = None) -> ActivationStore: ...


def capture(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    sites: Sequence[str | Site],
    *,
    positions: Sequence[int] = (-1,),
    batch_size: int = 16,
    store: ActivationStore | str | Path | None = None,
    device: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Activations | ActivationStore:
    """Activations of ``texts`` (already rendered: see `render_prompts`) at ``sites`` x ``positions``.

    Returns `Activations` in memory, or the `ActivationStore` when ``store`` names a directory.
    Batches are processed in the given order; row ``i`` of every site is ``texts[i]``.
    ``progress`` is called with the number of texts in each batch once it is captured.
    """
    import torch

    if not texts:
        raise InterpError("capture needs at least one prompt")
    parsed = sorted({parse_site(s) for s in sites})
    if not parsed:
        raise InterpError("capture needs at least one site, such as resid_pre.12")
    positions = tuple(int(p) for p in positions)
    device = device or str(next(model.parameters()).device)
    disk = ActivationStore(store) if isinstance(store, (str, Path)) else store
    memory: dict[str, list[torch.Tensor]] = {s.name: [] for s in parsed}
    for start in range(0, len(texts), batch_size):
        enc = encode_batch(tokenizer, texts[start : start + batch_size], device)
        cols = position_index(enc["attention_mask"], positions)  # (B, P)
        rows = torch.arange(cols.shape[0], device=cols.device)[:, None]
        got: dict[str, torch.Tensor] = {}

        def grab(name: str, got: dict[str, torch.Tensor] = got, rows: torch.Tensor = rows,
                 cols: torch.Tensor = cols) -> Any:
            def fn(x: torch.Tensor) -> None:
                got[name] = x[rows, cols].detach().float().cpu()  # (B, P, D)
                if len(got) == len(parsed):
                    raise _Stop  # everything is captured: skip the rest of the forward pass

            return fn

        fns = {s: grab(s.name) for s in parsed}
        with torch.inference_mode(), hooks(model, fns), contextlib.suppress(_Stop):
            _forward(model, enc)
        for name, tensor in got.items():
            if disk is not None:
                disk.append(name, tensor, positions)
            else:
                memory[name].append(tensor)
        if progress is not None:
            progress(len(cols))
    if disk is not None:
        disk.flush()
        return disk
    return Activations({k: torch.cat(v) for k, v in memory.items()}, positions, list(texts))


def _forward(model: Any, enc: dict[str, torch.Tensor], logits_to_keep: int = 1, **kwargs: Any) -> Any:
    """One forward pass that computes logits only at the last ``logits_to_keep`` positions where
    the model allows it (all positions otherwise: callers slice from the end)."""
    try:
        return model(**enc, logits_to_keep=logits_to_keep, use_cache=False, **kwargs)
    except TypeError:
        return model(**enc, use_cache=False, **kwargs)
