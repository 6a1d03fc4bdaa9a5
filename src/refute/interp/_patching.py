"""Activation patching over layers x positions with a logit-difference metric.

Two prompts of the same token length, a clean one and a corrupted one, and two answer tokens
(the clean answer and the corrupted answer). The metric is ``logit[answer] - logit[other]`` at the
last position.

* ``clean_to_corrupt`` (denoising): run the corrupted prompt with one site's activation at one
  position replaced by the clean run's; a large recovery means that site carries what matters.
* ``corrupt_to_clean`` (noising): run the clean prompt with the corrupted activation patched in;
  a large drop means that site is necessary.

Heatmap-style table with `to_markdown`; an SVG heatmap with `to_svg` / `plot` (no matplotlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from refute.interp._capture import capture, encode_batch
from refute.interp._errors import InterpError
from refute.interp._sites import Site, SiteKind, find_layers, hooks
from refute.interp._svg import heatmap, write_svg

if TYPE_CHECKING:
    import torch

__all__ = ["PatchResult", "patch_sweep"]

PatchDirection = Literal["clean_to_corrupt", "corrupt_to_clean"]


@dataclass(frozen=True)
class PatchResult:
    """``values[i, j]``: the metric with ``site_kind.layers[i]`` patched at ``positions[j]``."""

    values: torch.Tensor  # (n_layers, n_positions)
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    site_kind: str
    direction: str
    clean: float
    corrupt: float
    tokens: tuple[str, ...]

    @property
    def normalized(self) -> torch.Tensor:
        """0 = the corrupted run's metric, 1 = the clean run's."""
        span = self.clean - self.corrupt
        return (self.values - self.corrupt) / (span if abs(span) > 1e-9 else float("nan"))

    def to_markdown(self) -> str:
        head = "| layer | " + " | ".join(f"{p} {self.tokens[p]!r}" for p in self.positions) + " |"
        lines = [(f"{self.direction}, {self.site_kind}; logit difference clean {self.clean:.3f}, "
                  f"corrupt {self.corrupt:.3f}"), "", head, "|---" * (len(self.positions) + 1) + "|"]
        for i, layer in enumerate(self.layers):
            cells = " | ".join(f"{float(v):.3f}" for v in self.values[i])
            lines.append(f"| {layer} | {cells} |")
        return "\n".join(lines)

    def to_svg(self) -> str:
        """The layers x positions grid as a self-contained SVG heatmap (one rect per cell)."""
        return heatmap(self.values.tolist(), [str(layer) for layer in self.layers],
                       [f"{p} {self.tokens[p]!r}" for p in self.positions],
                       title=f"activation patching, {self.direction}", row_title=f"layer ({self.site_kind})",
                       col_title="position (token)", value_label="logit diff", centre=self.corrupt
                       if self.direction == "clean_to_corrupt" else self.clean)

    def plot(self, path: str | Path) -> Path:
        """Write `to_svg` to ``path`` (``.svg``)."""
        return write_svg(self.to_svg(), path)


def _metric(model: Any, enc: dict[str, torch.Tensor], ids: tuple[int, int]) -> float:
    logits = model(**enc, use_cache=False).logits[0, -1].float()  # (V,)
    return float(logits[ids[0]] - logits[ids[1]])


def patch_sweep(
    model: Any,
    tokenizer: Any,
    clean: str,
    corrupt: str,
    answer_ids: tuple[int, int],
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    site_kind: SiteKind = "resid_pre",
    direction: PatchDirection = "clean_to_corrupt",
) -> PatchResult:
    """Patch every (layer, position) of ``site_kind`` from the source run into the target run.

    ``clean`` and ``corrupt`` are rendered texts of equal token length; ``answer_ids`` are
    (clean answer token, corrupted answer token). Positions default to all tokens.
    """
    import torch

    enc_clean, enc_corrupt = encode_batch(tokenizer, [clean]), encode_batch(tokenizer, [corrupt])
    T = enc_clean["input_ids"].shape[1]
    if enc_corrupt["input_ids"].shape[1] != T:
        raise InterpError(f"patching needs prompts of equal token length: clean has {T} tokens, corrupt "
                          f"{enc_corrupt['input_ids'].shape[1]}; reword so that the tokens align")
    n = len(find_layers(model))
    layers = tuple(range(n)) if layers is None else tuple(layers)
    positions = tuple(range(T)) if positions is None else tuple(p % T for p in positions)
    source, target = (clean, enc_corrupt) if direction == "clean_to_corrupt" else (corrupt, enc_clean)
    sites = [Site(site_kind, layer) for layer in layers]
    src = capture(model, tokenizer, [source], sites, positions=positions)
    with torch.inference_mode():
        m_clean, m_corrupt = _metric(model, enc_clean, answer_ids), _metric(model, enc_corrupt, answer_ids)
        values = torch.zeros(len(layers), len(positions))
        for i, site in enumerate(sites):
            for j, pos in enumerate(positions):
                patch = src[site][0, j]  # (D,)

                def fn(x: torch.Tensor, pos: int = pos, patch: torch.Tensor = patch) -> torch.Tensor:
                    if x.shape[1] != T:  # only the full-prompt pass is patched
                        return x
                    x = x.clone()
                    x[:, pos] = patch.to(x.dtype)
                    return x

                with hooks(model, {site: fn}):
                    values[i, j] = _metric(model, target, answer_ids)
    tokens = tuple(tokenizer.decode([t]) for t in enc_clean["input_ids"][0].tolist())
    return PatchResult(values, layers, positions, site_kind, direction, m_clean, m_corrupt, tokens)
